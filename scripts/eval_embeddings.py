"""Tables 2 and 3: how well frozen DNA embeddings group genes by EC number.

    python scripts/eval_embeddings.py --config configs/eval/mini.yaml [encoders=[kmer:6] metric=l2]

For every encoder x benchmark x pooling:
- Table 2: kNN hierarchical precision at k = 1, 3, 5 (the paper's metric, its denominator fixed): the
  benchmark's train split is the index, the test split the queries; exact faiss search, cosine
  (inner product on normalised vectors) by default, ``metric=l2`` for the reference code's raw L2.
- Table 3: silhouette of the embeddings grouped by EC, on a seeded stratified sample of one split.

Beside them, per benchmark and on the same queries, two baselines scored by the same kNN metric with a
single neighbour (so one value at every k): the majority training EC, and the EC of the best MMseqs2 hit
of the query's protein among the training proteins (no hit: no neighbour, precision 0). When the queries
are a held-out split (test1, test2, valid2), every row also gets ``hP_by_identity``: hP at k = 1 per bin
of the query's identity to the benchmark's training proteins (``biotalk.data.identity``).

Balancing duplicates (``IsDuplicate``) are left out of the index and the silhouette sample: an exact
copy adds no information and would fill neighbour slots with itself. An encoder whose directory is
missing or cannot be loaded is skipped with a warning. Writes ``out/tables.md`` and ``out/tables.json``;
the paper's numbers come in tables of their own: other data, other metric code, not comparable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from biotalk.baselines import homology_transfer, majority_class
from biotalk.cli import run
from biotalk.config import to_dict
from biotalk.data import load_benchmark
from biotalk.data.identity import identity_to_train, proteins
from biotalk.data.schema import SHARED_SPLITS, Benchmark, Split
from biotalk.embeddings import embed_cached, usable_poolings
from biotalk.io import write_json, write_text
from biotalk.knn import knn_predict_ecs, knn_search
from biotalk.metrics import knn_precision_per_query, level_accuracy_at_k, mean_by_identity
from biotalk.models.encoders import DNAEncoder, load_dna_encoder
from biotalk.reports import PAPER_LABEL, PAPER_MODELS, PAPER_TABLE2, PAPER_TABLE3, tables23
from biotalk.silhouette import silhouette
from biotalk.training import resolve_device

log = logging.getLogger("eval_embeddings")
MAJORITY = "majority class (EC)"
HOMOLOGY = "homology transfer (MMseqs2 best hit)"


@dataclass
class HomologyConfig:
    """The homology baseline's search (as ``scripts/table4.py``) and the identity search's threads."""

    max_evalue: float = 1e-5
    sensitivity: float = 5.7
    threads: int = 2


@dataclass
class EvalConfig:
    data: Path = Path("out/mini-benchmark")
    benchmarks: list[Benchmark] = field(default_factory=lambda: ["III", "IV"])
    encoders: list[str] = field(default_factory=lambda: ["kmer:6", "models/lolbert-mini"])
    poolings: list[str] = field(default_factory=lambda: ["cls", "min", "max", "mean"])
    index_split: Split = "train"
    query_split: Split = "test1"
    ks: list[int] = field(default_factory=lambda: [1, 3, 5])
    metric: Literal["cosine", "l2"] = "cosine"  # l2: the reference code's IndexFlatL2 on raw vectors
    silhouette_split: Split = "train"
    silhouette_metric: str = "cosine"
    silhouette_per_class: int = 20
    seed: int = 0
    batch_size: int = 32
    window: int | None = None  # sequence tokens per window (default: the model's limit)
    stride: int | None = None  # default: window // 2
    truncate: bool = False
    trust_remote_code: bool = False
    device: str = "auto"
    homology: HomologyConfig = field(default_factory=HomologyConfig)
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


def knn_scores(query_ecs: list[str], neighbours: list[list], ks: list[int], identity: list | None) -> dict:
    """hP and level accuracy at each k; with ``identity`` (one per query), hP at k = 1 per identity bin."""
    per_query = {k: knn_precision_per_query(query_ecs, [n[:k] for n in neighbours]) for k in dict.fromkeys([1, *ks])}
    scores = {"hP": {str(k): float(np.mean(per_query[k])) for k in ks},
              "level_accuracy": {str(k): level_accuracy_at_k(query_ecs, [n[:k] for n in neighbours]) for k in ks}}
    if identity is not None:
        scores["hP_by_identity"] = mean_by_identity(per_query[1], identity)
    return scores


def query_identity(cfg: EvalConfig, benchmark: str, splits) -> list[float | None] | None:
    """Each query's identity to the benchmark's training proteins; None unless the queries are held out."""
    if cfg.query_split not in SHARED_SPLITS:
        return None
    found = identity_to_train(cfg.data, benchmark, splits, cfg.homology.threads, cache_dir=cfg.cache_dir)
    return found[cfg.query_split]


def baseline_rows(benchmark: str, splits, cfg: EvalConfig, identity: list | None) -> list[dict]:
    """The majority and homology baselines on the queries, each as a single neighbour per query."""
    train, queries = splits[cfg.index_split], splits[cfg.query_split]
    query_ecs = list(queries["EC"])
    majority = majority_class(train["EC"], train["IsDuplicate"])
    found, _ = homology_transfer(proteins(queries), proteins(train), train["EC"], cfg.homology.max_evalue,
                                 cfg.homology.threads, cfg.homology.sensitivity)
    # A query without a hit has no neighbour: None, which knn_precision_per_query scores 0 (never skipped).
    hits = [ec if ec else None for ec in found]
    common = {"benchmark": benchmark, "encoder": None, "pooling": None, "neighbours": 1,
              "n_index": len(unique_rows(train)), "n_queries": len(query_ecs)}
    return [
        {**common, "method": MAJORITY, "ec": majority, "coverage": 1.0,
         **knn_scores(query_ecs, [[majority]] * len(query_ecs), cfg.ks, identity)},
        {**common, "method": HOMOLOGY, "max_evalue": cfg.homology.max_evalue,
         "coverage": sum(ec is not None for ec in hits) / len(hits),
         **knn_scores(query_ecs, [[ec] for ec in hits], cfg.ks, identity)},
    ]


def evaluate(name: str, benchmark: str, splits, vectors: dict, cfg: EvalConfig, identity: list | None) -> list[dict]:
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
            **knn_scores(query_ecs, neighbours, cfg.ks, identity),
            "silhouette": None if np.isnan(sil.score) else sil.score, "silhouette_samples": sil.n_samples,
            "silhouette_classes": sil.n_classes, "silhouette_note": sil.reason, "n_index": len(index_rows), "n_queries": len(query_ecs),
        })
        log.info("%s %s %s: hP@k %s, silhouette %.4f", name, benchmark, pooling, rows[-1]["hP"], sil.score)
    return rows


def main(cfg: EvalConfig) -> None:
    device = resolve_device(cfg.device)
    encoders, skipped = load_encoders(cfg, device)
    benchmarks = {b: load_benchmark(cfg.data, b) for b in cfg.benchmarks}
    identity = {b: query_identity(cfg, b, splits) for b, splits in benchmarks.items()}
    baselines = [r for b, splits in benchmarks.items() for r in baseline_rows(b, splits, cfg, identity[b])]
    rows = []
    for name, encoder in encoders.items():
        vectors = split_vectors(encoder, benchmarks, cfg)
        for benchmark, splits in benchmarks.items():
            rows += evaluate(name, benchmark, splits, vectors[benchmark], cfg, identity[benchmark])
    rows.sort(key=lambda r: cfg.benchmarks.index(r["benchmark"]))  # stable: encoders keep their order
    payload = {"config": to_dict(cfg), "rows": rows, "baselines": baselines, "skipped": skipped,
               "paper": {"label": PAPER_LABEL, "models": PAPER_MODELS, "table2": PAPER_TABLE2, "table3": PAPER_TABLE3}}
    write_json(cfg.out / "tables.json", payload)
    text = tables23(rows, skipped, payload["config"], baselines)
    write_text(cfg.out / "tables.md", text)
    print(text)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(main, EvalConfig, __doc__)
