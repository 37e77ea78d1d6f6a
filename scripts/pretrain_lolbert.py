"""Masked-language pretraining of LOLBERT from scratch on read-length fragments of the raw genomes.

    accelerate launch scripts/pretrain_lolbert.py --config configs/lolbert/mini.yaml [key=value ...]
    python scripts/pretrain_lolbert.py --config configs/lolbert/mini.yaml resume=latest

Training fragments are drawn on the fly; the batch of step ``s`` depends only on (seed, s, process),
so a resumed run sees exactly the batches an uninterrupted run would. The recipe (``source: genome | cds``,
``masking: token | span | codon``, ``packing``) is ``biotalk.data.pretrain_batches``; the held-out protocol
is the same for every recipe. Held-out fragments (from held-out
genomes/regions) are fixed by the seed and fully masked. Plumbing (Accelerate set-up, AdamW,
checkpoints, log) is ``biotalk.training``. Outputs in ``out``: ``train_log.jsonl`` (step, train loss, lr,
held-out loss and masked-token accuracy), ``checkpoints/step_N`` (Accelerate state + ``state.json``),
``final/`` (``from_pretrained`` RobertaForMaskedLM + tokenizer, safetensors), ``summary.json`` (last
held-out numbers, the majority-base floor, wall time of this invocation) and ``curve.png``.
"""

from __future__ import annotations

import biotalk  # noqa: F401  (first: sets the offline Hugging Face environment before any HF import)

# isort: split
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import RobertaForMaskedLM, get_scheduler

from biotalk.baselines import context_accuracy, context_counts
from biotalk.cli import run
from biotalk.config import to_dict
from biotalk.data.genomes import cut_out, read_genomes, split_regions
from biotalk.data.heldout_genes import heldout_loci
from biotalk.data.pretrain_batches import BatchRecipe, build_corpus, heldout_batches, train_batch
from biotalk.io import atomic_dir, atomic_path, write_json, write_text
from biotalk.models.lolbert import VOCAB, LolbertArch, build_lolbert_tokenizer, roberta_config
from biotalk.training import (
    CheckpointManager,
    TrainLog,
    adamw,
    fill_deepspeed_config,
    make_accelerator,
    seed_per_process,
)


@dataclass
class PretrainConfig:
    model: LolbertArch = field(default_factory=LolbertArch)
    raw_dir: Path = Path("data/raw")
    heldout_genomes: list[str] = field(default_factory=lambda: ["Streptococcus_pyogenes"])
    heldout_fraction: float = 0.0  # tail of every other record also held out
    # Benchmark whose evaluation genes (and every CDS >= heldout_identity identical to one) leave training
    heldout_benchmark: Path | None = None
    heldout_splits: list[Literal["test1", "test2", "valid2"]] = field(default_factory=lambda: ["test1", "test2", "valid2"])
    heldout_identity: float = 0.5
    context_flank: int = 0  # > 0: also score a count model that reads a base from this many neighbours per side
    cache_dir: Path | None = Path("cache/clusters")  # MMseqs2 search cache, shared with the builder
    max_nt: int = 510  # reads longer than this keep their first max_nt bases (model window: 510)
    rc_prob: float = 0.5  # genome and intergenic fragments; CDS windows are read on the sense strand
    # Recipe (biotalk.data.pretrain_batches): fragment source, masking, packing
    source: Literal["genome", "cds"] = "genome"
    cds_fraction: float | None = None  # cds source: share of CDS windows; None = their share of training bases
    masking: Literal["token", "span", "codon"] = "token"
    span_mean: float = 3.0  # span masking: mean of the geometric span length (clipped to span_max)
    span_max: int = 10
    packing: bool = False  # fill every window with fragments (no padding)
    mlm_probability: float = 0.15
    eval_fragments: int = 512
    eval_batch_size: int = 128
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    schedule: str = "linear"  # any transformers scheduler name: linear, cosine, constant_with_warmup, ...
    grad_clip: float = 1.0
    log_every: int = 10
    eval_every: int = 100
    save_every: int = 200
    keep_checkpoints: int = 2
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    mixed_precision: Literal["", "no", "bf16", "fp16"] = "bf16"  # used on CUDA only; CPU runs in fp32
    resume: str = ""  # "", "latest", or a checkpoint directory
    out: Path = Path("runs/lolbert-mini")


def batch_recipe(cfg: PretrainConfig) -> BatchRecipe:
    return BatchRecipe(cfg.max_nt, cfg.mlm_probability, cfg.masking, cfg.span_mean, cfg.span_max, cfg.packing)


