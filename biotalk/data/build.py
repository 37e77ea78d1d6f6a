"""Build the BioTalk benchmarks (I-IV, Test-I, Test-II) from GenBank genomes and ExPASy ENZYME.

Pipeline: read records -> resolve transferred ECs -> MMseqs2 UniRef-like clusters -> descriptions
-> paper splits with leakage guarantees -> cluster-aware balancing -> parquet files, Table 1,
rejects, dataset card. Everything is written into a temporary folder that replaces ``out`` only at
the end, so a failed build leaves no partial output. One seed gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

from biotalk.config import to_dict
from biotalk.data.balance import balance, median_target
from biotalk.data.cluster import cluster_proteins
from biotalk.data.describe import describe_records
from biotalk.data.enzyme import EnzymeDB, load_enzyme
from biotalk.data.errors import InputError
from biotalk.data.fragments import tile_fragments
from biotalk.data.genbank import Reject, genbank_files, read_genbank_dir, reject_category
from biotalk.data.loader import COLUMNS
from biotalk.data.split import split_benchmarks
from biotalk.io import atomic_dir

BENCHMARKS = ("Benchmark-I", "Benchmark-II", "Benchmark-III", "Benchmark-IV")
TESTS = ("test1", "test2")
FRAGMENT_COLUMNS = ["RecordId", "FragmentIndex", "Start", "Length", "Reverse", "Sequence", "EC"]


@dataclass
class BuildConfig:
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
    cache_dir: str | None = "cache/clusters"  # None: always recluster


def _raw_path(cfg: BuildConfig, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else Path(cfg.raw_dir) / path


def resolve_ecs(df: pl.DataFrame, db: EnzymeDB) -> tuple[pl.DataFrame, list[Reject]]:
    """Relabel transferred ECs with their current EC; reject deleted or ambiguous (split) ones and
    a row that becomes a second copy of the same (CDS, EC)."""
    current = {ec: db.resolve(ec) for ec in df["EC"].unique().to_list()}
    df = df.with_columns(pl.col("EC").replace_strict(current, return_dtype=pl.Utf8).alias("_new"))
    gone = df.filter(pl.col("_new").is_null())
    rejects = [
        Reject(src, rid, f"EC not current in ENZYME: {ec} was deleted or split into {db.successors(ec)}")
        for src, rid, ec in gone.select("SourceFile", "RecordId", "EC").iter_rows()
    ]
    df = df.filter(pl.col("_new").is_not_null()).with_columns(
        pl.col("_new").alias("EC"), (pl.col("EmblCdsId") + "|" + pl.col("_new")).alias("RecordId")
    )
    first = pl.col("RecordId").is_first_distinct()
    rejects += [
        Reject(src, rid, "duplicate (CDS, EC) after following a transferred EC")
        for src, rid in df.filter(~first).select("SourceFile", "RecordId").iter_rows()
    ]
    return df.filter(first).drop("_new"), rejects


def _table(df: pl.DataFrame) -> pl.DataFrame:
    if "IsDuplicate" not in df.columns:
        df = df.with_columns(pl.lit(False).alias("IsDuplicate"))
    return df.select(COLUMNS).sort("EC", "RecordId", "IsDuplicate")


def assemble(records: pl.DataFrame, cfg: BuildConfig) -> tuple[dict[str, pl.DataFrame], pl.DataFrame, dict[str, int]]:
    """Split and balance described, clustered records into ``{"Benchmark-I/Train": df, ..., "Test/test1": df}``.

    Returns (splits, removed rows, balance targets).
    """
    result = split_benchmarks(records, cfg.seed)
    part = {label: pl.col("Split") == label for label in ("train", "valid", "test1", "test2")}
    out = {
        "Benchmark-I/Train": result.full.filter(part["train"]),
        "Benchmark-I/Valid": result.full.filter(part["valid"]),
        "Benchmark-III/Train": result.curated.filter(part["train"]),
        "Benchmark-III/Valid": result.curated.filter(part["valid"]),
        "Test/test1": result.curated.filter(part["test1"]),
        "Test/test2": result.curated.filter(part["test2"]),
    }
    for name, df in out.items():
        if df.is_empty():
            raise InputError(f"empty result: {name} has no records (input {cfg.raw_dir})")
    targets = {}
    for source, balanced, target, stream in (("I", "II", cfg.target_ii, 2), ("III", "IV", cfg.target_iv, 3)):
        targets[f"Benchmark-{balanced}"] = target or median_target(out[f"Benchmark-{source}/Train"])
        rng = np.random.default_rng([cfg.seed, stream])
        for split in ("Train", "Valid"):
            out[f"Benchmark-{balanced}/{split}"] = balance(out[f"Benchmark-{source}/{split}"], targets[f"Benchmark-{balanced}"], rng)
    order = [f"{b}/{s}" for b in BENCHMARKS for s in ("Train", "Valid")] + [f"Test/{t}" for t in TESTS]
    return {name: _table(out[name]) for name in order}, result.removed, targets


def table1(splits: dict[str, pl.DataFrame]) -> dict[str, dict[str, dict[str, int]]]:
    """Records and distinct ECs per split, in the layout of the paper's Table 1."""
    stats: dict[str, dict[str, dict[str, int]]] = {}
    for name, df in splits.items():
        group, split = name.split("/")
        stats.setdefault(group, {})[split] = {"records": df.height, "classes": df["EC"].n_unique()}
    return stats


