"""Read prokaryotic GenBank genomes into the record table: one row per (CDS, full EC).

Every CDS that carries an /EC_number becomes rows or a ``Reject`` with its reason; nothing is
dropped silently. A reason is ``"category"`` or ``"category: detail"``, so rejects can be counted
by category (``reject_category``). Pseudo genes without an /EC_number are not enzyme records and
are not listed.
"""

from __future__ import annotations

import io
import re
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from Bio import BiopythonParserWarning, SeqIO
from Bio.SeqRecord import SeqRecord

from biotalk.data.errors import InputError
from biotalk.data.translate import CdsError, dna_and_protein
from biotalk.ec import full_ecs, split_ec_field
from biotalk.io import open_text

GENBANK_SUBDIR = "genbank"
GENBANK_GLOB = "*.gb*"  # .gb, .gbk, .gbff, each optionally gzipped
DOMAINS = ("Bacteria", "Archaea")
COLUMNS = [
    "AC", "EmblCdsId", "DBtype", "OC", "Organism", "EC", "Sequence", "Protein",
    "Product", "Function", "Note", "SourceFile", "LocusTag", "RecordId",
]  # fmt: skip
_RECORD_END = re.compile(r"^//[ \t]*\r?$", re.MULTILINE)
_LOCUS = re.compile(r"^LOCUS\s+(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Reject:
    """One input item left out of the benchmark: file, record or CDS id, and why."""

    source: str
    record: str
    reason: str


def reject_category(reason: str) -> str:
    """The counting key of a reason: ``"invalid EC: not an EC number: '1.2'"`` -> ``"invalid EC"``."""
    return reason.split(":", 1)[0]


def genbank_files(raw_dir: str | Path, files: Iterable[str | Path] | None = None) -> list[Path]:
    """The GenBank files to read, sorted by name; raise ``InputError`` naming the missing path."""
    folder = Path(raw_dir) / GENBANK_SUBDIR
    if not Path(raw_dir).is_dir():
        raise InputError(f"raw data folder not found: {raw_dir}")
    if files is not None:
        paths = [Path(f) if Path(f).is_absolute() else folder / f for f in files]
        for path in paths:
            if not path.is_file():
                raise InputError(f"GenBank file not found: {path}")
        return sorted(paths, key=lambda p: p.name)
    if not folder.is_dir():
        raise InputError(f"GenBank folder not found: {folder}")
    paths = sorted(p for p in folder.glob(GENBANK_GLOB) if p.is_file())
    if not paths:
        raise InputError(f"no GenBank file (*.gb, *.gbk, *.gbff, gzipped or not) in {folder}")
    return paths


def read_genbank_dir(
    raw_dir: str | Path, files: Iterable[str | Path] | None = None
) -> tuple[pl.DataFrame, list[Reject]]:
    """Read ``raw_dir/genbank/*.gb*`` (or the named ``files``) into (records, rejects).

    Rows follow file name, record and feature order, then the order of the CDS's ECs.
    """
    rows: list[dict[str, str]] = []
    rejects: list[Reject] = []
    for path in genbank_files(raw_dir, files):
        file_rows, file_rejects = read_genbank_file(path)
        rows.extend(file_rows)
        rejects.extend(file_rejects)
    rows = _drop_duplicate_ids(rows, rejects)
    return pl.DataFrame(rows, schema={c: pl.Utf8 for c in COLUMNS}, orient="row"), rejects


def read_genbank_file(path: Path) -> tuple[list[dict[str, str]], list[Reject]]:
    """Rows and rejects of one file; a file that cannot be read at all is one reject, no rows."""
    source = path.name
    try:
        with open_text(path) as handle:
            text = handle.read()
    except (OSError, EOFError, zlib.error) as err:
        return [], [Reject(source, "", f"unreadable file: {err}")]
    if not _LOCUS.search(text):
        return [], [Reject(source, "", "unparsable file: no LOCUS line")]
    rows: list[dict[str, str]] = []
    rejects: list[Reject] = []
    chunks = [c for c in _RECORD_END.split(text) if c.strip()]
    for i, chunk in enumerate(chunks):
        locus = _LOCUS.search(chunk)
        name = locus.group(1) if locus else f"record {i + 1}"
        try:
            with warnings.catch_warnings():  # e.g. a sequence shorter than its LOCUS line says
                warnings.simplefilter("error", BiopythonParserWarning)
                record = SeqIO.read(io.StringIO(chunk + "//\n"), "genbank")
        except Exception as err:  # Biopython raises ValueError, IndexError, warnings... on malformed text
            rejects.append(Reject(source, name, f"malformed record: {type(err).__name__}: {err}"))
            continue
        rows.extend(_record_rows(record, source, rejects))
    return rows, rejects


def _record_rows(record: SeqRecord, source: str, rejects: list[Reject]) -> list[dict[str, str]]:
    taxonomy = record.annotations.get("taxonomy") or [""]
    domain = taxonomy[0]
    if domain not in DOMAINS:
        rejects.append(Reject(source, record.id, f"unknown lineage: {domain or 'none'}"))
        return []
    organism = record.annotations.get("organism", "")
    rows = []
    for feature in record.features:
        if feature.type != "CDS" or "EC_number" not in feature.qualifiers:
            continue
        q = feature.qualifiers
        ids = _identifiers(q)
        name = ids["EmblCdsId"] or f"{record.id}:{feature.location}"
        if "pseudo" in q or "pseudogene" in q:
            rejects.append(Reject(source, name, "pseudo"))
            continue
        items = [item for value in q["EC_number"] for item in split_ec_field(value)]
        ecs, bad_ecs = full_ecs(items)
        for item, why in bad_ecs:
            category = "partial EC" if why == "partial EC" else "invalid EC"
            rejects.append(Reject(source, name, f"{category}: {item}"))
        if not ecs:
            continue
        try:
            if not ids["EmblCdsId"]:
                raise CdsError("no identifier: no /protein_id, /locus_tag or RAST id")
            dna, protein = dna_and_protein(record, feature)
        except CdsError as err:
            rejects.append(Reject(source, name, str(err)))
            continue
        base = {
            **ids,
            "OC": domain,
            "Organism": organism,
            "Sequence": dna,
            "Protein": protein,
            "Product": _joined(q, "product"),
            "Function": _joined(q, "function"),
            "Note": _joined(q, "note"),
            "SourceFile": source,
        }
        rows.extend({**base, "EC": ec, "RecordId": f"{ids['EmblCdsId']}|{ec}"} for ec in ecs)
    return rows


def _joined(q: dict[str, list[str]], key: str) -> str:
    return "; ".join(v.strip() for v in q.get(key, []) if v.strip())


def _xref(q: dict[str, list[str]], prefix: str) -> str:
    for value in q.get("db_xref", []):
        if value.startswith(prefix):
            return value[len(prefix) :].strip()
    return ""


def _identifiers(q: dict[str, list[str]]) -> dict[str, str]:
    """AC, EmblCdsId, DBtype, LocusTag from the qualifiers (UniProt xref > protein_id > locus > RAST).

    A RefSeq ``WP_`` accession names a non-redundant protein shared by genes of many genomes, not one
    CDS, so for it the CDS id is the locus tag (the ``WP_`` accession stays in ``AC``).
    """
    swissprot = _xref(q, "UniProtKB/Swiss-Prot:")
    uniprot = swissprot or _xref(q, "UniProtKB/TrEMBL:")
    rast = _xref(q, "RAST2:") or _xref(q, "RAST:")
    locus = (q.get("locus_tag") or [""])[0].strip() or rast
    protein_id = (q.get("protein_id") or [""])[0].strip()
    cds_id = locus if protein_id.startswith("WP_") and locus else protein_id or locus
    return {
        "AC": uniprot or protein_id or cds_id,
        "EmblCdsId": cds_id,
        "DBtype": "SwissProt" if swissprot else "Unreviewed",
        "LocusTag": locus,
    }


def _drop_duplicate_ids(rows: list[dict[str, str]], rejects: list[Reject]) -> list[dict[str, str]]:
    """Keep the first row of each RecordId; later ones are rejected, never silently merged."""
    seen: set[str] = set()
    kept = []
    for row in rows:
        if row["RecordId"] in seen:
            rejects.append(Reject(row["SourceFile"], row["RecordId"], "duplicate record id"))
            continue
        seen.add(row["RecordId"])
        kept.append(row)
    return kept


def file_report(records: pl.DataFrame, rejects: list[Reject]) -> pl.DataFrame:
    """Per source file: records kept and rejects per reason category (for logs and the dataset card)."""
    kept = records.group_by("SourceFile").agg(pl.len().alias("records"))
    counts = pl.DataFrame(
        {"SourceFile": [r.source for r in rejects], "reason": [reject_category(r.reason) for r in rejects]},
        schema={"SourceFile": pl.Utf8, "reason": pl.Utf8},
    )
    report = kept.join(counts.select("SourceFile").unique(), on="SourceFile", how="full", coalesce=True)
    if counts.height:
        wide = (
            counts.group_by("SourceFile", "reason")
            .agg(pl.len().alias("n"))
            .pivot("reason", index="SourceFile", values="n")
        )
        wide = wide.select("SourceFile", *sorted(c for c in wide.columns if c != "SourceFile"))
        report = report.join(wide, on="SourceFile", how="left")
    return report.fill_null(0).sort("SourceFile")
