"""Train / valid / test splits, by the strict identity rule (default) or by the BioTalk paper's rules.

Per EC, the records are grouped into units and units are drawn in a random order under the seed (the
reference code took them in sorted-ID order). With n units: n >= 10: ceil(10 %) to test and to valid;
6-9: 2 each; 3-5: 1 each; fewer: 2 units give 1 test + 1 train (1 valid + 1 train without a test set),
1 single DNA sequence is an orphan (Test-II). Without a test set (Benchmark I) the test share stays in train.

- ``paper``: the unit is the coarsest of UniRef50, UniRef90, UniRef100 with >= 3 units, else single DNA
  sequences ("record"), which only keeps a test record's UniRef100 cluster out of training.
- ``strict`` (``SplitRules``): the unit is a cluster at the rule's level (UniRef50 for 50 % identity; a coarser
  level when it has >= 3 units), never finer. An EC whose curated genes all lie in one such cluster cannot be
  tested in-distribution: it stays in training and is not in Test-I (``SplitResult.untested``). Valid is
  disjoint from Train at the level too, and pairs of proteins found by an MMseqs2 search at the identity
  (``SplitRules.near``) are held out like cluster mates. Some Test-II ECs become ``valid2`` (``choose_valid2``).

``split_benchmarks`` runs the paper's two pipelines on one record table and then enforces:
- one DNA sequence sits in one split of a benchmark (a CDS with two ECs is two rows, one split);
- no Test-I/Test-II record, nor a record sharing its split cluster, is in any train or valid set
  (Test-II records keep their whole UniRef50 cluster out; a record-level split keeps the record's
  UniRef100 cluster out, so an identical protein from another genome never trains); the non-curated
  members of a held-out cluster leave Benchmark I;
- every Test-I EC has Benchmark-III training records; no Test-II EC is in any train or valid set.
Rows that break a guarantee are removed (never silently: ``SplitResult.removed`` lists them).

Only the order and equality of ``RecordId``, ``EC`` and the UniRef ids matter, so they may be strings or
order-preserving codes (the record store's slim table, ``biotalk.data.outofcore``): the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from biotalk.data.valid2 import choose_valid2
from biotalk.rng import stream

CLUSTER_LEVELS = ("UniRef50", "UniRef90", "UniRef100")
RECORD_LEVEL = "record"
HELD_OUT_LEVEL = "EC"  # an EC held out whole (only in curated records): no split was made
MIN_UNITS = 3
CURATED = "SwissProt"
VALID2_STREAM = 6  # biotalk.rng key (after the seed) of the valid2 draw; the splits draw from stream(seed)
# When one DNA sequence got several labels, the strongest keeps it: tests are never leaked into.
_PRIORITY = {"train": 0, "valid": 1, "test1": 2, "test2": 3}
_REMOVED_SCHEMA = {"Scope": pl.Utf8, "Reason": pl.Utf8}  # RecordId and EC keep their type (strings or codes)


@dataclass(frozen=True)
class SplitRules:
    """``strict``: units are clusters at ``level`` (or coarser), never finer; ``near``: pairs (``Protein``,
    ``Near``) of proteins an MMseqs2 search found at the level's identity, held out like cluster mates;
    ``valid2_share``: the share of Test-II ECs moved to ``valid2``. ``strict=False``: the paper's rules."""

    strict: bool = True
    level: str = "UniRef50"
    near: pl.DataFrame | None = field(default=None, compare=False)
    valid2_share: float = 0.0


PAPER = SplitRules(strict=False)


@dataclass
class SplitResult:
    """``curated``: SwissProt rows labelled train/valid/test1/test2/valid2 (Benchmark III and the shared
    splits); ``full``: Benchmark-I rows labelled train/valid; ``removed``: rows dropped by a guarantee;
    ``untested``: ECs in Benchmark-III Train with no Test-I record (the rule could not hold one out)."""

    curated: pl.DataFrame
    full: pl.DataFrame
    removed: pl.DataFrame
    untested: list[str]