def format_table1(stats: dict[str, dict[str, dict[str, int]]]) -> str:
    """Table 1 as a Markdown table (also printed at the end of a build)."""
    head = "| Dataset | Train records | Train classes | Valid records | Valid classes | Test-I records | Test-I classes | Test-II records | Test-II classes |"
    lines = [head, "|" + "---|" * 9]
    for bench in BENCHMARKS:
        cells = [bench]
        for split in ("Train", "Valid"):
            cells += [f"{stats[bench][split]['records']:,}", f"{stats[bench][split]['classes']:,}"]
        tests = ["test1", "test2"] if bench == "Benchmark-III" else []
        for test in ("test1", "test2"):
            cells += [f"{stats['Test'][test]['records']:,}", f"{stats['Test'][test]['classes']:,}"] if test in tests else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _record_rng(seed: int, record_id: str) -> np.random.Generator:
    """A generator per record, so a gene gets the same fragments in every split that holds it."""
    key = int.from_bytes(hashlib.blake2b(record_id.encode(), digest_size=8).digest(), "big")
    return np.random.default_rng([seed, 5, key])


def fragment_table(df: pl.DataFrame, seed: int, cache: dict[str, list]) -> pl.DataFrame:
    """Tile every distinct gene of a split with read-length fragments (reverse complement p = 0.5)."""
    rows = []
    for record_id, ec, seq in df.filter(~pl.col("IsDuplicate")).select("RecordId", "EC", "Sequence").iter_rows():
        if record_id not in cache:
            cache[record_id] = tile_fragments(seq, _record_rng(seed, record_id))
        for i, frag in enumerate(cache[record_id]):
            rows.append((record_id, i, frag.start, frag.length, frag.reverse, frag.sequence, ec))
    schema = dict(zip(FRAGMENT_COLUMNS, [pl.Utf8, pl.Int32, pl.Int32, pl.Int32, pl.Boolean, pl.Utf8, pl.Utf8], strict=True))
    return pl.DataFrame(rows, schema=schema, orient="row")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _count_lines(counts: dict[str, int]) -> str:
    return "\n".join(f"| {k} | {v:,} |" for k, v in sorted(counts.items())) or "| (none) | 0 |"


