"""The builder's bounded-memory path: split on a slim table of codes, write splits by streaming joins.

The split and balance rules read only a few columns (``RecordId, EC, DBtype``, the UniRef ids, a DNA key, a
protein key for the strict rule's search pairs), so ``stage_records`` keeps those in memory as compact codes
(``RecordStore.slim``) and every string on disk in Parquet, partitioned by contiguous ranges of ECs in sort
order. ``write_splits`` then joins each split's rows with one partition at a time, renders the descriptions
of that partition (a record's template is a hash of (seed, RecordId), so batches give the same text) and
appends the sorted rows to the split's file. As the written order is (EC, RecordId, IsDuplicate), the
partitions in order give the whole file in order.

The codes keep the split decisions those of the strings: ``RecordId``, ``EC`` and the UniRef ids become
order-preserving ``UInt32`` codes (the dense rank of the distinct strings: equal strings, equal codes, and
codes sort like the strings, which decides which unit gets which draw), ``DnaKey`` and ``Protein`` 64-bit
hashes (read only for equality: ``biotalk.data.split.with_dna_key``, the search pairs of ``keyed_near``) and
``DBtype`` a categorical. Strings come back only where rows are written (``write_splits``,
``store_identity``) or reported (``RecordStore.decoded``).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl
from tqdm import tqdm

from biotalk import mmseqs
from biotalk.baselines import translate_cds
from biotalk.cache import cache_path
from biotalk.data.describe import describe_records
from biotalk.data.enzyme import EnzymeDB
from biotalk.data.identity import COVERAGE, IDENTITY_SCHEMA, MAX_EVALUE
from biotalk.data.near import MAX_SEQS, SENSITIVITY, keyed_pairs
from biotalk.data.schema import BENCHMARKS, COLUMNS, SHARED_SPLITS, split_key
from biotalk.data.split import CLUSTER_LEVELS, CURATED, SplitResult
from biotalk.io import atomic_path

PART_ROWS = 250_000  # records per partition of the store (the writer holds one partition, described)
FILE_ROWS = 250_000  # records per staging batch (the stage holds one, partitioned)
STORE_GROUP_ROWS = 16_384  # row group of the staged source: a batch reads only its own row groups
CODED = ["RecordId", "EC", *CLUSTER_LEVELS]  # order-preserving UInt32 codes in the slim table
SLIM_SPLIT_COLUMNS = ["RecordId", "EC", "SplitLevel", "IsDuplicate"]  # what the writer reads of a split
HEAVY_COLUMNS = ["RecordId", "AC", "OC", "EmblCdsId", "Sequence", "Protein", "Organism", "EC", "DBtype",
                 *CLUSTER_LEVELS]  # fmt: skip
TEXT_COLUMNS = ["Product", "Function", "Note"]
REC = "Rec"  # the RecordId code in the store's partitions
NEAR_CACHE_VERSION = IDENTITY_CACHE_VERSION = 1
PARQUET = {"compression": "zstd", "compression_level": 1, "statistics": False}  # work files: written once, read once


def protein_key(expr: pl.Expr) -> pl.Expr:
    """A 64-bit key of a protein; null for an empty one (no protein: equal to none, as in the string split)."""
    return pl.when(expr != "").then(expr.hash(seed=0))


@dataclass
class RecordStore:
    """``folder``: every column of every record, in Parquet files per partition; ``slim``: the split columns,
    coded, row i for the i-th row of the files in order (``files``), so a partition is a range of rows;
    ``ec_parts``: per EC its code, ``Label`` (the EC), ``Records`` and ``Part``."""

    folder: Path
    slim: pl.DataFrame
    ec_parts: pl.DataFrame

    def parts(self) -> list[int]:
        return sorted(self.ec_parts["Part"].unique().to_list())

    def files(self, part: int | None = None) -> list[Path]:
        """The files of one partition (None: all), in the order of ``slim``."""
        return [f for p in ([part] if part is not None else self.parts()) for f in sorted((self.folder / f"part={p}").glob("*.parquet"))]

    def read(self, part: int, columns: list[str] | None = None) -> pl.DataFrame:
        """One partition (every column, or ``columns``) with ``Rec``, the RecordId code of each row."""
        sizes = self.ec_parts.group_by("Part").agg(pl.col("Records").sum()).sort("Part")
        offset = sizes.filter(pl.col("Part") < part)["Records"].sum()
        rows = pl.read_parquet(self.files(part), columns=columns)
        return rows.with_columns(self.slim["RecordId"].slice(offset, rows.height).alias(REC))

    def rows(self, codes: pl.Series, *columns: str | pl.Expr) -> pl.DataFrame:
        """``Rec`` and ``columns`` of the records with these RecordId codes, in store order."""
        index = self.slim.select(pl.col("RecordId").alias(REC)).with_row_index("_row")
        wanted = index.filter(pl.col(REC).is_in(codes.implode()))
        scan = pl.scan_parquet(self.files()).with_row_index("_row").select("_row", *columns)
        rows = scan.join(wanted.lazy(), on="_row", maintain_order="left").collect(engine="streaming")
        return rows.select(REC, pl.all().exclude(REC, "_row"))

    def labels(self, df: pl.DataFrame) -> pl.DataFrame:
        """``df`` with its coded ``RecordId`` and ``EC`` as strings again (row order kept)."""
        ids = self.rows(df["RecordId"].unique(), "RecordId").rename({REC: "_code", "RecordId": "_id"})
        ecs = self.ec_parts.select(pl.col("EC").alias("_ec_code"), pl.col("Label").alias("_ec"))
        df = df.join(ids, left_on="RecordId", right_on="_code", how="left", maintain_order="left")
        df = df.join(ecs, left_on="EC", right_on="_ec_code", how="left", maintain_order="left")
        return df.with_columns(pl.col("_id").alias("RecordId"), pl.col("_ec").alias("EC")).drop("_id", "_ec")

    def decoded(self, result: SplitResult) -> SplitResult:
        """A split of ``slim`` with its removed rows and untested ECs as strings (``curated``/``full`` coded)."""
        labels = dict(self.ec_parts.select("EC", "Label").iter_rows())
        return replace(result, removed=self.labels(result.removed), untested=[labels[ec] for ec in result.untested])


def ec_partitions(counts: pl.DataFrame, part_rows: int) -> pl.DataFrame:
    """Per EC (``counts``: ``EC``, ``len``) its code (the rank of the EC), ``Label``, ``Records`` and
    ``Part``: contiguous ECs in sort order, about ``part_rows`` records a partition."""
    counts = counts.sort("EC")
    before = pl.col("len").cum_sum() - pl.col("len")
    return counts.with_row_index("Code", offset=1).select(
        pl.col("Code").cast(pl.UInt32).alias("EC"), pl.col("EC").alias("Label"), pl.col("len").alias("Records"),
        (before // part_rows).cast(pl.Int32).alias("Part"),
    )  # fmt: skip


def _code(scan: pl.LazyFrame, column: str) -> pl.Series:
    """Order-preserving codes of a string column, one column in memory at a time."""
    return scan.select(pl.col(column).rank("dense").cast(pl.UInt32)).collect().to_series()


def stage_records(records: pl.LazyFrame, folder: Path, part_rows: int = PART_ROWS,
                  file_rows: int = FILE_ROWS) -> RecordStore:  # fmt: skip
    """The ECs' sizes, then every column into one Parquet file (a streaming sink), read back in batches of
    ``file_rows`` records into the partitions (polars' partitioned sink and ``collect_batches`` both held
    ~ the whole input at 10^7 records), then the coded slim table from the partitions' files (whose row
    order, unlike a lazy query's, is fixed)."""
    ec_parts = ec_partitions(records.group_by("EC").len().collect(engine="streaming"), part_rows)
    text = [c for c in TEXT_COLUMNS if c in records.collect_schema()]
    keys = [pl.col("Sequence").str.to_uppercase().hash(seed=0).alias("DnaKey"), protein_key(pl.col("Protein")).alias("ProteinKey")]
    by_label = ec_parts.select(pl.col("Label").alias("EC"), pl.col("Part").alias("part"))
    whole = folder / "records.parquet"
    folder.mkdir(parents=True, exist_ok=True)
    records.select(*HEAVY_COLUMNS, *text, *keys).sink_parquet(whole, row_group_size=STORE_GROUP_ROWS, **PARQUET)
    n = pl.scan_parquet(whole).select(pl.len()).collect().item()
    for i, start in enumerate(tqdm(range(0, n, file_rows), desc="stage", unit=" batches", leave=False)):
        batch = pl.scan_parquet(whole).slice(start, file_rows).collect().join(by_label, on="EC", maintain_order="left")
        for (part,), rows in batch.partition_by("part", as_dict=True).items():
            (folder / f"part={part}").mkdir(exist_ok=True)
            rows.drop("part").write_parquet(folder / f"part={part}" / f"{i:08d}.parquet", **PARQUET)
    whole.unlink()
    store = RecordStore(folder, pl.DataFrame(), ec_parts)
    scan = pl.scan_parquet(store.files())
    keys = scan.select(pl.col("DBtype").cast(pl.Categorical), "DnaKey", pl.col("ProteinKey").alias("Protein")).collect()
    if keys.height != ec_parts["Records"].sum():
        raise RuntimeError(f"the record store in {folder} holds {keys.height} records, its ECs count {ec_parts['Records'].sum()}")
    store.slim = keys.with_columns(_code(scan, c).alias(c) for c in CODED).select(*CODED[:2], "DBtype", *CODED[2:], "DnaKey", "Protein")
    return store


