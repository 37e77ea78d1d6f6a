"""Text -> gene retrieval with a trained BioTalk-CLIP model: embed a gene collection once into the shared
space (``get_dna_features``), then answer free-text queries with its nearest genes there (faiss, cosine).

The gene index is cached on disk, keyed by the model's files and the exact sequences, so a second query
against the same collection embeds only the query text. Genes, not records, are indexed: a record table has
one row per (CDS, EC), and ``gene_table`` folds it to one row per gene with all its ECs, so a hit lists a
multi-EC gene once. ``biotalk.app`` persists such an index (faiss + Parquet) for the web app.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from biotalk.cache import cache_key, cached_array, digest_strings
from biotalk.data.errors import InputError
from biotalk.ec import ec_order_key
from biotalk.knn import knn_search
from biotalk.models.clip import BioTalkClipModel
from biotalk.models.encoders import directory_fingerprint

INDEX_VERSION = 2
GENE_COLUMNS = ("GeneId", "ECs", "Organism", "Splits")  # what a hit shows by default


def gene_table(records: pl.DataFrame) -> pl.DataFrame:
    """One row per gene (its ``EmblCdsId``, else its DNA: ``biotalk.data.identity.gene_ids``'s rule) from a
    record table with ``EC`` and ``Sequence``: ``GeneId``, ``ECs`` (every EC, in EC order), ``RecordIds``,
    ``Splits`` (when a ``Split`` column exists), and the first ``Organism``, ``Description``, ``Sequence``.
    Genes keep the order of their first record."""
    for col in ("EC", "Sequence"):
        if col not in records.columns:
            raise ValueError(f"record table has no {col} column (columns: {', '.join(records.columns)})")
    ids = pl.col("EmblCdsId") if "EmblCdsId" in records.columns else pl.lit(None, pl.Utf8)
    df = records.with_columns(pl.when(ids.fill_null("") != "").then(ids).otherwise(pl.col("Sequence")).alias("GeneId"))
    firsts = [pl.col(c).first() for c in ("Organism", "Description") if c in df.columns]
    lists = [pl.col(c).unique(maintain_order=True).alias(name) for c, name in (("RecordId", "RecordIds"), ("Split", "Splits"))
             if c in df.columns]
    genes = df.group_by("GeneId", maintain_order=True).agg(pl.col("EC").unique(), *lists, *firsts,
                                                           pl.col("Sequence").first())
    genes = genes.with_columns(pl.col("EC").map_elements(lambda ecs: sorted(ecs, key=ec_order_key),
                                                         return_dtype=pl.List(pl.Utf8)).alias("ECs")).drop("EC")
    return genes.select("GeneId", "ECs", pl.exclude("GeneId", "ECs"))


def benchmark_genes(data: str | Path, benchmark: str, splits: list[str]) -> pl.DataFrame:
    """The genes of a built benchmark's splits, one row each with all its ECs and the splits it is in
    (balancing duplicates dropped)."""
    from biotalk.data import load_benchmark

    bench = load_benchmark(data, benchmark=benchmark)
    missing = [s for s in splits if s not in bench]
    if missing:
        raise InputError(f"splits: {data} has no split(s) {missing}; it has {list(bench)}")
    frames = []
    for name in splits:
        df = bench[name].to_polars()
        if "IsDuplicate" in df.columns:
            df = df.filter(~pl.col("IsDuplicate"))
        frames.append(df.with_columns(pl.lit(name).alias("Split")))
    return gene_table(pl.concat(frames, how="diagonal_relaxed"))


@dataclass
class GeneIndex:
    """Shared-space embeddings (L2-normalised, one row per gene) and the genes' table, in the same order."""

    embeddings: np.ndarray
    genes: pl.DataFrame


def model_fingerprint(model_dir: str | Path) -> str:
    """Content hash of a ``save_pretrained`` directory: config, heads and the DNA tower's files."""
    model_dir = Path(model_dir)
    tower = model_dir / "dna_encoder"
    return cache_key(model=directory_fingerprint(model_dir),
                     dna_encoder=directory_fingerprint(tower) if tower.is_dir() else None)


def load_gene_index(model: BioTalkClipModel, model_dir: str | Path, genes: pl.DataFrame, cache_dir: str | Path | None,
                    batch_size: int = 64) -> GeneIndex:
    """The index of ``genes`` (a table with a ``Sequence`` column), read from the cache when the same
    model files and sequences were embedded before, else embedded and cached (``biotalk.cache``)."""
    if "Sequence" not in genes.columns:
        raise ValueError(f"gene table has no Sequence column (columns: {', '.join(genes.columns)})")
    seqs = genes["Sequence"].to_list()
    model.eval()
    key = {"version": INDEX_VERSION, "model": model_fingerprint(model_dir), "data": digest_strings(seqs), "n": len(seqs)}
    embeddings = cached_array(cache_dir, "gene_index", key, lambda: model.get_dna_features(seqs, batch_size).numpy(),
                              (len(seqs), model.config.projection_dim))
    return GeneIndex(embeddings, genes)


@torch.no_grad()
def search(model: BioTalkClipModel, index: GeneIndex, query: str, k: int = 5,
           columns: tuple[str, ...] = ("RecordId", "EC", "Organism")) -> list[dict]:
    """The ``k`` genes nearest to a free-text query, best first: ``rank``, ``score`` (cosine) and ``columns``."""
    if not query.strip():
        raise ValueError("empty query")
    model.eval()
    text = model.get_text_features([query]).numpy()
    scores, rows = knn_search(index.embeddings, text, min(k, len(index.embeddings)))
    present = [c for c in columns if c in index.genes.columns]
    table = index.genes.select(present).to_dicts()
    return [{"rank": r + 1, "score": float(s), **table[i]} for r, (s, i) in enumerate(zip(scores[0], rows[0], strict=True))]
