"""The UniProt front end of the builder: UniProtKB entries + ``idmapping_selected.tab`` + ENA CDS FASTA ->
the record table (one row per (CDS, full EC)) with UniProt's own UniRef100/90/50 cluster ids.

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
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from tqdm import tqdm

from biotalk.baselines import translate_cds
from biotalk.data.buckets import ROW, Buckets, drop_rows, later_copies
from biotalk.data.errors import InputError
from biotalk.data.genbank import COLUMNS, Reject
from biotalk.data.staging import CDS_SCHEMA, ENTRY_SCHEMA, stage_cds, stage_entries, stage_idmapping
from biotalk.data.uniprot import IDMAPPING_FIELDS
from biotalk.io import atomic_path

CLUSTER_COLUMNS = ("UniRef100", "UniRef90", "UniRef50")


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
