"""Audit a benchmark folder for leaks between what models learn from and what they are scored on.

Reads ours or the published layout (``biotalk.data.loader``). A record is *exposed* when it shares a key
with a record a model learns from or is selected on: a Test-I/Test-II record against the Train and Valid
of every benchmark, a Valid record against its own benchmark's Train. Checks, one ``Check`` each:

- identical DNA, identical protein (always a leak);
- shared UniRef100/90/50 cluster, from the folder's columns: a leak at the levels at or above the
  identity the build promises (``leak_identity``), reported below it;
- zero-shot ECs: a Test-II EC in any Train or Valid, a valid2 EC in any Train or in Test-II;
- EC text in the model-input text (``DescriptionMasked``, which the loader derives for published files);
- duplicates: a repeated RecordId not marked ``IsDuplicate``, any repeat in a test split;
- optionally our own MMseqs2 search of test proteins against Train/Valid proteins (``search_check``),
  independent of the folder's clusters.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from biotalk import mmseqs
from biotalk.baselines import translate_cds
from biotalk.data.errors import InputError
from biotalk.data.loader import available_benchmarks, load_tables
from biotalk.data.schema import (
    BUILD_JSON,
    TEST_SPLITS,
    ZERO_SHOT_VALID,
    benchmark_name,
    build_command,
)
from biotalk.ec import EC_IN_TEXT_RE

LEVELS = {"UniRef100": 1.0, "UniRef90": 0.9, "UniRef50": 0.5}  # cluster column -> identity
IDENTITIES = tuple(LEVELS.values())
TESTS = TEST_SPLITS  # scored once, at the end: nothing of them may be learned or selected on
LEARNED = ("train", "valid")
EC_MENTION_RE = re.compile(r"\bEC[ :]?\d", re.IGNORECASE)  # "EC 2.7.1" and other partial numbers
EXAMPLES = 3
Status = Literal["PASS", "FAIL", "INFO", "SKIP"]
PAIR_COLUMNS = ["RecordId", "Where", "RecordId_seen", "Where_seen"]


@dataclass
class Check:
    """One line of the report card: FAIL is a leak, INFO a finding below the leak level."""

    name: str
    status: Status
    records: int = 0  # distinct records found (exposed, or carrying the fault)
    by_split: dict[str, int] = field(default_factory=dict)  # those records per split
    by_source: dict[str, int] = field(default_factory=dict)  # per split they are exposed to
    examples: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class Audit:
    path: str
    leak_identity: float
    basis: str  # where the leak level comes from
    totals: dict[str, int]  # distinct records per split
    checks: list[Check]

    @property
    def leaks(self) -> list[Check]:
        return [c for c in self.checks if c.status == "FAIL"]

    def to_dict(self) -> dict:
        return {**asdict(self), "leaks": len(self.leaks)}


def leak_identity(path: Path) -> tuple[float, str]:
    """The identity at which a shared cluster is a leak, and why: build.json's ``test_identity`` under
    strict split rules; else 1.0 (only UniRef100 and identical sequences are leaks)."""
    build = path / BUILD_JSON
    meta = json.loads(build.read_text()) if build.is_file() else {}
    config = meta.get("config", {})
    identity = meta.get("test_identity", config.get("test_identity"))
    rules = meta.get("split_rules", config.get("split_rules"))
    if identity is not None and rules != "paper":
        if float(identity) not in IDENTITIES:
            raise InputError(f"{build}: test_identity {identity} is not a cluster level {IDENTITIES}")
        return float(identity), f"{BUILD_JSON} test_identity {identity}"
    why = f"{BUILD_JSON} split_rules paper" if rules == "paper" else f"no test_identity in {BUILD_JSON}"
    return 1.0, f"{why}: only UniRef100 and identical sequences count as leaks, other levels are reported"


def load_records(path: Path) -> pl.DataFrame:
    """Every split of every benchmark folder in ``path`` in one table (the shared test splits once), with
    ``Benchmark``, ``Split`` and ``Where`` (``Benchmark-I/Train``, ``test1``) and a protein for every row
    (the DNA translated in frame where the folder has none)."""
    present = available_benchmarks(path)  # ours, or the published download's two folders
    if not present:
        raise FileNotFoundError(f"no benchmark folder (Benchmark-I ... Benchmark-IV) in {path}; build one with: "
                                f"{build_command(path)}")
    frames = []
    for b in present:
        for split, df in load_tables(path, b).items():
            shared = split not in LEARNED
            if shared and b != present[0]:
                continue
            where = split if shared else f"{benchmark_name(b)}/{split.capitalize()}"
            frames.append(df.with_columns(Benchmark=pl.lit("" if shared else b), Split=pl.lit(split),
                                          Where=pl.lit(where)))
    records = pl.concat(frames)
    missing = records.filter(pl.col("Protein").is_null())["Sequence"].unique().to_list()
    translated = {dna: translate_cds(dna) for dna in missing}
    return records.with_columns(pl.coalesce("Protein", pl.col("Sequence").replace_strict(translated, default=None)))


def exposures(records: pl.DataFrame, key: str) -> pl.DataFrame:
    """Pairs (held-out record, record it shares ``key`` with): tests against every Train/Valid, Valid
    against its own benchmark's Train. Columns ``PAIR_COLUMNS``."""
    rows = records.filter(pl.col(key).is_not_null() & (pl.col(key) != "")).select(
        "RecordId", "Where", "Benchmark", "Split", key).unique()
    seen = rows.filter(pl.col("Split").is_in(LEARNED)).rename({"RecordId": "RecordId_seen", "Where": "Where_seen"})
    tests = rows.filter(pl.col("Split").is_in(TESTS)).join(seen.drop("Benchmark", "Split"), on=key)
    valid = rows.filter(pl.col("Split") == "valid").join(
        seen.filter(pl.col("Split") == "train").drop("Split"), on=[key, "Benchmark"])
    return pl.concat([tests.select(PAIR_COLUMNS), valid.select(PAIR_COLUMNS)])


