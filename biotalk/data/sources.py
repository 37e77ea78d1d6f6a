"""The UniProt front end of the builder: UniProtKB entries + ``idmapping_selected.tab`` + ENA CDS FASTA ->
the record table (one row per (CDS, full EC)) with UniProt's own UniRef100/90/50 cluster ids.

Entries are parsed in batches (``biotalk.data.uniprot.entry_batches``), by ``uniprot.workers`` processes
when more than one, a few batches ahead of the one staged, and staged in file order: the same rows and
rejects whatever the number of workers.

Bounded memory (docs/scale.md): every input is streamed once into Parquet parts in a work folder, split
into hash buckets (``biotalk.data.buckets``): entries and the idmapping rows of their accessions by
accession, CDS sequences by CDS id. Two joins then run a bucket at a time: entries with idmapping (one row
per entry and CDS, re-bucketed by CDS id), then those rows with their DNA; the records are written as
Parquet and come back as a lazy frame, never collected whole. The rule that the first copy of a record id
wins runs on hashes of the ids. Every entry with an EC that does not become a row is a ``Reject`` with its
reason, listed in entry order; entries without any EC are not enzyme records and are not listed.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain, islice
from multiprocessing import get_context
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
from tqdm import tqdm

from biotalk.baselines import translate_cds
from biotalk.data.buckets import ROW, Buckets, drop_rows, later_copies
from biotalk.data.errors import InputError
from biotalk.data.genbank import COLUMNS, DOMAINS, Reject
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
from biotalk.io import atomic_path

CLUSTER_COLUMNS = ("UniRef100", "UniRef90", "UniRef50")
ENTRY_SCHEMA = {
    "Order": pl.Int64, "AC": pl.Utf8, "DBtype": pl.Utf8, "OC": pl.Utf8, "Organism": pl.Utf8,
    "ECs": pl.List(pl.Utf8), "CdsIds": pl.List(pl.Utf8), "Protein": pl.Utf8, "Product": pl.Utf8,
    "Function": pl.Utf8, "SourceFile": pl.Utf8,
}  # fmt: skip
CDS_SCHEMA = {"EmblCdsId": pl.Utf8, "Sequence": pl.Utf8}


@dataclass
class UniProtInputs:
    """The UniProt inputs of a build, relative to ``raw_dir`` unless absolute (``configs/data/uniprot.yaml``)."""

    entries: list[str] = field(default_factory=lambda: ["uniprot_sprot_bacteria.dat.gz", "uniprot_sprot_archaea.dat.gz"])
    idmapping: str = "idmapping_selected.tab.gz"
    cds_fasta: list[str] = field(default_factory=lambda: ["ena/*.fasta"])  # glob patterns: fetch_sources' batches
    batch_rows: int = 200_000  # rows per Parquet part while streaming
    buckets: int = 64  # hash buckets of the joins: memory holds about 1/buckets of the entries and CDS
    workers: int = 0  # processes parsing entries: 0 one per CPU (at most 8), 1 none (parsed in this process)


def _expand(raw_dir: str | Path, name: str) -> list[Path]:
    """``name`` resolved against ``raw_dir``; a glob pattern becomes its sorted matches (the pattern itself
    when nothing matches, so the missing-input error names it)."""
    path = Path(name) if Path(name).is_absolute() else Path(raw_dir) / name
    if not glob.has_magic(str(path)):
        return [path]
    return sorted(Path(p) for p in glob.glob(str(path))) or [path]


def uniprot_files(raw_dir: str | Path, inputs: UniProtInputs,
                  keys: tuple[str, ...] = ("entries", "idmapping", "cds_fasta")) -> dict[str, list[Path]]:  # fmt: skip
    """Each input key's paths, resolved against ``raw_dir`` (globs expanded); ``InputError`` naming the first
    one missing."""
    named = {"entries": inputs.entries, "idmapping": [inputs.idmapping], "cds_fasta": inputs.cds_fasta}
    named = {key: names for key, names in named.items() if key in keys}
    files = {key: [p for n in names for p in _expand(raw_dir, n)] for key, names in named.items()}
    for key, paths in files.items():
        if not paths:
            raise InputError(f"UniProt input uniprot.{key} names no file")
        for path in paths:
            if not path.is_file():
                raise InputError(f"UniProt input uniprot.{key} not found: {path}")
    return files


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


def _cds_ids() -> pl.Expr:
    """An entry's CDS ids: its EMBL DR lines (flat files), else idmapping column 18 (TSV entries)."""
    ids = pl.col("EmblCds").str.split(";").list.eval(pl.element().str.strip_chars()).list.filter(pl.element() != "")
    return pl.coalesce(pl.col("CdsIds"), ids).alias("CdsIds")


