"""Fine-tune a pretrained LOLBERT for EC classification (the paper's "FinetunedLOLBERT").

    python scripts/finetune_lolbert.py --config configs/lolbert/finetune_mini.yaml [model=DIR data=DIR benchmark=III out=DIR]

RobertaForSequenceClassification (class-token head) over the full ECs of the benchmark's training
split; the label map (``biotalk.ec.LabelMap``: the MLP's classes and order) comes from the training split
only and is saved in ``config.id2label``. Genes
longer than the window (``max_nt`` bases): training reads one random window per gene and epoch,
evaluation reads the first window (``eval_windows: first``) or averages the logits of windows tiling
the whole gene (``eval_windows: mean``). A validation EC absent from training counts as an error.
After every epoch Valid is scored (``score_predictions``); the epoch with the best accuracy is kept in
``out/model``, a ``from_pretrained`` directory (RoBERTa weights under ``roberta.*`` + classifier head +
tokenizer) that ``load_dna_encoder`` reads as an encoder, with its validation predictions in
``out/valid_predictions.parquet``. ``out/metrics.json`` holds the per-epoch history, ``out/train_log.jsonl``
one line per epoch; ``out/checkpoints/step_N`` (one per epoch, ``biotalk.training``) lets ``resume=latest``
carry on after the last finished epoch.
``batch_size`` is per process; with several processes every one gets the same number of full batches
(``deal_batches``), and under DeepSpeed the trainer fills its batch sizes and clipping (``grad_clip``).
"""

from __future__ import annotations

import biotalk  # noqa: F401  (first: sets the offline Hugging Face environment before any HF import)

# isort: split
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer, RobertaForSequenceClassification, get_scheduler

from biotalk.cli import UsageError, run
from biotalk.config import to_dict
from biotalk.data import load_benchmark
from biotalk.data.schema import Benchmark
from biotalk.ec import LabelMap
from biotalk.io import atomic_dir, atomic_path, write_json
from biotalk.metrics import score_predictions
from biotalk.rng import stream
from biotalk.training import (
    CheckpointManager,
    TrainLog,
    adamw,
    fill_deepspeed_config,
    make_accelerator,
    seed_per_process,
)


@dataclass
class FinetuneConfig:
    model: Path = Path("models/lolbert-mini")  # a pretrained LOLBERT (scripts/pretrain_lolbert.py writes OUT/final)
    data: Path = Path("out/mini-benchmark")
    benchmark: Benchmark = "III"
    out: Path = Path("runs/lolbert-finetuned-mini")
    epochs: int = 3
    batch_size: int = 16
    eval_batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    grad_clip: float = 1.0
    max_nt: int = 510  # bases per window (the model adds S and /S)
    eval_windows: Literal["first", "mean"] = "first"
    max_steps_per_epoch: int = 0  # 0: the whole training split every epoch
    seed: int = 0
    threads: int = 0
    mixed_precision: Literal["", "no", "bf16", "fp16"] = "bf16"  # CUDA only
    resume: str = ""  # '' | latest | a checkpoint directory: carry on after its epoch
    keep_checkpoints: int = 1


def random_window(seq: str, max_nt: int, rng: np.random.Generator) -> str:
    if len(seq) <= max_nt:
        return seq
    start = int(rng.integers(0, len(seq) - max_nt + 1))
    return seq[start : start + max_nt]