def zero_shot_exposures(records: pl.DataFrame) -> pl.DataFrame:
    """Pairs (zero-shot record, record carrying its EC): a Test-II EC in any Train/Valid, a valid2 EC
    in any Train or in Test-II."""
    ecs = records.select("RecordId", "Where", "Split", "EC").unique()
    seen = ecs.rename({"RecordId": "RecordId_seen", "Where": "Where_seen", "Split": "Split_seen"})
    test2 = ecs.filter(pl.col("Split") == "test2").join(seen.filter(pl.col("Split_seen").is_in(LEARNED)), on="EC")
    valid2 = ecs.filter(pl.col("Split") == ZERO_SHOT_VALID).join(
        seen.filter(pl.col("Split_seen").is_in(["train", "test2"])), on="EC")
    return pl.concat([test2.select(PAIR_COLUMNS), valid2.select(PAIR_COLUMNS)])


def pair_check(name: str, pairs: pl.DataFrame, leak: bool, note: str = "") -> Check:
    """A check from exposure pairs: FAIL (``leak``) or INFO when there are any, else PASS."""
    if pairs.is_empty():
        return Check(name, "PASS", note=note)
    held = pairs.select("RecordId", "Where").unique()
    by_split = dict(held.group_by("Where").len().sort("Where").iter_rows())
    by_source = dict(pairs.select("RecordId", "Where", "Where_seen").unique()
                     .group_by("Where_seen").len().sort("Where_seen").iter_rows())
    first = pairs.sort(PAIR_COLUMNS).unique(["RecordId", "Where"], keep="first").sort("Where", "RecordId")
    examples = [f"{r} ({w}) ~ {rs} ({ws})" for r, w, rs, ws in first.head(EXAMPLES).select(PAIR_COLUMNS).iter_rows()]
    return Check(name, "FAIL" if leak else "INFO", held.height, by_split, by_source, examples, note)


def cluster_checks(records: pl.DataFrame, identity: float) -> list[Check]:
    """Shared clusters at each UniRef level of the folder's columns; a leak at levels >= ``identity``."""
    checks = []
    for level, level_identity in LEVELS.items():
        name = f"shared {level} cluster"
        if records.filter(pl.col("Split").is_in(TESTS))[level].is_null().all():
            checks.append(Check(name, "SKIP", note=f"no {level} values in the test splits (try search=true)"))
            continue
        checks.append(pair_check(name, exposures(records, level), leak=level_identity >= identity))
    return checks


def ec_text_check(records: pl.DataFrame) -> Check:
    """EC numbers (full, partial, or 'EC' before a number) in the text models read."""
    texts = records.select("RecordId", "Where", "DescriptionMasked").drop_nulls().unique()
    found = {t for t in texts["DescriptionMasked"].unique().to_list()
             if EC_IN_TEXT_RE.search(t) or EC_MENTION_RE.search(t)}
    hits = texts.filter(pl.col("DescriptionMasked").is_in(list(found))).sort("Where", "RecordId")
    if hits.is_empty():
        return Check("EC text in DescriptionMasked", "PASS")
    examples = [f"{r} ({w}): ...{_mention(t)}..." for r, w, t in hits.head(EXAMPLES).iter_rows()]
    by_split = dict(hits.select("RecordId", "Where").unique().group_by("Where").len().sort("Where").iter_rows())
    return Check("EC text in DescriptionMasked", "FAIL", hits.select("RecordId", "Where").unique().height,
                 by_split, examples=examples)


def _mention(text: str) -> str:
    match = EC_IN_TEXT_RE.search(text) or EC_MENTION_RE.search(text)
    return text[max(0, match.start() - 30) : match.end() + 10]