def _mapped(entries: Buckets, idmap: Buckets, bucket: int) -> pl.LazyFrame:
    """A bucket's entries with the first idmapping row of their accession (``_mapped``: there is one)."""
    first = idmap.scan(bucket).unique("AC", keep="first", maintain_order=True)
    first = first.with_columns(pl.lit(True).alias("_mapped"), *(pl.col(c).str.strip_chars() for c in CLUSTER_COLUMNS))
    return entries.scan(bucket).join(first, on="AC", how="left", maintain_order="left").with_columns(_cds_ids())


def _reasons(frame: pl.DataFrame, why: pl.Expr, record: pl.Expr, order: list[str]) -> pl.DataFrame:
    return frame.filter(why.is_not_null()).select(*order, "SourceFile", record.alias("record"), why.alias("reason"))


def _as_rejects(frames: list[pl.DataFrame], order: list[str]) -> list[Reject]:
    """Rejects in entry order: what one pass over the whole table in ``Order`` would have listed."""
    if not frames:
        return []
    rows = pl.concat(frames).sort(order, maintain_order=True).select("SourceFile", "record", "reason")
    return [Reject(*row) for row in rows.iter_rows()]


def _entry_cds(entries: Buckets, idmap: Buckets, by_cds: Buckets) -> list[Reject]:
    """Join 1, by accession: each bucket's entries with idmapping, one row per (entry, CDS) into ``by_cds``
    (``_pos``: the CDS's place in its entry); return the entries left out."""
    unclustered = pl.any_horizontal(pl.col(c).fill_null("") == "" for c in CLUSTER_COLUMNS)
    why = (pl.when(pl.col("_mapped").is_null()).then(pl.lit("not in idmapping: no UniRef clusters"))
           .when(unclustered).then(pl.lit("no UniRef cluster in idmapping"))
           .when(pl.col("CdsIds").list.len().fill_null(0) == 0).then(pl.lit("no EMBL CDS: none in idmapping")))  # fmt: skip
    left_out = []
    for bucket in tqdm(range(entries.buckets), desc="join entries", unit=" buckets", leave=False):
        x = _mapped(entries, idmap, bucket).collect()
        if x.height:
            left_out.append(_reasons(x, why, pl.col("AC"), ["Order"]))
            x = x.filter(why.is_null()).drop("EmblCds", "_mapped")
            x = x.with_columns(pl.int_ranges(pl.col("CdsIds").list.len()).alias("_pos")).explode("CdsIds", "_pos")
            by_cds.add_frame(x.rename({"CdsIds": "EmblCdsId"}))
    by_cds.flush()
    return _as_rejects(left_out, ["Order"])


def _sequenced(by_cds: Buckets, cds: Buckets, out: Path) -> list[Reject]:
    """Join 2, by CDS id: each bucket's (entry, CDS) rows with their DNA (the smallest sequence of an id
    given twice), proteins translated where the entry has none, one row per EC, sorted by (Order,
    EmblCdsId, EC), written to ``out``; return the rows left out."""
    sequence = pl.col("Sequence").fill_null("")
    usable = (sequence != "") & ~sequence.str.contains("[^ACGTN]")  # a scan; the reasons below rewrite DNA
    bad_dna = pl.col("Sequence").str.replace_all("[ACGTN]", "")
    why = (pl.when(sequence == "").then(pl.lit("no CDS sequence in ENA FASTA"))
           .when(bad_dna != "").then(pl.lit("non-ACGTN bases: ") + bad_dna.str.slice(0, 20)))  # fmt: skip
    untranslated = pl.when(pl.col("Protein") == "").then(pl.col("Sequence"))  # code 11: include `sequence`
    protein = pl.coalesce(untranslated.map_elements(translate_cds, return_dtype=pl.Utf8), pl.col("Protein"))
    left_out = []
    out.mkdir()
    for bucket in tqdm(range(by_cds.buckets), desc="join CDS", unit=" buckets", leave=False):
        x = by_cds.scan(bucket).collect()
        if not x.height:
            continue
        sequences = cds.scan(bucket).group_by("EmblCdsId").agg(pl.col("Sequence").min())
        x = x.join(sequences.collect(), on="EmblCdsId", how="left", maintain_order="left")
        record = pl.col("AC") + " " + pl.col("EmblCdsId")
        left_out.append(_reasons(x.filter(~usable), why, record, ["Order", "_pos"]))
        x = x.filter(usable).with_columns(protein.alias("Protein")).explode("ECs").rename({"ECs": "EC"})
        x = x.with_columns((pl.col("EmblCdsId") + "|" + pl.col("EC")).alias("RecordId"),
                           pl.lit("").alias("Note"), pl.lit("").alias("LocusTag"))  # fmt: skip
        x = x.select(*COLUMNS, *CLUSTER_COLUMNS, "Order").sort("Order", "EmblCdsId", "EC")
        x.write_parquet(out / f"part-{bucket:06d}.parquet")
    return _as_rejects(left_out, ["Order", "_pos"])