def _write_proteins(store: RecordStore, rows: pl.Series, path: Path) -> str:
    """The proteins of slim rows ``rows`` (ascending, one row per distinct key) as FASTA ``>key`` (trailing stop
    dropped), streamed from the store's files; return a digest of their sorted keys (the search's cache key)."""
    with open(path, "w") as fasta:
        offset = 0
        for file in store.files():
            batch = pl.read_parquet(file, columns=["ProteinKey", "Protein"])
            lo, hi = rows.search_sorted(offset), rows.search_sorted(offset + batch.height)
            lines = batch[rows[lo:hi] - offset].select(  # rows ascend: this file's are one slice
                pl.format(">{}\n{}\n", "ProteinKey", pl.col("Protein").str.strip_chars_end("*")))
            fasta.write("".join(lines.to_series().to_list()))
            offset += batch.height
    keys = store.slim["Protein"].gather(rows).sort()
    return hashlib.sha256(keys.to_numpy().tobytes()).hexdigest()


def keyed_near(store: RecordStore, identity: float, coverage: float, threads: int,
               cache_dir: str | Path | None) -> pl.DataFrame:  # fmt: skip
    """The strict rule's search pairs (``biotalk.data.near``: every curated protein against every protein)
    as protein keys. The distinct proteins are written from the store to FASTA files in its folder and
    searched there, so memory holds keys, never the proteins; cached by the keys searched."""
    slim = store.slim.select("Protein", "DBtype").with_row_index("_row").filter(pl.col("Protein").is_not_null())
    targets = slim.filter(pl.col("Protein").is_first_distinct())["_row"]
    queries = slim.filter(pl.col("DBtype") == CURATED).filter(pl.col("Protein").is_first_distinct())["_row"]
    work = store.folder / "near"
    work.mkdir(exist_ok=True)
    key = {"version": NEAR_CACHE_VERSION, "identity": identity, "coverage": coverage, "sensitivity": SENSITIVITY,
           "max_seqs": MAX_SEQS, "queries": _write_proteins(store, queries, work / "queries.faa"),
           "targets": _write_proteins(store, targets, work / "targets.faa")}  # fmt: skip
    path = cache_path(cache_dir, "near-keys", key, ".parquet") if cache_dir is not None else None
    if path is not None and path.is_file():
        pairs = pl.read_parquet(path)
    elif queries.is_empty():
        pairs = pl.DataFrame(schema={"Protein": pl.UInt64, "Near": pl.UInt64})
    else:
        pairs = keyed_pairs(work / "queries.faa", work / "targets.faa", identity, coverage, threads, work)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                pairs.write_parquet(tmp)
    shutil.rmtree(work)
    return pairs


