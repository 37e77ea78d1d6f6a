"""The builder's bounded-memory path: split on a slim table, write splits by streaming joins.

The split and balance rules read only a few short columns (``RecordId, EC, DBtype``, the UniRef ids, a
DNA key, a protein key for the strict rule's search pairs), so ``stage_records`` keeps those in memory
(``RecordStore.slim``) and the long strings (DNA, protein, annotation) on disk in Parquet, partitioned
by contiguous ranges of ECs in sort order. ``write_splits`` then joins each split's rows with one
partition at a time, renders the descriptions of that partition (a record's template is a hash of
(seed, RecordId), so batches give the same text) and appends the sorted rows to the split's file. As the
written order is (EC, RecordId, IsDuplicate), the partitions in order give the whole file in order.

In the slim table ``Sequence`` and ``Protein`` hold 64-bit hashes (as text) of the real strings:
``biotalk.data.split`` reads them only for equality (``with_dna_key``; the search pairs of
``keyed_near``), so the split decisions are those of the full table.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from tqdm import tqdm

from biotalk.data.describe import describe_records
from biotalk.data.enzyme import EnzymeDB
from biotalk.data.near import near_proteins
from biotalk.data.schema import BENCHMARKS, COLUMNS, SHARED_SPLITS, split_key
from biotalk.data.split import CLUSTER_LEVELS, CURATED

PART_ROWS = 250_000  # records per partition of the store (the writer holds one partition, described)
BATCH_ROWS = 500_000  # source rows per staging batch
SLIM_SPLIT_COLUMNS = ["RecordId", "EC", "DBtype", *CLUSTER_LEVELS, "SplitLevel", "IsDuplicate"]
HEAVY_COLUMNS = ["RecordId", "AC", "OC", "EmblCdsId", "Sequence", "Protein", "Organism"]
TEXT_COLUMNS = ["Product", "Function", "Note"]


def _key(expr: pl.Expr) -> pl.Expr:
    return expr.hash(seed=0).cast(pl.Utf8)


@dataclass
class RecordStore:
    """``slim``: the split columns of every record plus ``Part``; ``folder``: the heavy columns per part."""

    folder: Path
    slim: pl.DataFrame
    ec_parts: pl.DataFrame  # EC -> Part

    def parts(self) -> list[int]:
        return sorted(self.ec_parts["Part"].unique().to_list())

    def scan(self, part: int | None = None) -> pl.LazyFrame:
        """The heavy columns of one partition (None: all)."""
        where = "*" if part is None else f"part={part}"
        return pl.scan_parquet(self.folder / where / "*.parquet")


def ec_partitions(slim: pl.DataFrame, part_rows: int) -> pl.DataFrame:
    """Each EC's partition: contiguous ECs in sort order, about ``part_rows`` records a partition."""
    counts = slim.group_by("EC").len().sort("EC")
    before = pl.col("len").cum_sum() - pl.col("len")
    return counts.select("EC", (before // part_rows).cast(pl.Int32).alias("Part"))


def stage_records(records: pl.LazyFrame, folder: Path, part_rows: int = PART_ROWS,
                  batch_rows: int = BATCH_ROWS) -> RecordStore:  # fmt: skip
    """Two streaming passes over ``records``: the slim table into memory, the heavy columns to disk."""
    slim = records.select(
        "RecordId", "EC", "DBtype", *CLUSTER_LEVELS,
        _key(pl.col("Sequence").str.to_uppercase()).alias("Sequence"), _key(pl.col("Protein")).alias("Protein"),
    ).collect(engine="streaming")  # fmt: skip
    ec_parts = ec_partitions(slim, part_rows)
    text = [c for c in TEXT_COLUMNS if c in records.collect_schema()]
    heavy = records.select(*HEAVY_COLUMNS, "EC", *text)
    for i, batch in enumerate(tqdm(heavy.collect_batches(chunk_size=batch_rows), desc="stage", unit=" batches", leave=False)):
        for (part,), rows in batch.join(ec_parts, on="EC").partition_by("Part", as_dict=True).items():
            (folder / f"part={part}").mkdir(parents=True, exist_ok=True)
            rows.drop("Part").write_parquet(folder / f"part={part}" / f"batch-{i:06d}.parquet")
    return RecordStore(folder, slim.join(ec_parts, on="EC", maintain_order="left"), ec_parts)


def keyed_near(store: RecordStore, identity: float, coverage: float, threads: int,
               cache_dir: str | Path | None) -> pl.DataFrame:  # fmt: skip
    """The strict rule's search pairs (``biotalk.data.near``: every curated protein against every protein),
    as protein keys. Holds all distinct proteins in memory: the step that does not scale (docs/benchmarks.md)."""
    proteins = store.scan().select("RecordId", "Protein").collect(engine="streaming")
    curated = store.slim.filter(pl.col("DBtype") == CURATED).select("RecordId")
    queries = proteins.join(curated, on="RecordId", how="semi")["Protein"].to_list()
    near = near_proteins(queries, proteins["Protein"].to_list(), identity, coverage, threads, cache_dir)
    return near.select(_key(pl.col("Protein")), _key(pl.col("Near")).alias("Near"))


def _by_part(splits: Mapping[str, pl.DataFrame], ec_parts: pl.DataFrame) -> dict[str, dict[int, pl.DataFrame]]:
    out = {}
    for name, df in splits.items():
        rows = df.select(SLIM_SPLIT_COLUMNS).join(ec_parts, on="EC", maintain_order="left")
        out[name] = {part: rows.drop("Part") for (part,), rows in rows.partition_by("Part", as_dict=True).items()}
    return out


def _described(store: RecordStore, part: int, wanted: list[pl.DataFrame], db: EnzymeDB, seed: int) -> pl.DataFrame:
    """The heavy rows of one partition that some split holds, with their descriptions."""
    ids = pl.concat([w.select("RecordId") for w in wanted]).unique()
    heavy = store.scan(part).join(ids.lazy(), on="RecordId", how="semi").collect()
    return describe_records(heavy, db, seed).drop("EC", *[c for c in TEXT_COLUMNS if c in heavy.columns])


def _rows(slim: pl.DataFrame, heavy: pl.DataFrame) -> pl.DataFrame:
    return slim.join(heavy, on="RecordId", how="left", maintain_order="left").select(COLUMNS).sort(
        "EC", "RecordId", "IsDuplicate"
    )


def write_splits(out: Path, store: RecordStore, splits: Mapping[str, pl.DataFrame], db: EnzymeDB, seed: int,
                 work: Path, fragments: Callable[[pl.DataFrame], pl.DataFrame] | None = None) -> None:  # fmt: skip
    """Write ``out/<split>.parquet`` for every slim split table, one store partition at a time;
    ``fragments(table) -> DataFrame`` also writes ``out/Fragments/<split>.parquet``."""
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
                    (make(table) if make else table).write_parquet(folder / f"{part:06d}.parquet")
    for kind in kinds:
        for name in splits:
            target = out / f"{kind}{name}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            pl.scan_parquet(sorted((work / f"{kind}{name}").glob("*.parquet"))).sink_parquet(target)
    shutil.rmtree(work)


def identity_tables(store: RecordStore, splits: Mapping[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """What ``biotalk.data.identity.write_identity`` reads of the splits (held-out splits and every Train):
    ``RecordId, IsDuplicate, Protein`` and the DNA only where the protein is empty (it translates that),
    in written order."""
    keys = [split_key(BENCHMARKS[0], s) for s in SHARED_SPLITS] + [split_key(b, "train") for b in BENCHMARKS]
    keys = [k for k in keys if k in splits]
    ids = pl.concat([splits[k].select("RecordId") for k in keys]).unique()
    dna = pl.when(pl.col("Protein") == "").then(pl.col("Sequence")).otherwise(pl.lit(""))
    heavy = store.scan().join(ids.lazy(), on="RecordId", how="semi").select("RecordId", "Protein", dna.alias("Sequence"))
    heavy = heavy.collect(engine="streaming")
    rows = {k: splits[k].select("EC", "RecordId", "IsDuplicate").sort("EC", "RecordId", "IsDuplicate") for k in keys}
    return {k: df.join(heavy, on="RecordId", how="left", maintain_order="left") for k, df in rows.items()}

