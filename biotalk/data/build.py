"""Build the BioTalk benchmarks (I-IV, Test-I, Test-II) from GenBank genomes and ExPASy ENZYME.

Pipeline: read records -> resolve transferred ECs (one label space: every label an active ENZYME EC)
-> MMseqs2 UniRef-like clusters -> record store (slim split columns in memory, long strings on disk)
-> splits (strict identity rule, or the paper's) with leakage guarantees -> cluster-aware balancing
-> parquet files written a partition at a time with their descriptions, Table 1, rejects, dataset card.
Everything is written into a temporary folder that replaces ``out`` only at
the end, so a failed build leaves no partial output. One seed gives byte-identical files.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import polars as pl
from tqdm import tqdm

from biotalk.config import to_dict
from biotalk.data.balance import balance, median_target
from biotalk.data.buckets import ROW, drop_rows, later_copies
from biotalk.data.card import dataset_card
from biotalk.data.cluster import LEVEL_COLUMNS, cluster_proteins
from biotalk.data.enzyme import EnzymeDB, load_enzyme
from biotalk.data.errors import InputError
from biotalk.data.fragments import tile_fragments
from biotalk.data.genbank import Reject, genbank_files, read_genbank_dir
from biotalk.data.identity import IDENTITY_FILE
from biotalk.data.near import near_proteins
from biotalk.data.outofcore import RecordStore, keyed_near, stage_records, store_identity, write_splits
from biotalk.data.schema import (
    BUILD_JSON,
    COLUMNS,
    SPLIT_KEYS,
    SPLITS,
    ZERO_SHOT_VALID,
    benchmark_name,
    enzyme_record,
    split_key,
)
from biotalk.data.sources import UniProtInputs, read_uniprot, uniprot_files
from biotalk.data.split import CURATED, PAPER, SplitResult, SplitRules, split_benchmarks
from biotalk.io import atomic_dir
from biotalk.reports import table1
from biotalk.rng import stream

# Keys of the build's random streams (biotalk.rng) after the seed; the splits draw from stream(seed).
BALANCE_STREAM = {"II": 2, "IV": 3}
FRAGMENT_STREAM = 5
FRAGMENT_COLUMNS = ["RecordId", "FragmentIndex", "Start", "Length", "Reverse", "Sequence", "EC"]


@dataclass
class BuildConfig:
    # genbank: raw_dir/genbank/*.gb* with MMseqs2 UniRef-like clusters; uniprot: the UniProt/ENA inputs
    # named in ``uniprot`` with UniProt's own UniRef clusters (biotalk.data.sources)
    source: Literal["genbank", "uniprot"] = "genbank"
    uniprot: UniProtInputs = field(default_factory=UniProtInputs)
    raw_dir: str = "data/raw"
    out: str = "out/mini-benchmark"
    seed: int = 0
    enzyme_dat: str = "expasy_enzyme/enzyme_2018-09-12.dat.gz"  # relative to raw_dir unless absolute
    # 2018 names first (they match enzyme.dat); the 2021 file adds class 7 (Translocases).
    enzclass: list[str] = field(
        default_factory=lambda: ["expasy_enzyme/enzclass_2018-09-12.txt.gz", "expasy_enzyme/enzclass_2021-02-10.txt"]
    )
    target_ii: int | None = None  # records per EC in Benchmark II; None: median per EC of Benchmark-I Train
    target_iv: int | None = None  # same for Benchmark IV from Benchmark-III Train (the paper used 10)
    identities: list[float] = field(default_factory=lambda: [1.0, 0.9, 0.5])
    coverage: float = 0.8
    threads: int = 2
    fragments: bool = False  # also write read-length fragments of every split under Fragments/
    cache_dir: str | None = "cache/clusters"  # None: always recluster (and search again)
    # strict: no Test-I/Test-II record shares a cluster at test_identity with, or is that identical by an MMseqs2
    # search to, any Train/Valid record; paper: the paper's fallback to finer split units (leaky, labelled so).
    split_rules: Literal["strict", "paper"] = "strict"
    test_identity: Literal[0.5, 0.9, 1.0] = 0.5
    valid2_share: float = 0.2  # strict: share of the Test-II ECs held out as valid2 (zero-shot validation)


def enzyme_inputs(cfg: BuildConfig) -> tuple[Path, list[Path]]:
    """(enzyme.dat, enzclass files) of a build config, resolved against ``raw_dir`` unless absolute."""
    def raw(name: str) -> Path:
        return Path(name) if Path(name).is_absolute() else Path(cfg.raw_dir) / name

    return raw(cfg.enzyme_dat), [raw(p) for p in cfg.enzclass]


def source_files(cfg: BuildConfig) -> list[Path]:
    """The record inputs of the build's front end (checked: ``InputError`` names a missing one)."""
    if cfg.source == "uniprot":
        return [p for paths in uniprot_files(cfg.raw_dir, cfg.uniprot).values() for p in paths]
    return genbank_files(cfg.raw_dir)


