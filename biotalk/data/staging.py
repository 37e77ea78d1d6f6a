"""Staging the UniProt inputs (``biotalk.data.sources``): each dump streamed once into hash-bucketed
Parquet parts (``biotalk.data.buckets.Buckets``).

Entries are parsed in batches (``biotalk.data.uniprot.entry_batches``), by ``uniprot.workers`` processes
when more than one, a few batches ahead of the one staged, and staged in file order: the same rows and
rejects whatever the number of workers. idmapping keeps only the rows of staged accessions; CDS FASTA is
staged a column batch at a time.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from itertools import chain, islice
from multiprocessing import get_context
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
from tqdm import tqdm

from biotalk.data.buckets import Buckets
from biotalk.data.errors import InputError
from biotalk.data.genbank import DOMAINS, Reject
from biotalk.data.uniprot import (
    BATCH,
    IDMAPPING_COLUMNS,
    IDMAPPING_FIELDS,
    Entry,
    EntryBatch,
    domain,
    entry_batches,
    parse_batch,
    read_cds_fasta,
)
from biotalk.ec import full_ecs

ENTRY_SCHEMA = {
    "Order": pl.Int64, "AC": pl.Utf8, "DBtype": pl.Utf8, "OC": pl.Utf8, "Organism": pl.Utf8,
    "ECs": pl.List(pl.Utf8), "CdsIds": pl.List(pl.Utf8), "Protein": pl.Utf8, "Product": pl.Utf8,
    "Function": pl.Utf8, "SourceFile": pl.Utf8,
}  # fmt: skip
CDS_SCHEMA = {"EmblCdsId": pl.Utf8, "Sequence": pl.Utf8}



_domain = lru_cache(maxsize=1 << 16)(domain)  # a few thousand lineages and EC fields cover most entries
_full_ecs = lru_cache(maxsize=1 << 16)(full_ecs)


def _entry_row(entry: Entry, order: int, source: str, rejects: list[Reject]) -> dict | None:
    """The staged row of an enzyme entry, or None after recording why it cannot be one."""
    top = _domain(entry.lineage)
    if top not in DOMAINS:
        rejects.append(Reject(source, entry.ac, f"not Bacteria or Archaea: {top or 'no lineage'}"))
        return None
    ecs, bad = _full_ecs(entry.ec_items)
    rejects += [Reject(source, entry.ac, f"{'partial EC' if why == 'partial EC' else 'invalid EC'}: {item}")
                for item, why in bad]  # fmt: skip
    if not ecs:
        return None
    if not entry.has_embl or entry.cds_ids == ():
        why = "no EMBL cross-reference" if not entry.has_embl else "EMBL cross-references without a CDS protein id"
        rejects.append(Reject(source, entry.ac, f"no EMBL CDS: {why}"))
        return None
    return {"Order": order, "AC": entry.ac, "DBtype": entry.dbtype, "OC": top, "Organism": entry.organism,
            "ECs": ecs, "CdsIds": None if entry.cds_ids is None else list(entry.cds_ids), "Protein": entry.protein,
            "Product": entry.product, "Function": entry.function, "SourceFile": source}  # fmt: skip


def _stage_batch(batch: EntryBatch) -> tuple[pl.DataFrame, list[Reject]]:
    """A batch's staged rows (``Order`` from 0 within the batch) and rejects in entry order; runs in a
    worker, so the parse, the checks and the row table all leave the staging process."""
    rows: list[dict] = []
    rejects: list[Reject] = []
    for item in parse_batch(batch):
        if isinstance(item, Reject):
            rejects.append(item)
        elif item.ec_items:  # an entry without EC is not an enzyme record
            row = _entry_row(item, len(rows), batch.file, rejects)
            if row is not None:
                rows.append(row)
    return _frame(rows), rejects


def _frame(rows: list[dict]) -> pl.DataFrame:
    """Staged rows as a table, a column at a time; Arrow builds the list columns (Polars makes a Series of
    each row's list: 14x slower for a batch of entries)."""
    lists = pa.list_(pa.string())
    columns = {k: pa.array([r[k] for r in rows], lists) if dtype == pl.List(pl.Utf8) else [r[k] for r in rows]
               for k, dtype in ENTRY_SCHEMA.items()}  # fmt: skip
    return pl.DataFrame(columns, schema=ENTRY_SCHEMA)


def _in_order(fn: Callable, items: Iterator, workers: int) -> Iterator:
    """``fn`` of each item, in order: here (``workers`` 1, or a single item: not worth starting processes)
    or in a pool that runs at most two items per worker ahead of the one consumed (``Pool.imap`` would read
    the whole input ahead)."""
    workers = workers or min(os.cpu_count() or 1, 8)
    head = list(islice(items, 2))
    if workers == 1 or len(head) < 2:
        yield from map(fn, chain(head, items))
        return
    # spawned, not forked: a fork copies Polars' thread pool in whatever state it is (a deadlock risk)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        pending: deque = deque()
        for item in chain(head, items):
            pending.append(pool.submit(fn, item))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def stage_entries(paths: list[Path], parts: Buckets, workers: int = 1, batch: int = BATCH) -> list[Reject]:
    """Stream the enzyme entries of every entries file into ``parts``, parsed ``batch`` entries at a time by
    ``workers`` processes (``UniProtInputs.workers``); return the rejects."""
    rejects: list[Reject] = []
    order = 0
    batches = (b for path in paths for b in entry_batches(path, batch))
    staged = _in_order(_stage_batch, batches, workers)
    for rows, batch_rejects in tqdm(staged, desc="entries", unit=" batches", leave=False):
        parts.add_frame(rows.with_columns(pl.col("Order") + order))
        order += rows.height
        rejects += batch_rejects
    parts.flush()
    return rejects


def _idmapping_batches(path: Path, batch_bytes: int) -> Iterator[pl.DataFrame]:
    """The used columns of idmapping_selected.tab, renamed (``IDMAPPING_FIELDS``), a block at a time."""
    used = {IDMAPPING_COLUMNS[i - 1]: key for key, i in IDMAPPING_FIELDS.items()}
    try:
        reader = pacsv.open_csv(
            pa.input_stream(str(path), compression="detect"),
            read_options=pacsv.ReadOptions(column_names=list(IDMAPPING_COLUMNS), block_size=batch_bytes),
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
            convert_options=pacsv.ConvertOptions(include_columns=list(used), strings_can_be_null=False,
                                                 column_types=dict.fromkeys(used, pa.string())),
        )  # fmt: skip
        for batch in reader:
            yield pl.from_arrow(batch).rename(used)
    except pa.ArrowInvalid as err:
        raise InputError(f"{path}: not a 22-column idmapping_selected.tab ({str(err).splitlines()[0]})") from None


def stage_idmapping(path: Path, keys: pl.Series, parts: Buckets) -> None:
    """Keep the idmapping rows whose accession hash is in ``keys`` (the sorted hashes of the staged
    accessions): a binary search a row, where a join would build a table of every accession per block. A
    hash another accession shares only lets an extra row through; the join by accession is exact."""
    last = max(len(keys) - 1, 0)
    for block in tqdm(_idmapping_batches(path, 1 << 24), desc=f"idmapping {path.name}", unit=" blocks", leave=False):
        if len(keys):
            hashes = block["AC"].hash(seed=0)
            parts.add_frame(block.filter(keys.gather(keys.search_sorted(hashes).clip(0, last)) == hashes))
    parts.flush()


def stage_cds(paths: list[Path], parts: Buckets) -> None:
    """Stream every ENA CDS FASTA record into ``parts``, a column batch at a time (not a dict a record)."""
    for path in paths:
        ids, seqs = [], []
        for cds_id, seq in tqdm(read_cds_fasta(path), desc=f"CDS {path.name}", unit=" seqs", leave=False):
            ids.append(cds_id)
            seqs.append(seq)
            if len(ids) == parts.batch_rows:
                parts.add_frame(pl.DataFrame({"EmblCdsId": ids, "Sequence": seqs}, schema=CDS_SCHEMA))
                ids, seqs = [], []
        parts.add_frame(pl.DataFrame({"EmblCdsId": ids, "Sequence": seqs}, schema=CDS_SCHEMA))
    parts.flush()