def dataset_card(cfg: BuildConfig, stats: dict, targets: dict[str, int], removed: pl.DataFrame,
                 rejects: list[Reject], inputs: list[Path]) -> str:  # fmt: skip
    """The dataset card (OUT/README.md): provenance, licences, Table 1, what was removed and why."""
    removed_counts = {f"{s}: {r}": n for s, r, n in removed.group_by("Scope", "Reason").len().iter_rows()}
    reject_counts: dict[str, int] = {}
    for r in rejects:
        reject_counts[reject_category(r.reason)] = reject_counts.get(reject_category(r.reason), 0) + 1
    files = "\n".join(f"| `{p.relative_to(cfg.raw_dir)}` | {p.stat().st_size:,} | `{_sha256(p)}` |" for p in inputs)
    return f"""# BioTalk mini benchmark

DNA sequences of enzyme genes from prokaryotic genomes, each paired with its EC number and a
natural-language description of the enzyme's function, split into the BioTalk benchmarks:
Benchmark I (all records, train/valid), II (I balanced), III (curated SwissProt records only,
train/valid), IV (III balanced), and the shared test sets Test-I (in-distribution, from the curated
records) and Test-II (out-of-distribution: ECs absent from every training set).

Built by `python scripts/build_benchmarks.py` with seed {cfg.seed}; the same inputs and seed give
byte-identical files. Build configuration: `build.json`.

## Table 1

{format_table1(stats)}

Balancing targets (records per EC): Benchmark-II {targets["Benchmark-II"]}, Benchmark-IV {targets["Benchmark-IV"]}
(padding copies have `IsDuplicate = true`).

## Files and columns

`Benchmark-{{I,II,III,IV}}/{{Train,Valid}}.parquet`, `Test/{{test1,test2}}.parquet`; one row per (CDS, EC).
Published BioTalk columns first: `AC` (UniProtKB accession from the CDS cross-reference, else the
protein ID or locus tag), `EC`, `OC` (Bacteria/Archaea), `UniRef100`, `UniRef90`, `UniRef50`,
`EmblCdsId` (protein ID of the CDS), `Sequence` (gene DNA), `Description`, `DBtype` (`SwissProt` when
the CDS cross-references Swiss-Prot, else `Unreviewed`); then `Protein`, `Organism`,
`DescriptionMasked` (no EC number or EC cross-reference: use it to train and prompt without leaking
the label), `TemplateId`, `SplitLevel` (`UniRef50`, `UniRef90`, `UniRef100`, `record`, or `EC` for an
EC held out whole), `IsDuplicate`, `RecordId` (`EmblCdsId|EC`).

**The UniRef columns are computed, not UniProt's.** No UniProt ID mapping is available here, so the
proteins were clustered with MMseqs2 (`easy-cluster`, greedy by length, coverage {cfg.coverage} of both
sequences, identities {cfg.identities}), hierarchically like UniRef: the 100 % representatives were
clustered at 90 %, those at 50 %, so each 90 cluster lies in one 50 cluster. IDs name the
representative: `UniRef50_<AC>`.

## Splits and guarantees

Per EC, clusters are drawn at random under the seed (UniRef50, falling back to UniRef90, UniRef100,
then single sequences when an EC has fewer than 3 units). ECs found only in curated records and
curated ECs that cannot be split go to Test-II. Guarantees: one DNA sequence sits in one split of a
benchmark; no Test-I/Test-II record, nor a record sharing its split cluster (UniRef100 when the split
fell back to single records; Test-II: its UniRef50 cluster), is in any train or valid set; every Test-I EC is in Benchmark-III Train; no Test-II EC is
in any train or valid set. Rows that broke a guarantee were removed (`removed.tsv`):

| scope: reason | rows |
|---|---|
{_count_lines(removed_counts)}

Input records rejected while reading (`rejects.tsv`: source, record, reason):

| reason | records |
|---|---|
{_count_lines(reject_counts)}

## Provenance and licences

| input file | bytes | sha256 |
|---|---|---|
{files}

Full provenance: `SOURCES.md` (copied from the raw data folder). NCBI RefSeq/GenBank records are
public with no NCBI-imposed restrictions (submitters may claim rights in some sequences); one genome
(S. pyogenes M1 GAS) is a RASTtk/PATRIC annotation of a public NCBI sequence. ExPASy ENZYME (2018
release, SIB Swiss Institute of Bioinformatics; current releases CC BY 4.0) supplies EC names,
reactions, cofactors and comments; class names from enzclass.txt (2018, plus 2021 for class 7).
Descriptions are generated from these fields and the records' own /product, /function and /note.
"""