def read_source(cfg: BuildConfig, work: Path) -> tuple[pl.LazyFrame, list[Reject]]:
    """Records and rejects of the front end; UniProt records already carry their UniRef columns and are
    a lazy frame over Parquet in ``work`` (bounded memory), GenBank's a small table in memory."""
    if cfg.source == "uniprot":
        return read_uniprot(cfg.raw_dir, cfg.uniprot, work / "uniprot")
    records, rejects = read_genbank_dir(cfg.raw_dir)
    return records.lazy(), rejects


def resolve_ecs(records: pl.LazyFrame, db: EnzymeDB) -> tuple[pl.LazyFrame, list[Reject]]:
    """Relabel transferred ECs with their current EC; reject deleted or ambiguous (split) ones, ECs the
    release does not know (newer than it: no zero-shot candidate could name them), and a row that
    becomes a second copy of the same (CDS, EC). Every label left is an active EC of ``db``. Lazy: labels
    join from a table of the unique ECs (``replace_strict`` leaves the streaming engine), rejects are rows
    filtered out, second copies are found on hashes of the record ids (``buckets.later_copies``)."""
    ecs = records.select(pl.col("EC").unique()).collect(engine="streaming")["EC"].to_list()
    labels = pl.LazyFrame([(ec, db.resolve(ec), db.resolve(ec) in db.entries) for ec in ecs], orient="row",
                          schema={"EC": pl.Utf8, "_new": pl.Utf8, "_known": pl.Boolean})  # fmt: skip
    records = records.join(labels, on="EC", how="left", maintain_order="left")
    unknown = pl.col("_new").is_not_null() & ~pl.col("_known")
    out = records.filter(pl.col("_new").is_null() | unknown).select("SourceFile", "RecordId", "EC", "_new")
    out = out.collect(engine="streaming").sort(pl.col("_new").is_not_null(), maintain_order=True)  # deleted first
    rejects = [
        Reject(src, rid, f"EC not current in ENZYME: {ec} was deleted or split into {db.successors(ec)}" if new is None
               else f"EC unknown to the ENZYME release: {ec} is not in it (newer than the release?)")
        for src, rid, ec, new in out.iter_rows()
    ]  # fmt: skip
    records = records.filter(pl.col("_new").is_not_null() & ~unknown).with_columns(
        pl.col("_new").alias("EC"), (pl.col("EmblCdsId") + "|" + pl.col("_new")).alias("RecordId")
    ).drop("_new", "_known")
    copies = later_copies(records, "RecordId", [], ["SourceFile"])
    rejects += [
        Reject(src, rid, "duplicate (CDS, EC) after following a transferred EC")
        for src, rid in copies.select("SourceFile", "RecordId").iter_rows()
    ]
    return drop_rows(records, copies[ROW]), rejects


def _rules(cfg: BuildConfig, near: pl.DataFrame) -> SplitRules:
    return SplitRules(level=LEVEL_COLUMNS[float(cfg.test_identity)], near=near, valid2_share=cfg.valid2_share)


def split_rules(records: pl.DataFrame, cfg: BuildConfig) -> SplitRules:
    """The split rules of a build; strict ones carry the MMseqs2 search of curated proteins (the only
    possible test records) against every protein at ``test_identity`` over ``coverage`` of both."""
    if cfg.split_rules == "paper":
        return PAPER
    curated = records.filter(pl.col("DBtype") == CURATED)["Protein"].to_list()
    near = near_proteins(curated, records["Protein"].to_list(), float(cfg.test_identity), cfg.coverage,
                         cfg.threads, cfg.cache_dir)  # fmt: skip
    return _rules(cfg, near)


def store_rules(store: RecordStore, cfg: BuildConfig) -> SplitRules:
    """``split_rules`` for the slim table of a record store (search pairs as protein keys)."""
    if cfg.split_rules == "paper":
        return PAPER
    return _rules(cfg, keyed_near(store, float(cfg.test_identity), cfg.coverage, cfg.threads, cfg.cache_dir))


