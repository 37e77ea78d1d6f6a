"""Text -> gene retrieval with a trained BioTalk-CLIP model: embed a gene collection once with the DNA
tower and head, then answer free-text queries with the nearest genes in the shared space (faiss, cosine).

The gene index is cached on disk, keyed by the model's files and the exact sequences, so a second query
against the same collection embeds only the query text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
from tqdm.auto import tqdm

from biotalk.data.clip_data import crop
from biotalk.embeddings import sequences_digest
from biotalk.io import atomic_path, write_json
from biotalk.knn import knn_search
from biotalk.models.clip import BioTalkClipModel
from biotalk.models.encoders import directory_fingerprint

INDEX_VERSION = 1


@dataclass
class GeneIndex:
    """Shared-space embeddings (L2-normalised, one row per gene) and the genes' table, in the same order."""

    embeddings: np.ndarray
    genes: pl.DataFrame


def model_fingerprint(model_dir: str | Path) -> str:
    """Content hash of a ``save_pretrained`` directory: config, heads and the DNA tower's files."""
    model_dir = Path(model_dir)
    parts = [directory_fingerprint(model_dir)]
    if (model_dir / "dna_encoder").is_dir():
        parts.append(directory_fingerprint(model_dir / "dna_encoder"))
    return hashlib.sha256("".join(parts).encode()).hexdigest()


@torch.no_grad()
def embed_genes(model: BioTalkClipModel, sequences: list[str], batch_size: int = 64,
                progress: bool = True) -> np.ndarray:
    """Shared-space embeddings of genes (the model's training window from the gene start, as in its
    evaluation), in input order; batches of similar length so little padding is computed."""
    model.eval()
    window = model.config.window_nt
    windows = [crop(s, window, None) for s in sequences]
    order = np.argsort([len(s) for s in windows], kind="stable")
    out = np.zeros((len(windows), model.config.projection_dim), dtype=np.float32)
    for start in tqdm(range(0, len(order), batch_size), desc="embed genes", disable=not progress, leave=False):
        rows = order[start : start + batch_size]
        enc = model.dna_encoder.tokenize([windows[i] for i in rows])
        feats = model.dna_features(*(enc[k].to(model.device) for k in ("input_ids", "attention_mask", "special_tokens_mask")))
        out[rows] = model.project_dna(feats).float().cpu().numpy()
    return out


def load_gene_index(model: BioTalkClipModel, model_dir: str | Path, genes: pl.DataFrame, cache_dir: str | Path | None,
                    batch_size: int = 64) -> GeneIndex:
    """The index of ``genes`` (a table with a ``Sequence`` column), read from the cache when the same
    model files and sequences were embedded before, else embedded and cached (atomic write)."""
    if "Sequence" not in genes.columns:
        raise ValueError(f"gene table has no Sequence column (columns: {', '.join(genes.columns)})")
    seqs = genes["Sequence"].to_list()
    if cache_dir is None:
        return GeneIndex(embed_genes(model, seqs, batch_size), genes)
    key = {"version": INDEX_VERSION, "model": model_fingerprint(model_dir), "data": sequences_digest(seqs), "n": len(seqs)}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"gene_index_{digest}.npy"
    if path.is_file():
        embeddings = np.load(path)
        if embeddings.shape != (len(seqs), model.config.projection_dim):
            raise ValueError(f"{path}: cached shape {embeddings.shape} != {(len(seqs), model.config.projection_dim)}")
        return GeneIndex(embeddings, genes)
    embeddings = embed_genes(model, seqs, batch_size)
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.save(handle, embeddings)
    write_json(path.with_suffix(".json"), key)
    return GeneIndex(embeddings, genes)


@torch.no_grad()
def search(model: BioTalkClipModel, index: GeneIndex, query: str, k: int = 5,
           columns: tuple[str, ...] = ("RecordId", "EC", "Organism")) -> list[dict]:
    """The ``k`` genes nearest to a free-text query, best first: ``rank``, ``score`` (cosine) and ``columns``."""
    if not query.strip():
        raise ValueError("empty query")
    model.eval()
    text = model.project_text(model.embed_texts([query])).float().cpu().numpy()
    scores, rows = knn_search(index.embeddings, text, min(k, len(index.embeddings)))
    present = [c for c in columns if c in index.genes.columns]
    table = index.genes.select(present).to_dicts()
    return [{"rank": r + 1, "score": float(s), **table[i]} for r, (s, i) in enumerate(zip(scores[0], rows[0], strict=True))]
