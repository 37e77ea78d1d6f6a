"""Text -> gene retrieval with a trained BioTalk-CLIP model: embed a gene collection once into the shared
space (``get_dna_features``), then answer free-text queries with its nearest genes there (faiss, cosine).

The gene index is cached on disk, keyed by the model's files and the exact sequences, so a second query
against the same collection embeds only the query text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from biotalk.cache import cache_key, cached_array, digest_strings
from biotalk.knn import knn_search
from biotalk.models.clip import BioTalkClipModel
from biotalk.models.encoders import directory_fingerprint

INDEX_VERSION = 2


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
