"""Tables 2 and 3: how well frozen DNA embeddings group genes by EC number.

    python scripts/eval_embeddings.py --config configs/eval/mini.yaml [encoders=[kmer:6] metric=l2]

For every encoder x benchmark x pooling:
- Table 2: kNN hierarchical precision at k = 1, 3, 5 (the paper's metric, its denominator fixed): the
  benchmark's train split is the index, the test split the queries; exact faiss search, cosine
  (inner product on normalised vectors) by default, ``metric=l2`` for the reference code's raw L2.
- Table 3: silhouette of the embeddings grouped by EC, on a seeded stratified sample of one split.

Balancing duplicates (``IsDuplicate``) are left out of the index and the silhouette sample: an exact
copy adds no information and would fill neighbour slots with itself. An encoder whose directory is
missing or cannot be loaded is skipped with a warning. Writes ``out/tables.md`` and ``out/tables.json``;
the paper's numbers come in tables of their own: other data, other metric code, not comparable.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from biotalk.config import parse_args, to_dict
from biotalk.data import load_benchmark
from biotalk.embeddings import embed_cached, usable_poolings
from biotalk.io import write_json, write_text
from biotalk.knn import knn_predict_ecs, knn_search
from biotalk.metrics import knn_hierarchical_precision, level_accuracy_at_k, silhouette
from biotalk.models.encoders import DNAEncoder, load_dna_encoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
log = logging.getLogger("eval_embeddings")
PAPER_LABEL = "paper (different data, not comparable)"
PAPER_MODELS = ("LOLBERT", "DNABERT", "Nucleotide Transformer", "FinetunedLOLBERT")
# Paper Table 2 (class-token embeddings): benchmark -> k -> one value per PAPER_MODELS.
PAPER_TABLE2 = {
    "I": {1: (0.5103, 0.4143, 0.4419, 0.6564), 3: (0.5870, 0.4923, 0.5480, 0.7128), 5: (0.6258, 0.5368, 0.6027, 0.7382)},
    "II": {1: (0.2700, 0.2215, 0.2598, 0.4777), 3: (0.3461, 0.2887, 0.3424, 0.5608), 5: (0.3879, 0.3320, 0.3903, 0.6000)},
    "III": {1: (0.1332, 0.1168, 0.1553, 0.3329), 3: (0.2038, 0.1903, 0.2380, 0.4195), 5: (0.2416, 0.2321, 0.2816, 0.4635)},
    "IV": {1: (0.2746, 0.2098, 0.2293, 0.4751), 3: (0.3698, 0.3087, 0.2998, 0.5549), 5: (0.4222, 0.3628, 0.3439, 0.5893)},
}
# Paper Table 3 (silhouette of class-token embeddings), one value per PAPER_MODELS.
PAPER_TABLE3 = {
    "I": (-0.2139, -0.3078, -0.2237, -0.1735), "II": (-0.0672, -0.1401, -0.0702, -0.0466),
    "III": (0.2623, 0.2009, 0.2461, 0.3060), "IV": (-0.1855, -0.2900, -0.2248, -0.0786),
}


@dataclass
class EvalConfig:
    data: Path = Path("out/mini-benchmark")
    benchmarks: list[str] = field(default_factory=lambda: ["III", "IV"])
    encoders: list[str] = field(default_factory=lambda: ["kmer:6", "runs/lolbert-mini/final"])
    poolings: list[str] = field(default_factory=lambda: ["cls", "min", "max", "mean"])
    index_split: str = "train"
    query_split: str = "test1"
    ks: list[int] = field(default_factory=lambda: [1, 3, 5])
    metric: str = "cosine"  # or "l2": the reference code's IndexFlatL2 on raw vectors
    silhouette_split: str = "train"
    silhouette_metric: str = "cosine"
    silhouette_per_class: int = 20
    seed: int = 0
    batch_size: int = 32
    window: int | None = None  # sequence tokens per window (default: the model's limit)
    stride: int | None = None  # default: window // 2
    truncate: bool = False
    trust_remote_code: bool = False
    device: str = "auto"
    cache_dir: Path = Path("cache/embeddings")
    out: Path = Path("runs/eval/mini")


def load_encoders(cfg: EvalConfig, device: str) -> tuple[dict[str, DNAEncoder], list[dict]]:
    encoders, skipped = {}, []
    for name in cfg.encoders:
        try:
            encoders[name] = load_dna_encoder(name, trust_remote_code=cfg.trust_remote_code).to(device)
        except (OSError, ValueError) as err:
            log.warning("skipping encoder %s: %s", name, err)
            skipped.append({"encoder": name, "reason": str(err)})
    return encoders, skipped


def unique_rows(ds) -> np.ndarray:
    """Rows that are not balancing duplicates."""
    if "IsDuplicate" not in ds.column_names:
        return np.arange(len(ds))
    return np.flatnonzero(~np.asarray(ds["IsDuplicate"], dtype=bool))


def split_vectors(encoder: DNAEncoder, benchmarks: dict, cfg: EvalConfig) -> dict:
    """``{benchmark: {split: {pooling: array}}}`` for the splits the tables need. The benchmarks share
    genes (II is drawn from I, IV from III, all share the tests), so each distinct gene is embedded
    once, through the cache, and the rows are looked up per split."""
    needed = dict.fromkeys([cfg.index_split, cfg.query_split, cfg.silhouette_split])
    seqs = {b: {split: list(splits[split]["Sequence"]) for split in needed} for b, splits in benchmarks.items()}
    union = list(dict.fromkeys(s for per_split in seqs.values() for split_seqs in per_split.values() for s in split_seqs))
    poolings = usable_poolings(encoder, cfg.poolings)
    table = embed_cached(encoder, union, poolings, cfg.cache_dir, tag="eval", batch_size=cfg.batch_size,
                         window=cfg.window, stride=cfg.stride, truncate=cfg.truncate)
    row = {s: i for i, s in enumerate(union)}
    return {b: {split: {p: table[p][[row[s] for s in split_seqs]] for p in poolings}
                for split, split_seqs in per_split.items()} for b, per_split in seqs.items()}


def evaluate(name: str, benchmark: str, splits, vectors: dict, cfg: EvalConfig) -> list[dict]:
    poolings = list(vectors[cfg.query_split])
    index_rows = unique_rows(splits[cfg.index_split])
    index_ecs = np.asarray(splits[cfg.index_split]["EC"], dtype=object)[index_rows]
    query_ecs = list(splits[cfg.query_split]["EC"])
    sil_rows = unique_rows(splits[cfg.silhouette_split])
    sil_ecs = np.asarray(splits[cfg.silhouette_split]["EC"], dtype=object)[sil_rows]
    rows = []
    for pooling in poolings:
        _, nearest = knn_search(vectors[cfg.index_split][pooling][index_rows], vectors[cfg.query_split][pooling],
                                max(cfg.ks), metric=cfg.metric)
        neighbours = knn_predict_ecs(index_ecs, nearest)
        sil = silhouette(vectors[cfg.silhouette_split][pooling][sil_rows], sil_ecs, metric=cfg.silhouette_metric,
                         per_class=cfg.silhouette_per_class, seed=cfg.seed)
        rows.append({
            "encoder": name, "benchmark": benchmark, "pooling": pooling,
            "hP": {str(k): knn_hierarchical_precision(query_ecs, [n[:k] for n in neighbours]) for k in cfg.ks},
            "level_accuracy": {str(k): level_accuracy_at_k(query_ecs, [n[:k] for n in neighbours]) for k in cfg.ks},
            "silhouette": None if np.isnan(sil.score) else sil.score, "silhouette_samples": sil.n_samples,
            "silhouette_classes": sil.n_classes, "silhouette_note": sil.reason, "n_index": len(index_rows), "n_queries": len(query_ecs),
        })
        log.info("%s %s %s: hP@k %s, silhouette %.4f", name, benchmark, pooling, rows[-1]["hP"], sil.score)
    return rows


def fmt(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{x:.4f}"


def markdown(rows: list[dict], skipped: list[dict], cfg: EvalConfig) -> str:
    ks = [str(k) for k in cfg.ks]
    lines = [
        f"# Tables 2 and 3 on `{cfg.data}`", "",
        f"Index `{cfg.index_split}`, queries `{cfg.query_split}`, metric `{cfg.metric}`; silhouette on "
        f"`{cfg.silhouette_split}` ({cfg.silhouette_metric}, up to {cfg.silhouette_per_class} per EC, seed {cfg.seed}).",
        "", "## Table 2: kNN hierarchical precision", "",
        "| benchmark | encoder | pooling | " + " | ".join(f"k={k}" for k in ks) + " | queries | index |",
        "|---|---|---|" + "---:|" * (len(ks) + 2),
    ]
    for r in rows:
        hp = " | ".join(fmt(r["hP"][k]) for k in ks)
        lines.append(f"| {r['benchmark']} | {r['encoder']} | {r['pooling']} | {hp} | {r['n_queries']} | {r['n_index']} |")
    lines += ["", "## Table 3: silhouette", "", "| benchmark | encoder | pooling | silhouette | samples | classes | note |",
              "|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['benchmark']} | {r['encoder']} | {r['pooling']} | {fmt(r['silhouette'])} | "
                     f"{r['silhouette_samples']} | {r['silhouette_classes']} | {r['silhouette_note']} |")
    if skipped:
        lines += ["", "Skipped encoders:", ""] + [f"- `{s['encoder']}`: {s['reason']}" for s in skipped]
    shown = [b for b in cfg.benchmarks if b in PAPER_TABLE2]
    lines += ["", f"## Table 2, {PAPER_LABEL}", "", "CLS embeddings, raw-L2 faiss, the reference metric code.", "",
              "| benchmark | k | " + " | ".join(PAPER_MODELS) + " |", "|---|---|" + "---:|" * len(PAPER_MODELS)]
    for b in shown:
        for k, values in PAPER_TABLE2[b].items():
            lines.append(f"| {b} | {k} | " + " | ".join(fmt(v) for v in values) + " |")
    lines += ["", f"## Table 3, {PAPER_LABEL}", "", "| benchmark | " + " | ".join(PAPER_MODELS) + " |",
              "|---|" + "---:|" * len(PAPER_MODELS)]
    for b in shown:
        lines.append(f"| {b} | " + " | ".join(fmt(v) for v in PAPER_TABLE3[b]) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = parse_args(EvalConfig, description=__doc__.splitlines()[0])
    if cfg.metric not in ("cosine", "l2"):
        raise SystemExit(f"error: metric must be cosine or l2, got {cfg.metric!r}")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    encoders, skipped = load_encoders(cfg, device)
    benchmarks = {b: load_benchmark(cfg.data, b) for b in cfg.benchmarks}
    rows = []
    for name, encoder in encoders.items():
        vectors = split_vectors(encoder, benchmarks, cfg)
        for benchmark, splits in benchmarks.items():
            rows += evaluate(name, benchmark, splits, vectors[benchmark], cfg)
    rows.sort(key=lambda r: cfg.benchmarks.index(r["benchmark"]))  # stable: encoders keep their order
    payload = {"config": to_dict(cfg), "rows": rows, "skipped": skipped,
               "paper": {"label": PAPER_LABEL, "models": PAPER_MODELS, "table2": PAPER_TABLE2, "table3": PAPER_TABLE3}}
    write_json(cfg.out / "tables.json", payload)
    write_text(cfg.out / "tables.md", markdown(rows, skipped, cfg))
    print(markdown(rows, skipped, cfg))


if __name__ == "__main__":
    main()