def eval_set(tokenizer, regions, cfg: PretrainConfig) -> list[dict[str, torch.Tensor]]:
    """The held-out batches: the same protocol whatever the training recipe (biotalk.data.pretrain_batches)."""
    return heldout_batches(tokenizer, regions, cfg.seed, cfg.eval_fragments, cfg.eval_batch_size, cfg.rc_prob,
                           cfg.max_nt, cfg.mlm_probability)  # fmt: skip


@torch.no_grad()
def evaluate(model, batches, accelerator: Accelerator) -> dict[str, float]:
    """Masked-token loss and accuracy over the held-out set (shared out among processes)."""
    model.eval()
    totals = torch.zeros(3, device=accelerator.device)  # summed loss, correct, targets
    for batch in batches[accelerator.process_index :: accelerator.num_processes]:
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        with accelerator.autocast():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        target = batch["labels"] != -100
        logits, labels = logits[target].float(), batch["labels"][target]
        totals += torch.stack(
            [
                torch.nn.functional.cross_entropy(logits, labels, reduction="sum"),
                (logits.argmax(-1) == labels).sum().float(),
                torch.tensor(float(labels.numel()), device=accelerator.device),
            ]
        )
    totals = accelerator.reduce(totals, reduction="sum")
    model.train()
    return {"heldout_loss": (totals[0] / totals[2]).item(), "heldout_acc": (totals[1] / totals[2]).item()}


def majority_base_accuracy(batches) -> float:
    """Accuracy of always answering the most frequent masked base: the floor a model must beat."""
    labels = torch.cat([b["labels"][b["labels"] != -100] for b in batches])
    return (torch.bincount(labels).max() / labels.numel()).item()


TOKEN_BASE = np.full(len(VOCAB), -1, dtype=np.int64)  # token id -> base code of biotalk.baselines (A C G T)
TOKEN_BASE[[VOCAB.index(base) for base in "ACGT"]] = np.arange(4)


def context_floor(regions, batches, flank: int) -> float:
    """Held-out accuracy of a count model that predicts each masked base from its ``flank`` true neighbours on
    each side, counted over the training regions (both strands). It sees the true bases around a target even
    where LOLBERT sees other masks, so it is a generous floor: a model that learnt local context beats it."""
    counts = context_counts([r.sequence for r in regions], flank)
    correct = total = 0
    for batch in batches:
        labels, ids = batch["labels"].numpy(), batch["input_ids"].numpy()
        targets = labels != -100
        codes = TOKEN_BASE[np.where(targets, labels, ids)]
        correct += context_accuracy(counts, codes, targets, flank) * targets.sum()
        total += targets.sum()
    return float(correct / total)