def with_dna_key(df: pl.DataFrame) -> pl.DataFrame:
    """A 64-bit key of the DNA sequence, for grouping identical genes (never for ordering); a table that
    already has one (the record store's coded slim table, ``biotalk.data.outofcore``) keeps it."""
    if "DnaKey" in df.columns:
        return df
    return df.with_columns(pl.col("Sequence").str.to_uppercase().hash(seed=0).alias("DnaKey"))


def _units(df: pl.DataFrame, rules: SplitRules) -> pl.DataFrame:
    """Choose each EC's split level and give every row its unit there (cluster or DNA)."""
    levels = CLUSTER_LEVELS[: CLUSTER_LEVELS.index(rules.level) + 1] if rules.strict else CLUSTER_LEVELS
    n = {lvl: pl.col(lvl).n_unique().over("EC") for lvl in levels}
    level = pl.when(n[levels[0]] >= MIN_UNITS).then(pl.lit(levels[0]))
    for lvl in levels[1:]:
        level = level.when(n[lvl] >= MIN_UNITS).then(pl.lit(lvl))
    level = level.otherwise(pl.lit(rules.level if rules.strict else RECORD_LEVEL))
    df = df.with_columns(level.alias("SplitLevel"), pl.col("DnaKey").n_unique().over("EC").alias("_genes"))
    unit = pl.when(pl.col("SplitLevel") == RECORD_LEVEL).then(pl.col("RecordId").min().over("EC", "DnaKey"))
    for lvl in CLUSTER_LEVELS:
        unit = unit.when(pl.col("SplitLevel") == lvl).then(pl.col(lvl))
    return df.with_columns(unit.alias("_unit"))


def _shares(n: pl.Expr, few: pl.Expr, with_test: bool) -> tuple[pl.Expr, pl.Expr]:
    """(test units, valid units) for an EC with ``n`` units; ``few``: record level or under 3 units."""
    cluster_share = (
        pl.when(n >= 10).then((n * 0.1).ceil().cast(pl.Int64)).when(n >= 6).then(2).when(n >= 3).then(1).otherwise(0)
    )
    if with_test:
        record_test = pl.when(n >= 2).then(1).otherwise(0)
        record_valid = pl.when(n >= 3).then(1).otherwise(0)
        return (
            pl.when(few).then(record_test).otherwise(cluster_share),
            pl.when(few).then(record_valid).otherwise(cluster_share),
        )
    record_valid = pl.when(n >= 2).then(1).otherwise(0)
    return pl.lit(0), pl.when(few).then(record_valid).otherwise(cluster_share)


def assign_splits(df: pl.DataFrame, rng: np.random.Generator, with_test: bool,
                  rules: SplitRules = SplitRules()) -> pl.DataFrame:  # fmt: skip
    """Label every row ``train``/``valid``/``test``/``orphan`` per EC and record ``SplitLevel``.

    Needs ``EC``, ``RecordId``, ``DnaKey`` and the UniRef columns. Without a test set there are
    no ``test`` or ``orphan`` labels: what cannot be split goes to train (paper, Benchmark I).
    """
    df = _units(df, rules)
    units = df.select("EC", "_unit", "SplitLevel", "_genes").unique().sort("EC", "_unit")
    units = units.with_columns(pl.Series("_draw", rng.random(units.height)))
    n = pl.len().over("EC")
    rank = pl.col("_draw").rank("ordinal").over("EC") - 1
    few = (pl.col("SplitLevel") == RECORD_LEVEL) | (n < MIN_UNITS)
    n_test, n_valid = _shares(n, few, with_test)
    label = (
        pl.when((n == 1) & (pl.col("_genes") == 1) & pl.lit(with_test)).then(pl.lit("orphan"))
        .when(rank < n_test).then(pl.lit("test"))
        .when(rank < n_test + n_valid).then(pl.lit("valid"))
        .otherwise(pl.lit("train"))
    )  # fmt: skip
    units = units.with_columns(label.alias("Split")).select("EC", "_unit", "Split")
    return df.join(units, on=["EC", "_unit"], how="left", maintain_order="left").drop("_unit", "_genes")