def _by_part(splits: Mapping[str, pl.DataFrame], ec_parts: pl.DataFrame) -> dict[str, dict[int, pl.DataFrame]]:
    out = {}
    for name, df in splits.items():
        rows = df.select(SLIM_SPLIT_COLUMNS).join(ec_parts.select("EC", "Part"), on="EC", maintain_order="left")
        out[name] = {part: rows.drop("Part") for (part,), rows in rows.partition_by("Part", as_dict=True).items()}
    return out


def _described(store: RecordStore, part: int, wanted: list[pl.DataFrame], db: EnzymeDB, seed: int) -> pl.DataFrame:
    """The heavy rows of one partition that some split holds, with their descriptions."""
    codes = pl.concat([w.select(pl.col("RecordId").alias(REC)) for w in wanted]).unique()
    heavy = store.read(part).join(codes, on=REC, how="semi")
    return describe_records(heavy, db, seed).drop(*[c for c in TEXT_COLUMNS if c in heavy.columns])


def _rows(slim: pl.DataFrame, heavy: pl.DataFrame) -> pl.DataFrame:
    """A split's rows of one partition in written order (the codes sort like the strings), with their strings."""
    order = slim.sort("EC", "RecordId", "IsDuplicate").select(pl.col("RecordId").alias(REC), "SplitLevel", "IsDuplicate")
    return order.join(heavy, on=REC, how="left", maintain_order="left").select(COLUMNS)


