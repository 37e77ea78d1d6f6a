"""``valid2``: a zero-shot validation split carved from Test-II, so that zero-shot choices (tau, checkpoints,
templates, towers) are made without looking at Test-II. Its ECs are in no training set (they were Test-II ECs)
and not in Test-II, and its records share no UniRef50 cluster, gene or search pair with a Test-I or Test-II record.
"""

from __future__ import annotations

import numpy as np
import polars as pl


class _Groups:
    """Union-find over string nodes (``ec:1.1.1.1``, ``u:<UniRef50>``, ...)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def choose_valid2(curated: pl.DataFrame, share: float, near: pl.DataFrame | None, rng: np.random.Generator) -> pl.DataFrame:
    """Relabel whole groups of Test-II ECs ``valid2`` (drawn at random, up to ``share`` of the
    Test-II ECs). A group: the ECs linked by a shared UniRef50 cluster, gene or search pair, so valid2 and
    Test-II share none; a group linked to a Test-I record stays in Test-II."""
    test2 = curated.filter(pl.col("Split") == "test2")
    if share <= 0 or test2.is_empty():
        return curated
    groups, tests = _Groups(), curated.filter(pl.col("Split").is_in(["test1", "test2"]))
    has_protein = "Protein" in tests.columns
    for split, ec, u50, dna, protein in tests.select(
        "Split", "EC", "UniRef50", "DnaKey", pl.col("Protein") if has_protein else pl.lit(None, pl.Utf8)
    ).iter_rows():
        node = f"ec:{ec}" if split == "test2" else "test1"
        for key in (f"u:{u50}", f"d:{dna}", *([f"p:{protein}"] if protein else [])):
            groups.union(node, key)
    if near is not None and has_protein:
        proteins = tests["Protein"].unique().implode()
        pairs = near.filter(pl.col("Protein").is_in(proteins) & pl.col("Near").is_in(proteins))
        for a, b in pairs.iter_rows():
            groups.union(f"p:{a}", f"p:{b}")
    members: dict[str, list[str]] = {}
    for ec in sorted(test2["EC"].unique()):
        members.setdefault(groups.find(f"ec:{ec}"), []).append(ec)
    blocked = groups.find("test1") if "test1" in groups.parent else None
    candidates = sorted((ecs for root, ecs in members.items() if root != blocked), key=lambda ecs: ecs[0])
    target = round(share * sum(len(ecs) for ecs in members.values()))
    chosen: list[str] = []
    for i in np.argsort(rng.random(len(candidates)), kind="stable"):
        if len(chosen) + len(candidates[i]) <= target:
            chosen += candidates[i]
    moved = (pl.col("Split") == "test2") & pl.col("EC").is_in(chosen)
    return curated.with_columns(pl.when(moved).then(pl.lit("valid2")).otherwise(pl.col("Split")).alias("Split"))
