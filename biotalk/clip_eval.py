"""Evaluation of a BioTalk-CLIP model: zero-shot EC naming over every ENZYME EC, retrieval R@k, and kNN.

Everything is measured in the shared space (``get_dna_features`` / ``get_text_features``):
- zero-shot: each gene against one masked description per active ENZYME EC (``describe_ec``; the
  templates listed are averaged), its hierarchical label text (``ec_label_text``: "class; subclass;
  sub-subclass; name"), or both averaged (``zero_shot_texts``). ``zero_shot``: the nearest EC. ``zero_shot_hierarchical``: a softmax
  with the learned temperature, mass summed by EC prefix, the deepest prefix reaching ``tau``
  (``biotalk.hierarchy``, the classifier's decoding); ``tau`` from the config or the grid value with the
  best hF on the split's validation analogue (Valid for seen ECs, valid2 for zero-shot: ``tau_source``). Blocks are ``biotalk.metrics.score_genes`` (a multi-EC gene is one sample).
- retrieval: DNA -> text and text -> DNA over one split's genes and unique texts; a hit is any item of
  the query's EC among the top k.
- kNN: hierarchical precision of the k nearest training genes, on the learned DNA vectors (the raw
  tower's features would only re-measure the tower, a Table 2 row).

Under several processes (``accelerator=``) every process embeds its share of the genes and the vectors
are gathered by index; the main process scores, zero-shot ``ZERO_SHOT_ROWS`` genes at a time (the genes x
candidates probabilities never exist whole), and the others wait at the next collective.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator

from biotalk.data.clip_data import ClipSplit
from biotalk.data.describe import describe_ec
from biotalk.data.enzyme import EnzymeDB
from biotalk.data.schema import ZERO_SHOT_VALID
from biotalk.data.text_clean import decap, mask_ec
from biotalk.ec import ec_prefixes
from biotalk.hierarchy import best_tau, hierarchy_scores, threshold
from biotalk.knn import knn_predict_ecs, knn_search
from biotalk.metrics import knn_hierarchical_precision, score_genes
from biotalk.models.clip import BioTalkClipModel
from biotalk.rng import stream

RECALL_KS = (1, 5, 10)
ZERO_SHOT_ROWS = 2048  # genes per zero-shot chunk: 2,048 x 6,239 candidates are 51 MB of float32


@dataclass
class ClipEvalConfig:
    """The ``eval:`` section of ``train_clip.py``."""

    each_epoch: bool = True  # score Valid (and valid2) after every epoch (metrics.json "history")
    select: Literal["best", "last"] = "best"  # best: keep the epoch with the best selection_score (needs each_epoch)
    batch_size: int = 128  # genes per DNA-tower batch
    knn_k: list[int] = field(default_factory=lambda: [1, 3, 5])
    knn_max_index: int = 0  # cap on training genes in the kNN index (0 = all), seeded subsample
    zero_shot_templates: list[int] = field(default_factory=lambda: [0])  # description templates averaged per EC
    # candidate texts: the templates' descriptions, the hierarchical label text, or both (one mean per EC)
    zero_shot_texts: Literal["templates", "hierarchical", "both"] = "templates"
    zero_shot_tau: float = -1.0  # hierarchical decoding threshold; < 0: chosen on Valid / valid2 (tau_source)
    epoch_max_genes: int = 0  # per-epoch selection scores a seeded subsample of this many genes per split (0 = all)
    patience: int = 0  # stop after this many epochs without a better selection_score (0 = never; needs each_epoch)
    tests: bool = True  # false: the final evaluation scores Valid and valid2 only (rows of a validation ablation)
    tau_grid: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])


@dataclass
class Candidates:
    """Zero-shot candidates: every active EC of an ENZYME release with its masked texts, one list per
    template or label form (each embedded and cached on its own, so adding a template embeds only that one)."""

    ecs: list[str]
    texts: list[list[str]]


def ec_label_text(ec: str, db: EnzymeDB) -> str:
    """The hierarchical label of an EC, "class; subclass; sub-subclass; name" (ENZYME names, EC numbers
    masked; a level named like the one above it, as in "Other lyases; other lyases", is said once). Its
    first three parts are shared by every sibling EC, so a model unsure of the last level still lands near
    the right parent."""
    levels = ec.split(".")
    entry = db.entry(ec)
    names = [db.class_name(".".join(levels[:i])) or "" for i in (1, 2, 3)] + [entry.name if entry else ""]
    parts: list[str] = []
    for name in names:
        name = decap(mask_ec(name).strip().rstrip("."))
        if name and (not parts or name.lower() != parts[-1].lower()):
            parts.append(name)
    return "; ".join(parts)


def zero_shot_candidates(db: EnzymeDB, templates: Sequence[int], texts: str = "templates") -> Candidates:
    """Every active EC with the text lists of ``texts``: ``templates`` (one masked description per template),
    ``hierarchical`` (``ec_label_text``) or ``both``; ``candidate_vectors`` averages the lists."""
    ecs = db.active_ecs()
    described = [[describe_ec(ec, db, t, masked=True) for ec in ecs] for t in templates]
    labels = [[ec_label_text(ec, db) for ec in ecs]]
    options = {"templates": described, "hierarchical": labels, "both": described + labels}
    if texts not in options:
        raise ValueError(f"zero_shot_texts must be one of {tuple(options)}, got {texts!r}")
    return Candidates(ecs, options[texts])


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


def zero_shot_decode(dna: np.ndarray, candidates: torch.Tensor, scale: float, candidate_ecs: Sequence[str],
                     rows: int = ZERO_SHOT_ROWS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per gene, the nearest candidate's index and ``hierarchy_scores`` (nodes, masses), at most ``rows`` genes
    at a time: what the whole probability matrix gives, without it (or its float64 copies). Chunks are of
    equal size, never a sliver: the CPU matrix product of a handful of rows may round differently from the
    whole matrix's, a chunk of 64 rows or more rounds the same."""
    nearest, nodes, mass = [], [], []
    for part in np.array_split(np.arange(len(dna)), max(1, -(-len(dna) // rows))):
        probs = zero_shot_probs(dna[part], candidates, scale)
        nearest.append(probs.argmax(1))
        chunk_nodes, chunk_mass = hierarchy_scores(probs, candidate_ecs)
        nodes.append(chunk_nodes)
        mass.append(chunk_mass)
    return np.concatenate(nearest), np.concatenate(nodes), np.concatenate(mass)


def nodes_tradeoff(nodes: np.ndarray, mass: np.ndarray, y_true: Sequence[str], taus: Sequence[float],
                   genes: Sequence[str]) -> list[dict]:
    """``biotalk.hierarchy.tradeoff`` (per gene) from precomputed ``hierarchy_scores``, row for row its numbers."""
    rows = []
    for tau in taus:
        preds, _ = threshold(nodes, mass, tau)
        s = score_genes(genes, y_true, preds)
        depth = [len(ec_prefixes(p)) for p in preds]
        rows.append({"tau": float(tau), "hP": s["hP"], "hR": s["hR"], "hF": s["hF"],
                     "coverage": s["coverage"], "mean_depth": float(np.mean(depth)) if depth else 0.0})
    return rows


def nearest_ec_scores(nearest: np.ndarray, candidate_ecs: Sequence[str], split: ClipSplit, seen: set[str],
                      genes: Sequence[str] | None = None, identity: Sequence[float | None] | None = None) -> dict:
    """The block of the nearest EC (``nearest``: each record's candidate index), with the records whose EC
    never occurs in training apart (per gene: ``genes``, default one per record; ``by_identity`` with
    ``identity``)."""
    pred = [candidate_ecs[i] for i in nearest]
    genes = split.record_ids if genes is None else genes
    unseen = np.flatnonzero([ec not in seen for ec in split.ecs])
    block = {**score_genes(genes, split.ecs, pred, identity), "unseen_ec_records": len(unseen)}
    if len(unseen):
        block["unseen_ec"] = score_genes([genes[i] for i in unseen], [split.ecs[i] for i in unseen],
                                         [pred[i] for i in unseen])
    return block


def embed_genes(model: BioTalkClipModel, seqs: Sequence[str], batch_size: int,
                accelerator: Accelerator | None = None) -> np.ndarray:
    """``get_dna_features`` of ``seqs`` (rows in input order) with the work shared by the processes: each
    embeds every world-th gene of the length order (equal shares of long genes), the shares are gathered
    and put back by index. Every process gets every row."""
    if accelerator is None or accelerator.num_processes == 1:
        return model.get_dna_features(list(seqs), batch_size).numpy()
    world, rank, window = accelerator.num_processes, accelerator.process_index, model.config.window_nt
    order = np.argsort([min(len(s), window) if window > 0 else len(s) for s in seqs], kind="stable")
    share = -(-len(seqs) // world)
    mine = model.get_dna_features([seqs[i] for i in order[rank::world]], batch_size)
    padded = torch.zeros(share, mine.shape[1])
    padded[: len(mine)] = mine
    gathered = accelerator.gather(padded.to(accelerator.device)).cpu().view(world, share, -1)
    out = torch.empty(len(seqs), mine.shape[1])
    for r in range(world):
        rows = order[r::world]
        out[torch.from_numpy(rows)] = gathered[r, : len(rows)]
    return out.numpy()


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


def epoch_subset(splits: dict[str, ClipSplit], names: Sequence[str], genes: dict[str, list[str]],
                 identity: dict[str, list[float | None]], max_genes: int, seed: int) -> tuple[dict, dict, dict]:
    """``splits``, ``genes`` and ``identity`` cut to a seeded sample of ``max_genes`` genes per split of
    ``names`` (all records of each gene drawn, so a multi-EC gene stays whole); 0 or a smaller split: all.
    Per-epoch selection on a large Valid then costs what it costs on a small one."""
    splits, genes, identity = dict(splits), dict(genes), dict(identity)
    for name in names:
        split = splits[name]
        ids = genes.get(name, split.record_ids)
        unique = list(dict.fromkeys(ids))
        if not max_genes or len(unique) <= max_genes:
            continue
        drawn = {unique[j] for j in stream(seed, "epoch_subset", name).choice(len(unique), max_genes, replace=False)}
        keep = np.array([i for i, g in enumerate(ids) if g in drawn], dtype=np.int64)
        splits[name] = split.subset(keep)
        genes[name] = [ids[i] for i in keep]
        if name in identity:
            identity[name] = [identity[name][i] for i in keep]
    return splits, genes, identity


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
    accelerator: Accelerator | None = None,
    rows: int = ZERO_SHOT_ROWS,
) -> dict | None:
    """Zero-shot and kNN on each split of ``names`` (train genes as the kNN index), retrieval on
    ``retrieval_split`` (None: no retrieval; ``knn=False``: no kNN, as in per-epoch selection). With ``zero_shot_tau < 0`` each split's tau is the best of the grid on its
    validation split (``tau_source``), which ``names`` must hold.
    Zero-shot blocks score genes (``genes[name]``, ``biotalk.data.identity.gene_ids``; default one per
    record), with ``by_identity`` for the splits of ``identity`` (``identity_to_train``).
    With ``accelerator``, every process must call it: genes are embedded in shares (``embed_genes``), the
    main process scores and returns the result, the others return None."""
    genes, identity = genes or {}, identity or {}
    main = accelerator is None or accelerator.is_main_process
    was_training = model.training
    model.eval()
    index = knn_index(train, cfg.knn_max_index, seed)
    index_vectors = embed_genes(model, index.sequences, cfg.batch_size, accelerator) if knn else None
    dna = {name: embed_genes(model, splits[name].sequences, cfg.batch_size, accelerator) for name in names}
    out = None
    if main:  # no collective in here: the other processes are already on their way to the next one
        cand = candidate_vectors(model, candidates, cache_dir)
        out = score(model, dna, splits, names, retrieval_split, train, candidates.ecs, cand, cfg, cache_dir, genes,
                    identity, (index, index_vectors) if knn else None, rows)
    model.train(was_training)
    return out


def score(model: BioTalkClipModel, dna: dict[str, np.ndarray], splits: dict[str, ClipSplit], names: Sequence[str],
          retrieval_split: str | None, train: ClipSplit, candidate_ecs: list[str], cand: torch.Tensor,
          cfg: ClipEvalConfig, cache_dir: Path | None, genes: dict, identity: dict,
          knn: tuple[ClipSplit, np.ndarray] | None, rows: int) -> dict:
    """``evaluate``'s blocks from the embedded genes (one process)."""
    scale = model.scale().float().item()
    seen = set(train.ecs)
    out: dict = {"retrieval": {}, "zero_shot": {}, "zero_shot_hierarchical": {}, "zero_shot_tradeoff": {}, "knn": {}}
    nodes = {}
    for name in names:
        split = splits[name]
        if name == retrieval_split:
            texts = model.get_text_features(split.texts, cache_dir=cache_dir).numpy()
            out["retrieval"] = {"split": name, **retrieval_scores(dna[name], texts, split)}
        nearest, *nodes[name] = zero_shot_decode(dna[name], cand, scale, candidate_ecs, rows)
        out["zero_shot"][name] = nearest_ec_scores(nearest, candidate_ecs, split, seen, genes.get(name), identity.get(name))
        out["zero_shot_tradeoff"][name] = nodes_tradeoff(*nodes[name], split.ecs, cfg.tau_grid,
                                                         genes.get(name, split.record_ids))
        if knn:
            out["knn"][name] = knn_scores(knn[1], knn[0].ecs, dna[name], split.ecs, cfg.knn_k)
    out["zero_shot_hierarchical"] = {"tau": {}, "tau_from": {}}
    for name in names:
        source = "config" if cfg.zero_shot_tau >= 0 else tau_source(name, names)
        tau = cfg.zero_shot_tau if source == "config" else best_tau(out["zero_shot_tradeoff"][source])
        preds = threshold(*nodes[name], tau)[0]
        out["zero_shot_hierarchical"]["tau"][name], out["zero_shot_hierarchical"]["tau_from"][name] = tau, source
        out["zero_shot_hierarchical"][name] = score_genes(genes.get(name, splits[name].record_ids), splits[name].ecs,
                                                          preds, identity.get(name))
    return out