def write_splits(out: Path, store: RecordStore, splits: Mapping[str, pl.DataFrame], db: EnzymeDB, seed: int,
                 work: Path, fragments: Callable[[pl.DataFrame], pl.DataFrame] | None = None) -> None:  # fmt: skip
    """Write ``out/<split>.parquet`` for every slim split table, one store partition at a time;
    ``fragments(table) -> DataFrame`` also writes ``out/Fragments/<split>.parquet``. Each partition's rows
    wait in a Parquet file written fast (``PARQUET``: its dictionaries keep repeated texts and padding copies
    small); the whole file is then encoded once in the output's settings."""
    by_part = _by_part(splits, store.ec_parts)
    kinds = {"": None} | ({"Fragments/": fragments} if fragments else {})
    for part in tqdm(store.parts(), desc="write", unit=" parts", leave=False):
        wanted = [parts[part] for parts in by_part.values() if part in parts]
        if not wanted:
            continue
        heavy = _described(store, part, wanted, db, seed)
        for name, parts in by_part.items():
            if part in parts:
                table = _rows(parts[part], heavy)
                for kind, make in kinds.items():
                    folder = work / f"{kind}{name}"
                    folder.mkdir(parents=True, exist_ok=True)
                    (make(table) if make else table).write_parquet(folder / f"{part:06d}.parquet", **PARQUET)
    for kind in kinds:
        for name in splits:
            target = out / f"{kind}{name}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            pl.scan_parquet(sorted((work / f"{kind}{name}").glob("*.parquet"))).sink_parquet(target)
    shutil.rmtree(work)


def _searched_protein() -> pl.Expr:
    """The protein a record is searched with (``identity.proteins``): its own, else its DNA translated in
    frame; trailing stops dropped (``identity.identity_hits``)."""
    translated = pl.when(pl.col("Protein") == "").then(pl.col("Sequence")).map_elements(translate_cds, return_dtype=pl.Utf8)
    return pl.coalesce(translated, pl.col("Protein")).str.strip_chars_end("*")


def _fasta(rows: pl.DataFrame) -> str:
    """``>key`` and protein lines of the rows' distinct non-empty proteins."""
    rows = rows.filter(pl.col("Key").is_not_null() & pl.col("Key").is_first_distinct())
    return "".join(rows.select(pl.format(">{}\n{}\n", "Key", "Searched")).to_series().to_list())