def _removed(rows: pl.DataFrame, scope: str, reason: str | pl.Expr) -> pl.DataFrame:
    reason = pl.lit(reason) if isinstance(reason, str) else reason
    return rows.select("RecordId", "EC", pl.lit(scope).alias("Scope"), reason.alias("Reason")).cast(_REMOVED_SCHEMA)


def resolve_dna_conflicts(df: pl.DataFrame, scope: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Keep each DNA sequence in its strongest split only; return (kept, removed)."""
    prio = pl.col("Split").replace_strict(_PRIORITY, return_dtype=pl.Int8)
    top = prio.max().over("DnaKey")
    df = df.with_columns(top.alias("_top"), prio.alias("_prio"))
    keep = pl.col("_prio") == pl.col("_top")
    names = {v: k for k, v in _PRIORITY.items()}
    lost = df.filter(~keep)
    reason = pl.lit("same DNA as a ") + pl.col("_top").replace_strict(names, return_dtype=pl.Utf8) + " record"
    return df.filter(keep).drop("_top", "_prio"), _removed(lost, scope, reason)


def _near(held: pl.DataFrame, rules: SplitRules) -> pl.Series:
    """Proteins the search found near a protein of ``held``."""
    return rules.near.filter(pl.col("Protein").is_in(held["Protein"].implode()))["Near"].unique()


def leak_reason(tests: pl.DataFrame, rules: SplitRules = SplitRules()) -> pl.Expr:
    """Why a row would leak a test record into training (null: it does not). Leaks: the same DNA,
    the same split cluster (Test-I: the cluster at its SplitLevel, UniRef100 for a record-level split;
    Test-II: its UniRef50 cluster), a protein the search found near a test protein (strict),
    or an EC held out in Test-II."""
    reason = pl.when(pl.col("DnaKey").is_in(tests["DnaKey"].implode())).then(pl.lit("same DNA as a test record"))
    for lvl in CLUSTER_LEVELS:
        at_level = (pl.col("SplitLevel") == lvl) & (pl.col("Split") == "test1")
        if lvl == "UniRef50":
            at_level = at_level | (pl.col("Split") == "test2")
        if lvl == "UniRef100":  # a record-level split still keeps identical proteins out of training
            at_level = at_level | ((pl.col("SplitLevel") == RECORD_LEVEL) & (pl.col("Split") == "test1"))
        keys = tests.filter(at_level)[lvl].unique()
        reason = reason.when(pl.col(lvl).is_in(keys.implode())).then(pl.lit(f"in the {lvl} split cluster of a test record"))
    if rules.strict and rules.near is not None:
        near = _near(tests, rules)
        reason = reason.when(pl.col("Protein").is_in(near.implode())).then(pl.lit("near a test protein (MMseqs2 search)"))
    test2_ecs = tests.filter(pl.col("Split") == "test2")["EC"].unique()
    return reason.when(pl.col("EC").is_in(test2_ecs.implode())).then(pl.lit("EC held out in Test-II"))


def _drop(rows: pl.DataFrame, reason: pl.Expr, scope: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``rows`` into (kept, removed) by a reason expression (null: keep)."""
    rows = rows.with_columns(reason.alias("_leak"))
    lost = rows.filter(pl.col("_leak").is_not_null())
    return rows.filter(pl.col("_leak").is_null()).drop("_leak"), _removed(lost, scope, pl.col("_leak"))


def _drop_leaks(rows: pl.DataFrame, tests: pl.DataFrame, scope: str, rules: SplitRules) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``rows`` (none of them a test row) into (kept, removed for leaking a test record)."""
    return _drop(rows, leak_reason(tests, rules), scope)


def drop_valid_leaks(rows: pl.DataFrame, scope: str, rules: SplitRules) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Strict: a train row in the ``rules.level`` cluster of a valid row of its benchmark leaves it."""
    if not rules.strict:
        return rows, _removed(rows.clear(), scope, "")
    keys = rows.filter(pl.col("Split") == "valid")[rules.level].unique()
    shared = (pl.col("Split") == "train") & pl.col(rules.level).is_in(keys.implode())
    return _drop(rows, pl.when(shared).then(pl.lit(f"in the {rules.level} cluster of a valid record")), scope)


def split_curated(curated: pl.DataFrame, other_ecs: pl.Series, rng: np.random.Generator,
                  rules: SplitRules) -> tuple[pl.DataFrame, pl.DataFrame]:  # fmt: skip
    """Benchmark III and the test sets from the curated rows; ``other_ecs``: ECs of non-curated rows.

    Returns (rows labelled train/valid/test1/test2, removed rows).
    """
    held_out = ~pl.col("EC").is_in(other_ecs.implode())
    only_curated = curated.filter(held_out).with_columns(
        pl.lit("test2").alias("Split"), pl.lit(HELD_OUT_LEVEL).alias("SplitLevel")
    )
    split = assign_splits(curated.filter(~held_out), rng, with_test=True, rules=rules).with_columns(
        pl.col("Split").replace({"test": "test1", "orphan": "test2"})
    )
    rows = pl.concat([split, only_curated.select(split.columns)]).sort("RecordId")
    removed = []
    while True:
        rows, lost = resolve_dna_conflicts(rows, "Benchmark-III")
        removed.append(lost)
        is_test = pl.col("Split").is_in(["test1", "test2"])
        tests = rows.filter(is_test)
        kept, lost = _drop_leaks(rows.filter(~is_test), tests, "Benchmark-III", rules)
        removed.append(lost)
        kept, lost = drop_valid_leaks(kept, "Benchmark-III", rules)
        removed.append(lost)
        rows = pl.concat([tests, kept]).sort("RecordId")
        trained = rows.filter(pl.col("Split") == "train")["EC"].unique()
        orphaned = (pl.col("Split") == "test1") & ~pl.col("EC").is_in(trained.implode())
        if rows.filter(orphaned).is_empty():
            break
        # A Test-I EC left without training records becomes out-of-distribution: Test-II.
        rows = rows.with_columns(pl.when(orphaned).then(pl.lit("test2")).otherwise(pl.col("Split")).alias("Split"))
    return rows, pl.concat(removed)


def split_benchmarks(df: pl.DataFrame, seed: int, rules: SplitRules = SplitRules()) -> SplitResult:
    """Both pipelines of the paper on one record table (``DBtype`` marks curated rows), by ``rules``."""
    rng = stream(seed)
    df = with_dna_key(df).sort("RecordId")
    curated_mask = pl.col("DBtype") == CURATED
    other_ecs = df.filter(~curated_mask)["EC"].unique()
    curated, removed_iii = split_curated(df.filter(curated_mask), other_ecs, rng, rules)
    tests = curated.filter(pl.col("Split").is_in(["test1", "test2"]))
    pool = df.filter(~pl.col("RecordId").is_in(tests["RecordId"].implode()))
    pool, removed_i = _drop_leaks(pool, tests, "Benchmark-I", rules)
    full, lost = resolve_dna_conflicts(assign_splits(pool, rng, with_test=False, rules=rules), "Benchmark-I")
    full, lost_valid = drop_valid_leaks(full, "Benchmark-I", rules)
    curated = choose_valid2(curated, rules.valid2_share, rules.near, stream(seed, VALID2_STREAM))
    removed = pl.concat([removed_iii, removed_i, lost, lost_valid]).sort("Scope", "RecordId")
    tested = set(curated.filter(pl.col("Split") == "test1")["EC"])
    untested = sorted(set(curated.filter(pl.col("Split") == "train")["EC"]) - tested)
    return SplitResult(curated.sort("RecordId"), full.sort("RecordId"), removed, untested)