def assign(records: pl.DataFrame, cfg: BuildConfig,
           rules: SplitRules) -> tuple[dict[str, pl.DataFrame], SplitResult, dict[str, int]]:  # fmt: skip
    """Split and balance ``records`` (any table with the split columns: the full one or a store's slim one)
    into ``{"Benchmark-I/Train": df, ..., "Test/test1": df}`` in ``SPLIT_KEYS`` order, rows not sorted.

    Returns (splits, the split result: removed rows and untested ECs, balance targets).
    """
    result = split_benchmarks(records, cfg.seed, rules)
    out = {split_key("I", s): result.full.filter(pl.col("Split") == s) for s in ("train", "valid")}
    out |= {split_key("III", s): result.curated.filter(pl.col("Split") == s) for s in SPLITS}
    if cfg.split_rules == "paper" or cfg.valid2_share <= 0:  # no valid2 split
        del out[split_key("III", ZERO_SHOT_VALID)]
    for name, df in out.items():
        if df.is_empty():
            raise InputError(f"empty result: {name} has no records (input {cfg.raw_dir})")
    targets = {}
    for source, balanced, target in (("I", "II", cfg.target_ii), ("III", "IV", cfg.target_iv)):
        bench = benchmark_name(balanced)
        targets[bench] = target or median_target(out[split_key(source, "train")])
        rng = stream(cfg.seed, BALANCE_STREAM[balanced])
        for split in ("train", "valid"):
            out[split_key(balanced, split)] = balance(out[split_key(source, split)], targets[bench], rng)
    out = {name: df if "IsDuplicate" in df.columns else df.with_columns(pl.lit(False).alias("IsDuplicate"))
           for name, df in out.items()}  # fmt: skip
    return {name: out[name] for name in SPLIT_KEYS if name in out}, result, targets


def assemble(records: pl.DataFrame, cfg: BuildConfig) -> tuple[dict[str, pl.DataFrame], SplitResult, dict[str, int]]:
    """The in-memory path: ``assign`` on described, clustered records, as whole tables in written order
    (``Test/valid2`` under strict rules). ``build_benchmarks`` gives the same files out of core."""
    splits, result, targets = assign(records, cfg, split_rules(records, cfg))
    return {name: df.select(COLUMNS).sort("EC", "RecordId", "IsDuplicate") for name, df in splits.items()}, result, targets


def split_stats(splits: dict[str, pl.DataFrame]) -> dict[str, dict[str, dict[str, int]]]:
    """Records and distinct ECs per split, in the layout of the paper's Table 1 (``stats.json``)."""
    stats: dict[str, dict[str, dict[str, int]]] = {}
    for name, df in splits.items():
        group, split = name.split("/")
        stats.setdefault(group, {})[split] = {"records": df.height, "classes": df["EC"].n_unique()}
    return stats


def fragment_table(df: pl.DataFrame, seed: int, cache: dict[str, list]) -> pl.DataFrame:
    """Tile every distinct gene of a split with read-length fragments (reverse complement p = 0.5); each
    gene draws from a stream of its own, so it gets the same fragments in every split that holds it."""
    rows = []
    for record_id, ec, seq in df.filter(~pl.col("IsDuplicate")).select("RecordId", "EC", "Sequence").iter_rows():
        if record_id not in cache:
            cache[record_id] = tile_fragments(seq, stream(seed, FRAGMENT_STREAM, record_id))
        for i, frag in enumerate(cache[record_id]):
            rows.append((record_id, i, frag.start, frag.length, frag.reverse, frag.sequence, ec))
    schema = dict(zip(FRAGMENT_COLUMNS, [pl.Utf8, pl.Int32, pl.Int32, pl.Int32, pl.Boolean, pl.Utf8, pl.Utf8], strict=True))
    return pl.DataFrame(rows, schema=schema, orient="row")