def duplicate_check(records: pl.DataFrame) -> Check:
    """Repeated RecordIds not marked ``IsDuplicate`` (a balancing copy is marked), and any repeat in a
    test split (test sets are never balanced)."""
    counts = records.group_by("Where", "Split", "RecordId").agg(
        n=pl.len(), unmarked=(~pl.col("IsDuplicate")).sum())
    bad = counts.filter((pl.col("unmarked") > 1) | (pl.col("Split").is_in(TESTS) & (pl.col("n") > 1)))
    if bad.is_empty():
        return Check("duplicates", "PASS")
    bad = bad.sort("Where", "RecordId")
    examples = [f"{r} ({w}) x{n}" for w, r, n in bad.head(EXAMPLES).select("Where", "RecordId", "n").iter_rows()]
    return Check("duplicates", "FAIL", bad.height, dict(bad.group_by("Where").len().sort("Where").iter_rows()),
                 examples=examples)


def search_hits(queries: list[str], targets: list[str], identity: float, coverage: float, threads: int) -> pl.DataFrame:
    """Every MMseqs2 hit of a query protein on a target protein at >= ``identity`` over ``coverage`` of
    both (``--cov-mode 0``, as the clusterer): columns query, target (indices), pident (percent)."""
    return mmseqs.search(queries, targets, ["--min-seq-id", identity, "-c", coverage, "--cov-mode", "0"],
                         ("pident",), threads)


def search_check(records: pl.DataFrame, identity: float, leak: float, coverage: float, threads: int) -> Check:
    """Test proteins searched against every Train/Valid protein: records with a hit at >= ``identity``;
    a leak where the hit reaches the ``leak`` identity."""
    proteins = records.filter(pl.col("Protein").is_not_null() & (pl.col("Protein") != ""))
    tests = proteins.filter(pl.col("Split").is_in(TESTS))
    seen = proteins.filter(pl.col("Split").is_in(LEARNED))
    queries, targets = sorted(set(tests["Protein"])), sorted(set(seen["Protein"]))
    hits = search_hits(queries, targets, identity, coverage, threads)
    hits = hits.with_columns(pl.col("query").replace_strict(dict(enumerate(queries)), return_dtype=pl.Utf8),
                             pl.col("target").replace_strict(dict(enumerate(targets)), return_dtype=pl.Utf8))
    pairs = (tests.select("RecordId", "Where", "Protein").join(hits, left_on="Protein", right_on="query")
             .join(seen.select(pl.col("RecordId").alias("RecordId_seen"), pl.col("Where").alias("Where_seen"),
                               "Protein"), left_on="target", right_on="Protein"))
    found = pairs.select("RecordId", "Where").unique().height
    leaking = pairs.filter(pl.col("pident") >= 100 * leak - 1e-9)
    note = (f"MMseqs2 easy-search, >= {identity:.0%} identity over {coverage:.0%} of both proteins: {found} test "
            f"records hit a Train/Valid protein, {leaking.select('RecordId', 'Where').unique().height} at >= {leak:.0%}")
    name = f"search >= {identity:.0%} identity"
    if not leaking.is_empty():
        return pair_check(name, leaking.select(PAIR_COLUMNS), leak=True, note=note)
    return pair_check(name, pairs.select(PAIR_COLUMNS), leak=False, note=note)


def audit(path: str | Path, identity: float | None = None, search: bool = False, search_identity: float = 0.5,
          coverage: float = 0.8, threads: int = 1) -> Audit:
    """Every check on the folder; ``identity`` overrides the leak level read from build.json."""
    path = Path(path)
    level, basis = (identity, f"given identity={identity}") if identity is not None else leak_identity(path)
    records = load_records(path)
    checks = [
        pair_check("identical DNA", exposures(records, "Sequence"), leak=True),
        pair_check("identical protein", exposures(records, "Protein"), leak=True),
        *cluster_checks(records, level),
        pair_check("zero-shot EC in training", zero_shot_exposures(records), leak=True),
        ec_text_check(records),
        duplicate_check(records),
    ]
    if search:
        checks.append(search_check(records, search_identity, level, coverage, threads))
    totals = dict(records.select("RecordId", "Where").unique().group_by("Where").len().sort("Where").iter_rows())
    return Audit(str(path), level, basis, totals, checks)


def report_card(result: Audit) -> str:
    """One line per check (status, name, counts, a few examples), then the verdict."""
    lines = [f"Audit of {result.path}: a shared cluster is a leak at >= {result.leak_identity:.0%} identity "
             f"({result.basis})"]
    for c in result.checks:
        counts = ", ".join(f"{w} {n}/{result.totals.get(w, 0)}" for w, n in c.by_split.items())
        line = f"{c.status:<4}  {c.name:<28} {c.records:>5} records"
        line += f" ({counts})" if counts else ""
        line += "; exposed to " + ", ".join(f"{w} {n}" for w, n in c.by_source.items()) if c.by_source else ""
        line += "; e.g. " + "; ".join(c.examples) if c.examples else ""
        line += f"  [{c.note}]" if c.note else ""
        lines.append(line)
    leaks = result.leaks
    lines.append(f"LEAKS: {len(leaks)} check(s) failed: {', '.join(c.name for c in leaks)}" if leaks else "CLEAN: no leak")
    return "\n".join(lines)