def join_records(entries: Buckets, idmap: Buckets, cds: Buckets, work: Path) -> tuple[pl.LazyFrame, list[Reject]]:
    """Entries x idmapping (clusters; CDS ids of TSV entries) x CDS sequences -> (records over Parquet in
    ``work/records``, rejects); of two rows with one record id, the one of the later (Order, EmblCdsId, EC)
    is a duplicate."""
    by_cds = Buckets(work / "by-cds", "EmblCdsId", cds.buckets, cds.batch_rows)
    rejects = _entry_cds(entries, idmap, by_cds)
    rejects += _sequenced(by_cds, cds, work / "records")
    parts = sorted((work / "records").glob("*.parquet"))
    if not parts:
        return pl.LazyFrame(schema=dict.fromkeys((*COLUMNS, *CLUSTER_COLUMNS), pl.Utf8)), rejects
    records = pl.scan_parquet(parts)
    copies = later_copies(records, "RecordId", ["Order", "EmblCdsId", "EC"], ["SourceFile"])
    rejects += [Reject(src, rid, "duplicate record id") for src, rid in copies.select("SourceFile", "RecordId").iter_rows()]
    return drop_rows(records, copies[ROW]).select(*COLUMNS, *CLUSTER_COLUMNS), rejects


def _stage(files: dict[str, list[Path]], inputs: UniProtInputs, work: Path) -> tuple[Buckets, Buckets, list[Reject]]:
    """Entries and the idmapping rows of their accessions, bucketed by accession; the entries' rejects."""
    entries = Buckets(work / "entries", "AC", inputs.buckets, inputs.batch_rows, ENTRY_SCHEMA)
    rejects = stage_entries(files["entries"], entries, inputs.workers)
    keys = entries.scan().select(pl.col("AC").hash(seed=0).unique().sort()).collect(engine="streaming")["AC"]
    idmap = Buckets(work / "idmap", "AC", inputs.buckets, inputs.batch_rows, dict.fromkeys(IDMAPPING_FIELDS, pl.Utf8))
    stage_idmapping(files["idmapping"][0], keys, idmap)
    return entries, idmap, rejects


def read_uniprot(raw_dir: str | Path, inputs: UniProtInputs, work: str | Path) -> tuple[pl.LazyFrame, list[Reject]]:
    """The record table (genbank ``COLUMNS`` + UniRef100/90/50) and rejects of the UniProt inputs; the
    records are a lazy frame over Parquet in ``work`` (a new folder: keep it while the frame is used)."""
    files = uniprot_files(raw_dir, inputs)
    work = Path(work)
    entries, idmap, rejects = _stage(files, inputs, work / "staged")
    cds = Buckets(work / "staged" / "cds", "EmblCdsId", inputs.buckets, inputs.batch_rows, CDS_SCHEMA)
    stage_cds(files["cds_fasta"], cds)
    records, join_rejects = join_records(entries, idmap, cds, work)
    shutil.rmtree(work / "staged")
    shutil.rmtree(work / "by-cds")
    return records, rejects + join_rejects


def cds_accessions(raw_dir: str | Path, inputs: UniProtInputs, out: str | Path, workdir: str | Path | None = None) -> int:
    """Write ``out``: the EMBL-CDS accessions of the enzyme entries (what ``scripts/fetch_sources.py`` fetches
    from ENA as ``ena.accessions``), sorted, one a line; return how many."""
    files = uniprot_files(raw_dir, inputs, ("entries", "idmapping"))
    with tempfile.TemporaryDirectory(prefix="biotalk-uniprot-", dir=workdir) as tmp:
        entries, idmap, _ = _stage(files, inputs, Path(tmp))
        ids = [_mapped(entries, idmap, b).select(pl.col("CdsIds").explode().drop_nulls().unique()).collect()
               for b in range(inputs.buckets)]  # fmt: skip
    ids = pl.concat(ids)["CdsIds"].unique().sort()
    with atomic_path(out) as path:
        path.write_text("".join(f"{i}\n" for i in ids))
    return len(ids)