def _write(out: Path, cfg: BuildConfig, stats: dict, result: SplitResult, rejects: list[Reject],
           targets: dict[str, int], inputs: list[Path], enzyme: dict, paper_stats: dict | None) -> None:  # fmt: skip
    """Everything but the split tables: stats, rejects, removed rows, build.json, sources and the card."""
    (out / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    rejects_df = pl.DataFrame(
        [(r.source, r.record, r.reason) for r in rejects], schema=["source", "record", "reason"], orient="row"
    )
    rejects_df.write_csv(out / "rejects.tsv", separator="\t")
    result.removed.write_csv(out / "removed.tsv", separator="\t")
    config = {k: v for k, v in to_dict(cfg).items() if k != "out"}  # the output folder may move; bytes must not
    strict = cfg.split_rules == "strict"
    build = {"config": config, "enzyme": enzyme, "balance_targets": targets, "rejects": len(rejects),
             "removed": result.removed.height, "split_rules": cfg.split_rules,
             "test_identity": float(cfg.test_identity) if strict else None, "untested_ecs": len(result.untested)}
    (out / BUILD_JSON).write_text(json.dumps(build, indent=2, sort_keys=True) + "\n")
    sources = Path(cfg.raw_dir) / "SOURCES.md"
    if sources.is_file():
        shutil.copyfile(sources, out / "SOURCES.md")
    (out / "README.md").write_text(dataset_card(cfg, stats, targets, result, rejects, inputs, paper_stats))


def scan_records(cfg: BuildConfig, db: EnzymeDB, work: Path) -> tuple[pl.LazyFrame, list[Reject]]:
    """Records of the front end with current ECs and UniRef columns (MMseqs2 clusters for GenBank), lazy:
    UniProt's over Parquet in ``work``, never collected whole (GenBank's are clustered in memory)."""
    records, rejects = read_source(cfg, work)
    records, ec_rejects = resolve_ecs(records, db)
    if records.select("RecordId").head(1).collect(engine="streaming").is_empty():  # one column: a cheap look
        where = Path(cfg.raw_dir) / "genbank" if cfg.source == "genbank" else Path(cfg.raw_dir)
        raise InputError(f"empty result: no usable CDS record in {where} ({cfg.source} inputs)")
    if cfg.source == "genbank":  # UniProt records carry UniProt's clusters
        ids = [float(i) for i in cfg.identities]
        records = cluster_proteins(records.collect(), ids, cfg.coverage, cfg.threads, work / "cluster", cfg.cache_dir).lazy()
    return records, rejects + ec_rejects


def read_records(cfg: BuildConfig, db: EnzymeDB) -> tuple[pl.DataFrame, list[Reject]]:
    """``scan_records`` collected: the in-memory path (tests, small inputs)."""
    with tempfile.TemporaryDirectory(prefix="biotalk-records-") as work:
        records, rejects = scan_records(cfg, db, Path(work))
        return records.collect(), rejects


def build_benchmarks(cfg: BuildConfig) -> Path:
    """Run the whole build; return the output folder. Raises ``InputError`` for a missing input or
    an empty result, leaving no output behind. Splits are made on the slim table of a record store
    whose long columns stay on disk (``biotalk.data.outofcore``)."""
    enzyme_dat, enzclass = enzyme_inputs(cfg)
    inputs = [enzyme_dat, *enzclass, *source_files(cfg)]  # checked before any work or progress output
    for path in (enzyme_dat, *enzclass):
        if not path.is_file():
            raise InputError(f"ENZYME file not found: {path} (enzyme_dat/enzclass, relative to raw_dir={cfg.raw_dir})")
    if cfg.split_rules == "strict" and float(cfg.test_identity) not in map(float, cfg.identities):
        raise InputError(f"test_identity {cfg.test_identity} is not one of the clustered identities {cfg.identities}")
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(total=5, desc="build", unit="step") as steps, \
            tempfile.TemporaryDirectory(prefix=f".{out.name}.work-", dir=out.parent) as work:  # fmt: skip
        steps.set_postfix_str("ENZYME")
        db = load_enzyme(enzyme_dat, enzclass)
        steps.update()
        steps.set_postfix_str(cfg.source)
        records, rejects = scan_records(cfg, db, Path(work))
        steps.update()
        steps.set_postfix_str("stage")
        store = stage_records(records, Path(work) / "records")
        del records
        steps.update()
        steps.set_postfix_str("splits")
        splits, result, targets = assign(store.slim, cfg, store_rules(store, cfg))
        result = store.decoded(result)  # removed rows and untested ECs as strings
        # Table 1 by the paper's rules beside the strict one, for the card (those splits are not written).
        paper = replace(cfg, split_rules="paper")
        paper_stats = split_stats(assign(store.slim, paper, PAPER)[0]) if cfg.split_rules == "strict" else None
        steps.update()
        steps.set_postfix_str("write")
        stats = split_stats(splits)
        fragments = (lambda table: fragment_table(table, cfg.seed, {})) if cfg.fragments else None
        with atomic_dir(out) as tmp:
            write_splits(tmp, store, splits, db, cfg.seed, Path(work) / "splits", fragments)
            _write(tmp, cfg, stats, result, rejects, targets, inputs, enzyme_record(enzyme_dat, enzclass), paper_stats)
            store_identity(store, splits, cfg.threads, cfg.cache_dir).write_parquet(tmp / IDENTITY_FILE)
        steps.update()
    print(table1(stats))
    return out