def _identity_proteins(store: RecordStore, held: pl.Series, train: pl.Series, work: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Keys of the searched proteins of the held-out records ``held`` (``Rec``, ``RecordId``, ``Key``) and
    of the training records ``train`` (``Rec``, ``Key``), read one partition at a time; each distinct
    protein written once to ``work/queries.faa`` or ``work/targets.faa`` as ``>key``. Memory holds the
    keys and the held-out proteins (a few tens of thousands), never the training proteins."""
    key = pl.when(pl.col("Searched") != "").then(pl.col("Searched").hash(seed=0)).alias("Key")
    queries, targets, seen = [], [], pl.Series("Key", [], pl.UInt64)
    with open(work / "targets.faa", "w") as fasta:
        for part in tqdm(store.parts(), desc="identity proteins", unit=" parts", leave=False):
            rows = store.read(part, ["RecordId", "Protein", "Sequence"])
            rows = rows.filter(pl.col(REC).is_in(held.implode()) | pl.col(REC).is_in(train.implode()))
            rows = rows.with_columns(_searched_protein().alias("Searched")).with_columns(key)
            queries.append(rows.filter(pl.col(REC).is_in(held.implode())).select(REC, "RecordId", "Key", "Searched"))
            t = rows.filter(pl.col(REC).is_in(train.implode()))
            targets.append(t.select(REC, "Key"))
            fasta.write(_fasta(t.filter(~pl.col("Key").is_in(seen.implode()))))
            seen = pl.concat([seen, t["Key"].drop_nulls()]).unique()
    queries = pl.concat(queries)
    (work / "queries.faa").write_text(_fasta(queries))
    return queries.drop("Searched"), pl.concat(targets)


def _digest(keys: pl.Series) -> str:
    return hashlib.sha256(keys.drop_nulls().unique().sort().to_numpy().tobytes()).hexdigest()


def _identity_hits(queries: pl.DataFrame, targets: pl.DataFrame, work: Path, threads: int,
                   cache_dir: str | Path | None) -> pl.DataFrame:  # fmt: skip
    """``identity.identity_hits`` of the FASTA files in ``work`` (``query``, ``target`` keys, ``fident``),
    cached by the keys searched."""
    n_targets = targets["Key"].drop_nulls().n_unique()
    key = {"version": IDENTITY_CACHE_VERSION, "queries": _digest(queries["Key"]), "targets": _digest(targets["Key"]),
           "coverage": COVERAGE, "evalue": MAX_EVALUE}  # fmt: skip
    path = cache_path(cache_dir, "identity-keys", key, ".parquet") if cache_dir is not None else None
    if path is not None and path.is_file():
        return pl.read_parquet(path)
    options = ["-e", MAX_EVALUE, "-c", COVERAGE, "--cov-mode", "0", "--max-seqs", max(n_targets, 1)]
    hits = pl.DataFrame(schema={"query": pl.UInt64, "target": pl.UInt64, "fident": pl.Float64})
    if n_targets and queries["Key"].drop_nulls().len():
        hits = mmseqs.search_files(work / "queries.faa", work / "targets.faa", options, ("fident",), threads,
                                   pl.UInt64, work)  # fmt: skip
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            hits.write_parquet(tmp)
    return hits


def store_identity(store: RecordStore, splits: Mapping[str, pl.DataFrame], threads: int = 1,
                   cache_dir: str | Path | None = None) -> pl.DataFrame:  # fmt: skip
    """``identity.write_identity``'s table (the held-out splits against each benchmark's Train) from the
    coded splits of a record store: one search of the distinct held-out proteins against the distinct
    training proteins, both streamed from the store to FASTA, keyed by protein hashes."""
    held = {s: splits[split_key(BENCHMARKS[0], s)] for s in SHARED_SPLITS if split_key(BENCHMARKS[0], s) in splits}
    held = {s: df.filter(~pl.col("IsDuplicate")).sort("EC", "RecordId", "IsDuplicate") for s, df in held.items()}
    trains = {b: splits[split_key(b, "train")]["RecordId"].unique() for b in BENCHMARKS}
    work = store.folder / "identity"
    work.mkdir(exist_ok=True)
    held_codes = pl.concat([df["RecordId"] for df in held.values()]).unique()
    queries, targets = _identity_proteins(store, held_codes, pl.concat(list(trains.values())).unique(), work)
    hits = _identity_hits(queries, targets, work, threads, cache_dir)
    shutil.rmtree(work)
    tables = []
    for bench, codes in trains.items():
        keys = targets.filter(pl.col(REC).is_in(codes.implode()))["Key"].drop_nulls().unique()
        best = hits.filter(pl.col("target").is_in(keys.implode())).group_by("query").agg(pl.col("fident").max())
        for name, df in held.items():
            rows = df.select(pl.col("RecordId").alias(REC)).join(queries, on=REC, how="left", maintain_order="left")
            rows = rows.join(best, left_on="Key", right_on="query", how="left", maintain_order="left")
            tables.append(rows.select("RecordId", pl.lit(bench.removeprefix("Benchmark-")).alias("Benchmark"),
                                      pl.lit(name).alias("Split"), pl.col("fident").alias("MaxIdentity")))  # fmt: skip
    return pl.concat(tables).cast(IDENTITY_SCHEMA)
