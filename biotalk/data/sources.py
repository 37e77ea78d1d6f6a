"""The UniProt front end of the builder: UniProtKB entries + ``idmapping_selected.tab`` + ENA CDS FASTA ->
the record table (one row per (CDS, full EC)) with UniProt's own UniRef100/90/50 cluster ids.

Every input is streamed once into Parquet parts in a work folder (entries, the idmapping rows of those
entries, CDS sequences); the joins run in Polars' streaming engine over those parts, so no dump is ever
held in memory, only the record table that comes out. Every entry with an EC that does not become a row
is a ``Reject`` with its reason; entries without any EC are not enzyme records and are not listed.
"""

from __future__ import annotations

import glob
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
from tqdm import tqdm

from biotalk.baselines import translate_cds
from biotalk.data.errors import InputError
from biotalk.data.genbank import COLUMNS, DOMAINS, Reject
from biotalk.data.uniprot import (
    IDMAPPING_COLUMNS,
    IDMAPPING_FIELDS,
    Entry,
    domain,
    read_cds_fasta,
    read_entries,
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


class _Parts:
    """Rows written as numbered Parquet parts of ``batch_rows`` rows each (bounded memory)."""

    def __init__(self, folder: Path, schema: dict, batch_rows: int) -> None:
        self.folder, self.schema, self.batch_rows = folder, schema, batch_rows
        self.rows: list[dict] = []
        self.count = 0
        folder.mkdir(parents=True)
        pl.DataFrame(schema=schema).write_parquet(folder / "part-empty.parquet")  # a scan never finds no file

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.write(pl.DataFrame(self.rows, schema=self.schema, orient="row"))
            self.rows = []

    def write(self, frame: pl.DataFrame) -> None:
        frame.write_parquet(self.folder / f"part-{self.count:06d}.parquet")
        self.count += 1

    def scan(self) -> pl.LazyFrame:
        return pl.scan_parquet(self.folder / "*.parquet")


def _entry_row(entry: Entry, order: int, source: str, rejects: list[Reject]) -> dict | None:
    """The staged row of an enzyme entry, or None after recording why it cannot be one."""
    top = domain(entry.lineage)
    if top not in DOMAINS:
        rejects.append(Reject(source, entry.ac, f"not Bacteria or Archaea: {top or 'no lineage'}"))
        return None
    ecs, bad = full_ecs(entry.ec_items)
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


def stage_entries(paths: list[Path], parts: _Parts) -> list[Reject]:
    """Stream the enzyme entries of every entries file into ``parts``; return the rejects."""
    rejects: list[Reject] = []
    order = 0
    for path in paths:
        for item in tqdm(read_entries(path), desc=f"entries {path.name}", unit=" entries", leave=False):
            if isinstance(item, Reject):
                rejects.append(item)
            elif item.ec_items:  # an entry without EC is not an enzyme record
                row = _entry_row(item, order, path.name, rejects)
                if row is not None:
                    parts.add(row)
                    order += 1
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


def stage_idmapping(path: Path, acs: pl.DataFrame, parts: _Parts) -> None:
    """Keep the idmapping rows of the staged accessions ``acs`` (one column ``AC``)."""
    for block in tqdm(_idmapping_batches(path, 1 << 24), desc=f"idmapping {path.name}", unit=" blocks", leave=False):
        parts.write(block.join(acs, on="AC", how="semi"))


def stage_cds(paths: list[Path], parts: _Parts) -> None:
    """Stream every ENA CDS FASTA record into ``parts``."""
    for path in paths:
        for cds_id, seq in tqdm(read_cds_fasta(path), desc=f"CDS {path.name}", unit=" seqs", leave=False):
            parts.add({"EmblCdsId": cds_id, "Sequence": seq})
    parts.flush()


def _rejects(frame: pl.LazyFrame, record: pl.Expr, reason: pl.Expr) -> list[Reject]:
    rows = frame.select(pl.col("SourceFile"), record.alias("record"), reason.alias("reason")).collect(engine="streaming")
    return [Reject(*row) for row in rows.iter_rows()]


def _cds_ids() -> pl.Expr:
    """An entry's CDS ids: its EMBL DR lines (flat files), else idmapping column 18 (TSV entries)."""
    ids = pl.col("EmblCds").str.split(";").list.eval(pl.element().str.strip_chars()).list.filter(pl.element() != "")
    return pl.coalesce(pl.col("CdsIds"), ids).alias("CdsIds")


def join_records(entries: pl.LazyFrame, idmap: pl.LazyFrame, cds: pl.LazyFrame) -> tuple[pl.DataFrame, list[Reject]]:
    """Entries x idmapping (clusters; CDS ids of TSV entries) x CDS sequences -> (records, rejects)."""
    idmap = idmap.unique("AC", keep="first", maintain_order=True).with_columns(
        pl.lit(True).alias("_mapped"), *(pl.col(c).str.strip_chars() for c in CLUSTER_COLUMNS))
    x = entries.join(idmap, on="AC", how="left", maintain_order="left").with_columns(_cds_ids())
    unclustered = pl.any_horizontal(pl.col(c).fill_null("") == "" for c in CLUSTER_COLUMNS)
    why = (pl.when(pl.col("_mapped").is_null()).then(pl.lit("not in idmapping: no UniRef clusters"))
           .when(unclustered).then(pl.lit("no UniRef cluster in idmapping"))
           .when(pl.col("CdsIds").list.len().fill_null(0) == 0).then(pl.lit("no EMBL CDS: none in idmapping")))  # fmt: skip
    rejects = _rejects(x.filter(why.is_not_null()), pl.col("AC"), why)
    x = x.filter(why.is_null()).explode("CdsIds").rename({"CdsIds": "EmblCdsId"})
    sequences = cds.group_by("EmblCdsId").agg(pl.col("Sequence").min())  # one per id, deterministic
    x = x.join(sequences, on="EmblCdsId", how="left", maintain_order="left")
    bad_dna = pl.col("Sequence").str.replace_all("[ACGTN]", "")
    why = (pl.when(pl.col("Sequence").fill_null("") == "").then(pl.lit("no CDS sequence in ENA FASTA"))
           .when(bad_dna != "").then(pl.lit("non-ACGTN bases: ") + bad_dna.str.slice(0, 20)))  # fmt: skip
    rejects += _rejects(x.filter(why.is_not_null()), pl.col("AC") + " " + pl.col("EmblCdsId"), why)
    translated = pl.col("Sequence").map_elements(translate_cds, return_dtype=pl.Utf8)  # code 11: include `sequence`
    x = x.filter(why.is_null()).with_columns(
        pl.when(pl.col("Protein") == "").then(translated).otherwise(pl.col("Protein")).alias("Protein"))
    x = x.explode("ECs").rename({"ECs": "EC"})
    x = x.with_columns((pl.col("EmblCdsId") + "|" + pl.col("EC")).alias("RecordId")).sort("Order", "EmblCdsId", "EC")
    first = pl.col("RecordId").is_first_distinct()
    rejects += _rejects(x.filter(~first), pl.col("RecordId"), pl.lit("duplicate record id"))
    x = x.filter(first).with_columns(pl.lit("").alias("Note"), pl.lit("").alias("LocusTag"))
    return x.select(*COLUMNS, *CLUSTER_COLUMNS).collect(engine="streaming"), rejects


def read_uniprot(raw_dir: str | Path, inputs: UniProtInputs, workdir: str | Path | None = None) -> tuple[pl.DataFrame, list[Reject]]:
    """The record table (genbank ``COLUMNS`` + UniRef100/90/50) and rejects of the UniProt inputs."""
    files = uniprot_files(raw_dir, inputs)
    with tempfile.TemporaryDirectory(prefix="biotalk-uniprot-", dir=workdir) as tmp:
        entries = _Parts(Path(tmp) / "entries", ENTRY_SCHEMA, inputs.batch_rows)
        rejects = stage_entries(files["entries"], entries)
        idmap = _Parts(Path(tmp) / "idmap", {k: pl.Utf8 for k in IDMAPPING_FIELDS}, inputs.batch_rows)
        stage_idmapping(files["idmapping"][0], entries.scan().select("AC").collect(), idmap)
        cds = _Parts(Path(tmp) / "cds", CDS_SCHEMA, inputs.batch_rows)
        stage_cds(files["cds_fasta"], cds)
        records, join_rejects = join_records(entries.scan(), idmap.scan(), cds.scan())
    return records, rejects + join_rejects


def cds_accessions(raw_dir: str | Path, inputs: UniProtInputs, out: str | Path, workdir: str | Path | None = None) -> int:
    """Write ``out``: the EMBL-CDS accessions of the enzyme entries (what ``scripts/fetch_sources.py`` fetches
    from ENA as ``ena.accessions``), sorted, one a line; return how many."""
    files = uniprot_files(raw_dir, inputs, ("entries", "idmapping"))
    with tempfile.TemporaryDirectory(prefix="biotalk-uniprot-", dir=workdir) as tmp:
        entries = _Parts(Path(tmp) / "entries", ENTRY_SCHEMA, inputs.batch_rows)
        stage_entries(files["entries"], entries)
        idmap = _Parts(Path(tmp) / "idmap", {k: pl.Utf8 for k in IDMAPPING_FIELDS}, inputs.batch_rows)
        stage_idmapping(files["idmapping"][0], entries.scan().select("AC").collect(), idmap)
        mapped = idmap.scan().unique("AC", keep="first", maintain_order=True).select("AC", "EmblCds")
        ids = entries.scan().join(mapped, on="AC", how="left").select(_cds_ids()).explode("CdsIds")
        ids = ids.drop_nulls().unique().sort("CdsIds").collect(engine="streaming")["CdsIds"]
    with atomic_path(out) as path:
        path.write_text("".join(f"{i}\n" for i in ids))
    return len(ids)