def deal_batches(order: np.ndarray, batch_size: int, rank: int, world: int) -> list[np.ndarray]:
    """Process ``rank``'s batches of an epoch in ``order``: batch i goes to process i mod ``world``. Every
    process must get as many batches as the others (each step all-reduces; one short leaves the others
    waiting forever), so with several processes the order is filled up by wrapping to its start until every
    batch is full and their number divides evenly (Accelerate's ``even_batches``). One process: the plain
    batches, the last one short."""
    if world > 1:
        per_process = -(-len(order) // (batch_size * world))
        order = np.resize(order, per_process * world * batch_size)  # np.resize repeats from the start
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return batches[rank::world]


def eval_windows(seq: str, max_nt: int, how: str) -> list[str]:
    """The first window, or windows tiling the gene (the last one flush with its end)."""
    if how == "first" or len(seq) <= max_nt:
        return [seq[:max_nt]]
    if how != "mean":
        raise ValueError(f"eval_windows must be 'first' or 'mean', got {how!r}")
    starts = list(range(0, len(seq) - max_nt, max_nt)) + [len(seq) - max_nt]
    return [seq[s : s + max_nt] for s in starts]


@torch.no_grad()
def predict_logits(model, tokenizer, seqs: list[str], max_nt: int, how: str, batch_size: int) -> np.ndarray:
    """Logits per sequence (windows averaged); batches of windows sorted by length."""
    model.eval()
    windows, owner = [], []
    for i, seq in enumerate(seqs):
        for w in eval_windows(seq, max_nt, how):
            windows.append(w)
            owner.append(i)
    order = np.argsort([len(w) for w in windows], kind="stable")
    device = next(model.parameters()).device
    sums = torch.zeros(len(seqs), model.config.num_labels, dtype=torch.float64)
    for lo in range(0, len(order), batch_size):
        idx = order[lo : lo + batch_size]
        enc = tokenizer([windows[j] for j in idx], padding=True, truncation=True, max_length=max_nt + 2, return_tensors="pt")
        logits = model(**{k: v.to(device) for k, v in enc.items()}).logits.float().cpu().double()
        sums.index_add_(0, torch.as_tensor(np.asarray(owner)[idx]), logits)
    counts = torch.bincount(torch.as_tensor(owner), minlength=len(seqs)).double()
    return (sums / counts[:, None]).numpy()


def evaluate(model, tokenizer, split, labels: LabelMap, cfg: FinetuneConfig) -> tuple[dict, pl.DataFrame]:
    """The metric block of a split's top-1 predictions (ECs the model cannot output count as errors;
    ``unseen_ec`` counts them) and the predictions."""
    logits = predict_logits(model, tokenizer, list(split["Sequence"]), cfg.max_nt, cfg.eval_windows, cfg.eval_batch_size)
    best = logits.argmax(1)
    predicted, truth = labels.decode(best), list(split["EC"])
    preds = pl.DataFrame(
        {"RecordId": list(split["RecordId"]), "EC": truth, "Predicted": predicted,
         "Logit": logits[np.arange(len(best)), best].tolist()}
    )  # fmt: skip
    scores = {**score_predictions(truth, predicted), "unseen_ec": int((labels.encode(truth) < 0).sum())}
    return scores, preds


def main(cfg: FinetuneConfig) -> dict:
    """Fine-tune; returns the metrics dict also written to ``out/metrics.json``."""
    if not (cfg.model / "config.json").is_file():
        raise UsageError(f"model: no pretrained LOLBERT in {cfg.model} (scripts/pretrain_lolbert.py writes OUT/final)")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    accelerator = make_accelerator(cfg.mixed_precision)
    checkpoints = CheckpointManager(accelerator, cfg.out / "checkpoints", cfg.keep_checkpoints)
    resume_from = checkpoints.find(cfg.resume)
    data = load_benchmark(cfg.data, cfg.benchmark)
    train, valid = data["train"], data["valid"]
    labels = LabelMap.from_ecs(train["EC"])
    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    torch.manual_seed(cfg.seed)  # the new classifier head
    model = RobertaForSequenceClassification.from_pretrained(
        cfg.model, num_labels=len(labels), id2label=labels.id2label, label2id=labels.label2id,
        problem_type="single_label_classification",
    )  # fmt: skip
    seqs, targets = list(train["Sequence"]), labels.encode(train["EC"])
    n_batches = -(-len(seqs) // (cfg.batch_size * accelerator.num_processes))
    steps_per_epoch = min(n_batches, cfg.max_steps_per_epoch) if cfg.max_steps_per_epoch else n_batches
    total = steps_per_epoch * cfg.epochs
    optimizer = adamw(model, cfg.lr, cfg.weight_decay)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=int(cfg.warmup_ratio * total), num_training_steps=total)
    fill_deepspeed_config(accelerator, cfg.batch_size, max_grad_norm=cfg.grad_clip)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    seed_per_process(accelerator, cfg.seed)  # dropout: same weights everywhere, masks of each rank's own
    accelerator.print(f"{cfg.benchmark}: {len(seqs)} training records, {len(labels)} ECs, {len(valid)} validation records")

    state = checkpoints.load(resume_from)
    history, best = state.get("history", []), state.get("best", -1.0)
    log = TrainLog(cfg.out, state["step"], accelerator.is_main_process)
    for epoch in range(state.get("epoch", 0) + 1, cfg.epochs + 1):
        rng = stream(cfg.seed, epoch)
        order = rng.permutation(len(seqs))
        batches = deal_batches(order, cfg.batch_size, accelerator.process_index, accelerator.num_processes)
        batches = batches[:steps_per_epoch]
        model.train()
        losses = []
        for idx in tqdm(batches, desc=f"epoch {epoch}", disable=not accelerator.is_main_process):
            windows = [random_window(seqs[i], cfg.max_nt, rng) for i in idx]
            enc = tokenizer(windows, padding=True, truncation=True, max_length=cfg.max_nt + 2, return_tensors="pt")
            batch = {k: v.to(accelerator.device) for k, v in enc.items()}
            with accelerator.autocast():
                loss = model(**batch, labels=torch.as_tensor(targets[idx], device=accelerator.device)).loss
            accelerator.backward(loss)
            if cfg.grad_clip > 0:
                accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        plain = accelerator.unwrap_model(model)
        with accelerator.autocast():
            val, preds = evaluate(plain, tokenizer, valid, labels, cfg)
        step = epoch * steps_per_epoch
        history.append({"epoch": epoch, "step": step, "train_loss": float(np.mean(losses)), "valid": val})
        log.write({"step": step, "epoch": epoch, "train_loss": history[-1]["train_loss"], "valid_accuracy": val["accuracy"]})
        accelerator.print(f"epoch {epoch}: train loss {history[-1]['train_loss']:.4f}, valid accuracy {val['accuracy']:.4f}")
        if val["accuracy"] > best:
            best = val["accuracy"]
            if accelerator.is_main_process:
                with atomic_dir(cfg.out / "model") as tmp:
                    plain.save_pretrained(tmp)
                    tokenizer.save_pretrained(tmp)
                with atomic_path(cfg.out / "valid_predictions.parquet") as tmp:
                    preds.write_parquet(tmp)
        checkpoints.save(step, {"epoch": epoch, "history": history, "best": best})
    top = max(history, key=lambda h: h["valid"]["accuracy"])
    metrics = {"best_valid_accuracy": top["valid"]["accuracy"], "best_epoch": top["epoch"], "history": history,
               "n_labels": len(labels), "config": to_dict(cfg)}  # fmt: skip
    if accelerator.is_main_process:
        write_json(cfg.out / "metrics.json", metrics)
        print(f"best validation accuracy {metrics['best_valid_accuracy']:.4f} (epoch {metrics['best_epoch']}); model in {cfg.out / 'model'}")
    accelerator.end_training()
    return metrics

if __name__ == "__main__":
    run(main, FinetuneConfig, __doc__)
