"""Evaluation of a BioTalk-CLIP model: zero-shot EC naming over every ENZYME EC, retrieval R@k, and kNN.

Everything is measured in the shared space (``get_dna_features`` / ``get_text_features``):
- zero-shot: each gene against one masked description per active ENZYME EC (``describe_ec``; the
  templates listed are averaged). ``zero_shot``: the nearest EC. ``zero_shot_hierarchical``: a softmax
  with the learned temperature, mass summed by EC prefix, the deepest prefix reaching ``tau``
  (``biotalk.hierarchy``, the classifier's decoding); ``tau`` from the config or the grid value with the
  best hF on the split's validation analogue (Valid for seen ECs, valid2 for zero-shot: ``tau_source``). Blocks are ``biotalk.metrics.score_genes`` (a multi-EC gene is one sample).
- retrieval: DNA -> text and text -> DNA over one split's genes and unique texts; a hit is any item of
  the query's EC among the top k.
- kNN: hierarchical precision of the k nearest training genes, on the learned DNA vectors (the raw
  tower's features would only re-measure the tower, a Table 2 row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from biotalk.data.clip_data import ClipSplit
from biotalk.data.describe import describe_ec
from biotalk.data.enzyme import EnzymeDB
from biotalk.data.schema import ZERO_SHOT_VALID
from biotalk.hierarchy import best_tau, hierarchy_scores, threshold, tradeoff
from biotalk.knn import knn_predict_ecs, knn_search
from biotalk.metrics import knn_hierarchical_precision, score_genes
from biotalk.models.clip import BioTalkClipModel
from biotalk.rng import stream

RECALL_KS = (1, 5, 10)


@dataclass
class ClipEvalConfig:
    """The ``eval:`` section of ``train_clip.py``."""

    each_epoch: bool = True  # score Valid (and valid2) after every epoch (metrics.json "history")
    select: Literal["best", "last"] = "best"  # best: keep the epoch with the best selection_score (needs each_epoch)
    batch_size: int = 128  # genes per DNA-tower batch
    knn_k: list[int] = field(default_factory=lambda: [1, 3, 5])
    knn_max_index: int = 0  # cap on training genes in the kNN index (0 = all), seeded subsample
    zero_shot_templates: list[int] = field(default_factory=lambda: [0])  # description templates averaged per EC
    zero_shot_tau: float = -1.0  # hierarchical decoding threshold; < 0: chosen on Valid / valid2 (tau_source)
    tau_grid: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])


@dataclass
class Candidates:
    """Zero-shot candidates: every active EC of an ENZYME release with its masked descriptions, one list per
    template (each embedded and cached on its own, so adding a template embeds only that one)."""

    ecs: list[str]
    texts: list[list[str]]


def zero_shot_candidates(db: EnzymeDB, templates: Sequence[int]) -> Candidates:
    ecs = db.active_ecs()
    return Candidates(ecs, [[describe_ec(ec, db, t, masked=True) for ec in ecs] for t in templates])


def candidate_vectors(model: BioTalkClipModel, candidates: Candidates, cache_dir: Path | None) -> torch.Tensor:
    """One unit vector per candidate EC: the mean of its templates' shared-space vectors, renormalised."""
    mean = np.mean([model.get_text_features(texts, cache_dir=cache_dir).numpy() for texts in candidates.texts], axis=0)
    return F.normalize(torch.from_numpy(mean), dim=-1)


def recall_at(query_ecs: Sequence[str], gallery_ecs: Sequence[str], indices: np.ndarray) -> dict[str, float]:
    """R@k: a query is a hit when any of its top k carries its EC."""
    hits = np.asarray(gallery_ecs, dtype=object)[indices] == np.asarray(query_ecs, dtype=object)[:, None]
    return {f"R@{k}": float(hits[:, :k].any(axis=1).mean()) for k in RECALL_KS}


def retrieval_scores(dna: np.ndarray, texts: np.ndarray, split: ClipSplit) -> dict:
    """DNA -> text over the split's unique texts and text -> DNA over its genes."""
    k = min(max(RECALL_KS), len(split.texts), len(split))
    _, d2t = knn_search(texts, dna, k)
    _, t2d = knn_search(dna, texts, k)
    return {"dna_to_text": recall_at(split.ecs, split.text_ecs, d2t),
            "text_to_dna": recall_at(split.text_ecs, split.ecs, t2d)}


def zero_shot_probs(dna: np.ndarray, candidates: torch.Tensor, scale: float) -> np.ndarray:
    """Softmax over every candidate EC of the similarities times the learned temperature."""
    return torch.softmax(torch.tensor(scale) * torch.from_numpy(dna) @ candidates.t(), dim=1).numpy()


def nearest_ec_scores(probs: np.ndarray, candidate_ecs: Sequence[str], split: ClipSplit, seen: set[str],
                      genes: Sequence[str] | None = None, identity: Sequence[float | None] | None = None) -> dict:
    """The block of the nearest EC (argmax), with the records whose EC never occurs in training apart
    (per gene: ``genes``, default one per record; ``by_identity`` with ``identity``)."""
    pred = [candidate_ecs[i] for i in probs.argmax(1)]
    genes = split.record_ids if genes is None else genes
    unseen = np.flatnonzero([ec not in seen for ec in split.ecs])
    block = {**score_genes(genes, split.ecs, pred, identity), "unseen_ec_records": len(unseen)}
    if len(unseen):
        block["unseen_ec"] = score_genes([genes[i] for i in unseen], [split.ecs[i] for i in unseen],
                                         [pred[i] for i in unseen])
    return block


