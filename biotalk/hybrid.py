"""Homology hybrid: the EC of a confident MMseqs2 hit against Train, else the DNA–text model's prediction.

A gene whose best hit (``biotalk.baselines.homology_transfer``) is at least ``t`` identical takes the hit's EC;
every other gene (a weaker hit, or none) takes the CLIP model's zero-shot prediction (hierarchical decoding,
``biotalk.clip_eval``, or the nearest EC). ``t = 0`` is homology wherever a hit exists, ``t > 1`` the model
alone. ``t`` and the fallback's decoding threshold tau are chosen together over grids on Valid (for Test-I) and
valid2 (for Test-II), the splits ``clip_eval.tau_source`` names: test predictions never enter the choice. The
model alone keeps its own tau (chosen on all genes of the validation split, as ``clip_eval`` does).

Identity here is the best hit's (MMseqs2 ``pident`` / 100, the hit that transfers its EC); the strata of the
reports are the benchmark's stored identity to training (``biotalk.data.identity``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from biotalk.baselines import homology_transfer
from biotalk.clip_eval import (
    Candidates,
    ClipEvalConfig,
    candidate_vectors,
    embed_genes,
    nodes_tradeoff,
    tau_source,
    zero_shot_decode,
)
from biotalk.hierarchy import best_tau, threshold
from biotalk.metrics import score_genes
from biotalk.models.clip import BioTalkClipModel

MODEL_ALONE = 1.01  # any t above 1: no hit is confident enough
DEFAULT_GRID = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0, MODEL_ALONE)


@dataclass
class SplitData:
    """One split as the hybrid needs it: genes (multi-EC scoring), true ECs, DNA and proteins, in record order."""

    genes: list[str]
    ecs: list[str]
    sequences: list[str]
    proteins: list[str]


@dataclass
class Homology:
    """Per record, the best training hit's EC and identity (0..1); None without a hit."""

    ecs: list[str | None]
    identity: list[float | None]


def best_hit_homology(queries: Sequence[str], train_proteins: Sequence[str], train_ecs: Sequence[str],
                      max_evalue: float = 1e-5, threads: int = 1, sensitivity: float = 5.7) -> Homology:
    """``homology_transfer`` with each record's best-hit identity. Its hit table indexes the distinct query
    proteins in sorted order (what ``homology_transfer`` searches)."""
    ecs, hits = homology_transfer(queries, train_proteins, train_ecs, max_evalue, threads, sensitivity)
    searched = sorted({p for p in queries if p})
    best = {searched[q]: pident / 100 for q, pident in zip(hits["query"], hits["pident"], strict=True)}
    return Homology(ecs, [best.get(p) if ec is not None else None for p, ec in zip(queries, ecs, strict=True)])


def combine(homology: Homology, model_ecs: Sequence[str | None], t: float) -> list[str | None]:
    """The hit's EC where its identity reaches ``t``, else the model's prediction."""
    return [ec if ec is not None and ident is not None and ident >= t else own
            for ec, ident, own in zip(homology.ecs, homology.identity, model_ecs, strict=True)]


def homology_share(homology: Homology, t: float) -> float:
    """Share of records the hybrid answers from a hit at threshold ``t``."""
    return float(np.mean([i is not None and i >= t for i in homology.identity])) if homology.identity else 0.0


def choose_threshold(split: SplitData, homology: Homology, fallbacks: dict[float | None, list[str | None]],
                     grid: Sequence[float] = DEFAULT_GRID) -> tuple[float, float | None, list[dict]]:
    """``t`` and the model's fallback tau (the keys of ``fallbacks``, predictions per tau) with the best per-gene hF
    on one validation split (ties: the smaller t, then the first tau), and one row per t at its best tau (t, tau,
    hP, hR, hF, coverage, ``homology_share``). The fallback answers only genes without a confident hit, so its
    best depth (tau) need not be the model's own."""
    rows = []
    for t in sorted(grid):
        scored = [(tau, score_genes(split.genes, split.ecs, combine(homology, preds, t)))
                  for tau, preds in fallbacks.items()]
        tau, block = max(scored, key=lambda pair: pair[1]["hF"])  # max keeps the first of equal scores
        rows.append({"t": float(t), "tau": tau, **{k: block[k] for k in ("hP", "hR", "hF", "coverage")},
                     "homology_share": homology_share(homology, t)})
    best = max(rows, key=lambda r: r["hF"])
    return best["t"], best["tau"], rows


class ModelPredictor:
    """The CLIP model's zero-shot EC per record: the nearest candidate EC, or hierarchical decoding whose tau is
    chosen (as ``clip_eval.score`` does) on the split's validation analogue, which must be decoded first."""

    def __init__(self, model: BioTalkClipModel, candidates: Candidates, cfg: ClipEvalConfig, hierarchical: bool = True,
                 cache_dir=None):
        self.model, self.ecs, self.cfg, self.hierarchical = model, candidates.ecs, cfg, hierarchical
        self.vectors = candidate_vectors(model, candidates, cache_dir)
        self.taus: dict[str, float] = {}
        self.tradeoffs: dict[str, list[dict]] = {}

    def predict(self, name: str, split: SplitData, names: Sequence[str]
                ) -> tuple[list[str | None], dict[float | None, list[str | None]]]:
        """The model's predictions for split ``name`` (``names``: every split of the run; tau's source must be among
        them) and its predictions at each tau of the grid (nearest EC: one, under the key None)."""
        dna = embed_genes(self.model, split.sequences, self.cfg.batch_size)
        nearest, nodes, mass = zero_shot_decode(dna, self.vectors, self.model.scale().float().item(), self.ecs)
        if not self.hierarchical:
            preds = [self.ecs[i] for i in nearest]
            return preds, {None: preds}
        self.tradeoffs[name] = nodes_tradeoff(nodes, mass, split.ecs, self.cfg.tau_grid, split.genes)
        if self.cfg.zero_shot_tau >= 0:
            self.taus[name] = self.cfg.zero_shot_tau
        else:
            source = tau_source(name, names)
            if source not in self.tradeoffs:
                raise ValueError(f"tau for {name!r} is chosen on {source!r}: decode {source!r} first")
            self.taus[name] = best_tau(self.tradeoffs[source])
        by_tau = {float(tau): threshold(nodes, mass, tau)[0] for tau in self.cfg.tau_grid}
        return threshold(nodes, mass, self.taus[name])[0], by_tau