def _write(out: Path, cfg: BuildConfig, splits: dict[str, pl.DataFrame], removed: pl.DataFrame,
           rejects: list[Reject], targets: dict[str, int], inputs: list[Path]) -> dict:  # fmt: skip
    for name, df in tqdm(splits.items(), desc="write", leave=False):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        df.write_parquet(out / f"{name}.parquet")
    stats = table1(splits)
    (out / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    rejects_df = pl.DataFrame(
        [(r.source, r.record, r.reason) for r in rejects], schema=["source", "record", "reason"], orient="row"
    )
    rejects_df.write_csv(out / "rejects.tsv", separator="\t")
    removed.write_csv(out / "removed.tsv", separator="\t")
    config = {k: v for k, v in to_dict(cfg).items() if k != "out"}  # the output folder may move; bytes must not
    build = {"config": config, "balance_targets": targets, "rejects": len(rejects), "removed": removed.height}
    (out / "build.json").write_text(json.dumps(build, indent=2, sort_keys=True) + "\n")
    sources = Path(cfg.raw_dir) / "SOURCES.md"
    if sources.is_file():
        shutil.copyfile(sources, out / "SOURCES.md")
    (out / "README.md").write_text(dataset_card(cfg, stats, targets, removed, rejects, inputs))
    if cfg.fragments:
        cache: dict[str, list] = {}
        for name, df in tqdm(splits.items(), desc="fragments", leave=False):
            (out / "Fragments" / name).parent.mkdir(parents=True, exist_ok=True)
            fragment_table(df, cfg.seed, cache).write_parquet(out / "Fragments" / f"{name}.parquet")
    return stats


def build_benchmarks(cfg: BuildConfig) -> Path:
    """Run the whole build; return the output folder. Raises ``InputError`` for a missing input or
    an empty result, leaving no output behind."""
    enzyme_dat = _raw_path(cfg, cfg.enzyme_dat)
    enzclass = [_raw_path(cfg, p) for p in cfg.enzclass]
    with tqdm(total=6, desc="build", unit="step") as steps:  # closed before an error reaches the caller
        steps.set_postfix_str("ENZYME")
        db = load_enzyme(enzyme_dat, enzclass)
        steps.update()
        steps.set_postfix_str("GenBank")
        records, rejects = read_genbank_dir(cfg.raw_dir)
        records, ec_rejects = resolve_ecs(records, db)
        rejects = rejects + ec_rejects
        if records.is_empty():
            raise InputError(f"empty result: no usable CDS record in {Path(cfg.raw_dir) / 'genbank'}")
        steps.update()
        steps.set_postfix_str("MMseqs2 clusters")
        with tempfile.TemporaryDirectory(prefix="biotalk-cluster-") as workdir:
            ids = [float(i) for i in cfg.identities]
            records = cluster_proteins(records, ids, cfg.coverage, cfg.threads, workdir, cfg.cache_dir)
        steps.update()
        steps.set_postfix_str("descriptions")
        records = describe_records(records, db, cfg.seed)
        steps.update()
        steps.set_postfix_str("splits")
        splits, removed, targets = assemble(records, cfg)
        steps.update()
        steps.set_postfix_str("write")
        inputs = [enzyme_dat, *enzclass, *genbank_files(cfg.raw_dir)]
        with atomic_dir(cfg.out) as tmp:
            stats = _write(tmp, cfg, splits, removed, rejects, targets, inputs)
        steps.update()
    print(format_table1(stats))
    return Path(cfg.out)