def plot_curve(rows: list[dict], png_path: Path, majority: float) -> None:
    """Held-out loss and masked-base accuracy (log records holding them) against step, with the majority-base floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(steps, [r["heldout_loss"] for r in rows], marker=".")
    left.set(xlabel="step", ylabel="held-out MLM loss (nats)")
    right.plot(steps, [r["heldout_acc"] for r in rows], marker=".", label="LOLBERT")
    right.axhline(majority, color="grey", linestyle="--", label="majority base")
    right.axhline(0.25, color="grey", linestyle=":", label="uniform (25%)")
    right.set(xlabel="step", ylabel="held-out masked-base accuracy")
    right.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(cfg: PretrainConfig) -> Path:
    """Pretrain; returns the ``final`` directory."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    accelerator = make_accelerator(cfg.mixed_precision)
    checkpoints = CheckpointManager(accelerator, cfg.out / "checkpoints", cfg.keep_checkpoints)
    resume_from = checkpoints.find(cfg.resume)
    genomes, skipped = read_genomes(cfg.raw_dir / "genbank")
    train_regions, heldout_regions = split_regions(genomes, cfg.heldout_genomes, cfg.heldout_fraction)
    cut_genes, cut_nt = 0, 0
    if cfg.heldout_benchmark is not None:
        loci = heldout_loci(cfg.raw_dir / "genbank", cfg.heldout_benchmark, cfg.heldout_splits,
                            cfg.heldout_identity, max(cfg.threads, 1), cfg.cache_dir)  # fmt: skip
        train_regions, cut_nt = cut_out(train_regions, loci)
        cut_genes = len(loci)
    corpus = build_corpus(cfg.source, train_regions, cfg.raw_dir / "genbank", cfg.cds_fraction)
    recipe = batch_recipe(cfg)
    tokenizer = build_lolbert_tokenizer()
    heldout = eval_set(tokenizer, heldout_regions, cfg)
    if accelerator.is_main_process:
        cfg.out.mkdir(parents=True, exist_ok=True)
        write_text(cfg.out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        n_train, n_held = sum(map(len, train_regions)), sum(map(len, heldout_regions))
        print(f"genomes: {len(genomes)} records ({len(skipped)} skipped); train {n_train:,} nt, "
              f"held-out {n_held:,} nt; held-out majority-base accuracy {majority_base_accuracy(heldout):.4f}")
        if cfg.heldout_benchmark is not None:
            print(f"benchmark genes held out: {cut_genes:,} CDS like a {'/'.join(cfg.heldout_splits)} gene of "
                  f"{cfg.heldout_benchmark} (>= {cfg.heldout_identity:.0%} identity), {cut_nt:,} nt cut from training")
        if corpus.cds:
            print(f"cds source: {len(corpus.cds):,} training CDS read in frame ({sum(map(len, corpus.cds)):,} nt), "
                  f"{sum(map(len, corpus.regions)):,} nt intergenic; CDS share of fragments {corpus.cds_fraction:.3f}")
        for reason in skipped:
            print(f"skipped {reason}")
    floors = {"heldout_majority_base_acc": majority_base_accuracy(heldout)}
    if cfg.context_flank > 0 and accelerator.is_main_process:
        floors[f"heldout_context{cfg.context_flank}_acc"] = context_floor(train_regions, heldout, cfg.context_flank)
        accelerator.print(f"held-out accuracy of a {cfg.context_flank}-neighbour count model: "
                          f"{floors[f'heldout_context{cfg.context_flank}_acc']:.4f}")

    torch.manual_seed(cfg.seed)
    model = RobertaForMaskedLM(roberta_config(cfg.model))
    optimizer = adamw(model, cfg.lr, cfg.weight_decay)
    # Not prepared: Accelerate would step it once per process; our steps are optimizer steps.
    scheduler = get_scheduler(cfg.schedule, optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.steps)
    fill_deepspeed_config(accelerator, cfg.batch_size, max_grad_norm=cfg.grad_clip)  # no DataLoader to read
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    seed_per_process(accelerator, cfg.seed)  # dropout: same weights everywhere, masks of each rank's own

    start = checkpoints.load(resume_from)["step"]
    log = TrainLog(cfg.out, start, accelerator.is_main_process)

    model.train()
    started = time.time()
    window: list[float] = []
    bar = tqdm(range(start + 1, cfg.steps + 1), initial=start, total=cfg.steps, disable=not accelerator.is_main_process)
    for step in bar:
        batch = train_batch(tokenizer, corpus, recipe, cfg.batch_size, cfg.rc_prob, cfg.seed, step, accelerator.process_index)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        with accelerator.autocast():
            loss = model(**batch).loss
        accelerator.backward(loss)
        if cfg.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        window.append(accelerator.reduce(loss.detach(), reduction="mean").item())
        if not math.isfinite(window[-1]):
            raise FloatingPointError(f"step {step}: training loss is {window[-1]}")

        record: dict[str, float] = {}
        if step % cfg.log_every == 0 or step == cfg.steps:
            record.update(train_loss=float(np.mean(window)), lr=scheduler.get_last_lr()[0])
            window = []
        if step % cfg.eval_every == 0 or step == cfg.steps:
            record.update(evaluate(accelerator.unwrap_model(model), heldout, accelerator))
        if record:
            log.write({"step": step, **record})
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k != "lr"})
        if step % cfg.save_every == 0 or step == cfg.steps:
            checkpoints.save(step)

    final = cfg.out / "final"
    accelerator.wait_for_everyone()
    weights = accelerator.get_state_dict(model)  # on every process: under ZeRO-3 it gathers the shards
    if accelerator.is_main_process:
        with atomic_dir(final) as tmp:
            accelerator.unwrap_model(model).save_pretrained(tmp, state_dict=weights)
            tokenizer.save_pretrained(tmp)
        evals = [r for r in log.records() if "heldout_acc" in r]
        majority = floors["heldout_majority_base_acc"]
        summary = {"steps": cfg.steps, "resumed_from": start, "wall_s": round(time.time() - started, 1), **floors,
                   "train_nt": sum(map(len, train_regions)), "benchmark_genes_held_out": cut_genes,
                   "benchmark_gene_nt_cut": cut_nt, "cds_fraction": corpus.cds_fraction}  # fmt: skip
        if evals:
            summary.update(heldout_loss=evals[-1]["heldout_loss"], heldout_acc=evals[-1]["heldout_acc"])
            plot_curve(evals, cfg.out / "curve.png", majority)
        write_json(cfg.out / "summary.json", summary)
        print(f"saved {final}; {summary}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final


if __name__ == "__main__":
    run(main, PretrainConfig, __doc__)