def knn_scores(index: np.ndarray, index_ecs: Sequence[str], queries: np.ndarray, query_ecs: Sequence[str],
               ks: Sequence[int]) -> dict[str, float]:
    """kNN hierarchical precision (cosine) for each k."""
    _, nb = knn_search(index, queries, max(ks))
    nb_ecs = knn_predict_ecs(index_ecs, nb)
    return {f"k={k}": knn_hierarchical_precision(query_ecs, [r[:k] for r in nb_ecs]) for k in ks}


def knn_index(train: ClipSplit, max_index: int, seed: int) -> ClipSplit:
    """The training genes of the kNN index: all, or a seeded subsample of ``max_index``."""
    if not max_index or len(train) <= max_index:
        return train
    return train.subset(np.sort(stream(seed).choice(len(train), max_index, replace=False)))


def tau_source(name: str, names: Sequence[str]) -> str:
    """The validation split that chooses ``name``'s decoding threshold: Valid for splits of seen ECs (Valid,
    Test-I), valid2 for zero-shot splits (valid2, Test-II) when it was scored; Test-II falls back to Valid
    on builds without valid2 (the paper's rules, the published files)."""
    source = ZERO_SHOT_VALID if name in (ZERO_SHOT_VALID, "test2") and ZERO_SHOT_VALID in names else "valid"
    if source not in names:
        raise ValueError(f"tau for {name!r} is chosen on {source!r}: evaluate it too (or set zero_shot_tau)")
    return source


def selection_score(result: dict) -> float:
    """The number that chooses among epochs: the mean hierarchical zero-shot hF over the validation splits
    scored (Valid for seen ECs, valid2 for unseen ones). Test splits never enter it."""
    blocks = result["zero_shot_hierarchical"]
    return float(np.mean([blocks[name]["hF"] for name in ("valid", ZERO_SHOT_VALID) if name in blocks]))


@torch.no_grad()
def evaluate(
    model: BioTalkClipModel,
    splits: dict[str, ClipSplit],
    names: Sequence[str],
    retrieval_split: str | None,
    train: ClipSplit,
    candidates: Candidates,
    cfg: ClipEvalConfig,
    seed: int = 0,
    cache_dir: Path | None = None,
    genes: dict[str, list[str]] | None = None,
    identity: dict[str, list[float | None]] | None = None,
    knn: bool = True,
) -> dict:
    """Zero-shot and kNN on each split of ``names`` (train genes as the kNN index), retrieval on
    ``retrieval_split`` (None: no retrieval; ``knn=False``: no kNN, as in per-epoch selection). With ``zero_shot_tau < 0`` each split's tau is the best of the grid on its
    validation split (``tau_source``), which ``names`` must hold.
    Zero-shot blocks score genes (``genes[name]``, ``biotalk.data.identity.gene_ids``; default one per
    record), with ``by_identity`` for the splits of ``identity`` (``identity_to_train``)."""
    genes, identity = genes or {}, identity or {}
    was_training = model.training
    model.eval()
    cand = candidate_vectors(model, candidates, cache_dir)
    scale = model.scale().float().item()
    index = knn_index(train, cfg.knn_max_index, seed)
    index_vectors = model.get_dna_features(index.sequences, cfg.batch_size).numpy() if knn else None
    seen = set(train.ecs)
    out: dict = {"retrieval": {}, "zero_shot": {}, "zero_shot_hierarchical": {}, "zero_shot_tradeoff": {}, "knn": {}}
    nodes = {}
    for name in names:
        split = splits[name]
        dna = model.get_dna_features(split.sequences, cfg.batch_size).numpy()
        if name == retrieval_split:
            texts = model.get_text_features(split.texts, cache_dir=cache_dir).numpy()
            out["retrieval"] = {"split": name, **retrieval_scores(dna, texts, split)}
        probs = zero_shot_probs(dna, cand, scale)
        out["zero_shot"][name] = nearest_ec_scores(probs, candidates.ecs, split, seen, genes.get(name), identity.get(name))
        nodes[name] = hierarchy_scores(probs, candidates.ecs)
        out["zero_shot_tradeoff"][name] = tradeoff(probs, candidates.ecs, split.ecs, cfg.tau_grid,
                                                   genes.get(name, split.record_ids))
        if knn:
            out["knn"][name] = knn_scores(index_vectors, index.ecs, dna, split.ecs, cfg.knn_k)
    out["zero_shot_hierarchical"] = {"tau": {}, "tau_from": {}}
    for name in names:
        source = "config" if cfg.zero_shot_tau >= 0 else tau_source(name, names)
        tau = cfg.zero_shot_tau if source == "config" else best_tau(out["zero_shot_tradeoff"][source])
        preds = threshold(*nodes[name], tau)[0]
        out["zero_shot_hierarchical"]["tau"][name], out["zero_shot_hierarchical"]["tau_from"][name] = tau, source
        out["zero_shot_hierarchical"][name] = score_genes(genes.get(name, splits[name].record_ids), splits[name].ecs,
                                                          preds, identity.get(name))
    model.train(was_training)
    return out
