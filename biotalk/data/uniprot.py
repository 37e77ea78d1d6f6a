"""Streaming, gzip-aware readers of the public UniProt and ENA files the benchmarks can be built from.

- UniProtKB flat files (``uniprot_sprot*.dat[.gz]``, ``uniprot_trembl*.dat[.gz]``), one entry at a time
  through ``Bio.SwissProt``: accession, ``Reviewed``/``Unreviewed`` (-> ``DBtype``), the ECs of the DE
  lines (``EC=`` of the name and of its ``Includes:``/``Contains:`` parts), the OC lineage, the protein ids
  of ``DR EMBL`` lines (the second field: the EMBL-CDS accession, ``-`` when the CDS is not annotated).
- The UniProt TSV export with the same facts (``ENTRY_TSV_FIELDS``). Its ``xref_embl`` column holds only
  the nucleotide accessions, so the CDS ids of a TSV entry come from ``idmapping_selected.tab``; without
  its optional ``sequence`` column the protein is the CDS translated by the builder.
- ``idmapping_selected.tab[.gz]``: 22 tab-separated columns, without a header, documented by UniProt
  (``IDMAPPING_COLUMNS``); the builder reads columns 1, 8, 9, 10 and 18 (1-based) by those numbers.
- ENA CDS FASTA: ``>ENA|AAC73113|AAC73113.1 description`` or ``>AAC73113.1 description``.

A malformed entry is a ``Reject`` (file, record, reason), never a crash that loses the rest of a dump.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from Bio import SwissProt
from Bio.SeqIO.FastaIO import SimpleFastaParser

from biotalk.data.errors import InputError
from biotalk.data.genbank import Reject
from biotalk.data.split import CURATED
from biotalk.io import open_text

UNREVIEWED = "Unreviewed"
# The 22 columns of idmapping_selected.tab, in order (UniProt's README of the idmapping folder).
IDMAPPING_COLUMNS = (
    "UniProtKB-AC", "UniProtKB-ID", "GeneID", "RefSeq", "GI", "PDB", "GO", "UniRef100", "UniRef90",
    "UniRef50", "UniParc", "PIR", "NCBI-taxon", "MIM", "UniGene", "PubMed", "EMBL", "EMBL-CDS", "Ensembl",
    "Ensembl_TRS", "Ensembl_PRO", "Additional PubMed",
)  # fmt: skip
# What the builder takes from it, by 1-based column number (the reference code read column 22 as EMBL-CDS).
IDMAPPING_FIELDS = {"AC": 1, "UniRef100": 8, "UniRef90": 9, "UniRef50": 10, "EmblCds": 18}
# TSV export: our key -> (REST field name, the header UniProt writes for it); the first five are required.
ENTRY_TSV_FIELDS = {
    "AC": ("accession", "Entry"), "Reviewed": ("reviewed", "Reviewed"), "EC": ("ec", "EC number"),
    "Lineage": ("lineage", "Taxonomic lineage"), "Embl": ("xref_embl", "EMBL"), "Protein": ("sequence", "Sequence"),
    "Product": ("protein_name", "Protein names"), "Function": ("cc_function", "Function [CC]"),
    "Organism": ("organism_name", "Organism"),
}  # fmt: skip
REQUIRED_TSV = ("AC", "Reviewed", "EC", "Lineage", "Embl")
_DE_EC = re.compile(r"\bEC=([^;{\s]+)")
_DE_NAME = re.compile(r"(?:RecName|SubName): Full=([^;{]+)")
_EVIDENCE = re.compile(r"\s*\{ECO:[^}]*\}")
_RANK = re.compile(r"\s*\([^()]*\)$")  # "Bacteria (domain)" in the REST lineage column
_ENTRY_END = re.compile(r"^//\s*$")
_FIRST_NAME = re.compile(r" [(\[]")  # "Name (Short) (EC 1.2.3.4) [Includes: ...]" -> "Name"


@dataclass(frozen=True)
class Entry:
    """What a UniProtKB entry contributes: ``ec_items`` as written (full, partial or bad), ``cds_ids`` the
    EMBL-CDS accessions (None: take them from idmapping), ``has_embl`` whether any EMBL xref exists."""

    ac: str
    dbtype: str
    lineage: tuple[str, ...]
    organism: str
    ec_items: tuple[str, ...]
    has_embl: bool
    cds_ids: tuple[str, ...] | None
    protein: str
    product: str
    function: str


def domain(lineage: tuple[str, ...]) -> str:
    """The top taxon of a lineage ('Bacteria', 'Archaea', 'Eukaryota', ...), rank labels dropped."""
    names = [_RANK.sub("", t).strip() for t in lineage]
    names = [n for n in names if n and n.lower() != "cellular organisms"]
    return names[0] if names else ""


def _clean(text: str) -> str:
    return " ".join(_EVIDENCE.sub("", text).split()).strip()


def _flat_entry(record: SwissProt.Record) -> Entry:
    embl = [x for x in record.cross_references if x[0] == "EMBL"]
    function = next((c.split(":", 1)[1] for c in record.comments if c.startswith("FUNCTION:")), "")
    name = _DE_NAME.search(record.description)
    return Entry(
        ac=record.accessions[0],
        dbtype=CURATED if record.data_class == "Reviewed" else UNREVIEWED,
        lineage=tuple(record.organism_classification),
        organism=record.organism.rstrip(".").strip(),
        ec_items=tuple(_DE_EC.findall(record.description)),
        has_embl=bool(embl),
        cds_ids=tuple(dict.fromkeys(x[2] for x in embl if len(x) > 2 and x[2] != "-")),
        protein=record.sequence,
        product=_clean(name.group(1)) if name else "",
        function=_clean(function),
    )


def _chunks(path: Path) -> Iterator[str]:
    """The text of each entry of a flat file (up to its ``//`` line), read line by line."""
    lines: list[str] = []
    with open_text(path) as handle:
        for line in handle:
            lines.append(line)
            if _ENTRY_END.match(line):
                yield "".join(lines)
                lines = []
    if "".join(lines).strip():
        yield "".join(lines)  # a last entry without its '//' line: the parser rejects it


def read_flat(path: Path) -> Iterator[Entry | Reject]:
    """Entries of a UniProtKB flat file; a malformed entry is a ``Reject``."""
    for i, chunk in enumerate(_chunks(path)):
        try:
            yield _flat_entry(SwissProt.read(io.StringIO(chunk)))
        except Exception as err:  # Bio.SwissProt raises ValueError, IndexError, ... on malformed text
            ac = re.search(r"^AC\s+(\w+)", chunk, re.MULTILINE)
            yield Reject(path.name, ac.group(1) if ac else f"entry {i + 1}", f"malformed entry: {err}")


def _tsv_columns(header: list[str], path: Path) -> dict[str, int]:
    where = {name: i for i, name in enumerate(header)}
    found = {key: next((where[n] for n in names if n in where), None) for key, names in ENTRY_TSV_FIELDS.items()}
    missing = [ENTRY_TSV_FIELDS[k][0] for k in REQUIRED_TSV if found[k] is None]
    if missing:
        raise InputError(f"{path}: UniProt TSV export without the column(s) {', '.join(missing)}")
    return {k: i for k, i in found.items() if i is not None}


def read_tsv(path: Path) -> Iterator[Entry | Reject]:
    """Entries of a UniProt TSV export (header row of REST field names or of UniProt's column labels)."""
    with open_text(path) as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        cols = _tsv_columns(next(rows, []), path)
        for n, row in enumerate(rows, start=2):
            if len(row) <= max(cols.values()):
                yield Reject(path.name, f"line {n}", f"malformed entry: {len(row)} columns")
                continue
            get = {k: row[i].strip() for k, i in cols.items()}
            yield Entry(
                ac=get["AC"],
                dbtype=CURATED if get["Reviewed"].lower() in ("reviewed", "swiss-prot") else UNREVIEWED,
                lineage=tuple(t for t in get["Lineage"].split(", ") if t),
                organism=get.get("Organism", ""),
                ec_items=tuple(e.strip() for e in get["EC"].split(";") if e.strip()),
                has_embl=bool(get["Embl"].strip("; ")),
                cds_ids=None,
                protein=get.get("Protein", ""),  # none: the builder translates the CDS
                product=_clean(_FIRST_NAME.split(get.get("Product", ""))[0]),
                function=_clean(get.get("Function", "").removeprefix("FUNCTION:")),
            )


def read_entries(path: Path) -> Iterator[Entry | Reject]:
    """Entries of a flat file or (``.tsv``/``.tsv.gz``, ``.tab``) a TSV export."""
    tsv = any(s in (".tsv", ".tab") for s in path.suffixes)
    return read_tsv(path) if tsv else read_flat(path)


def fasta_id(title: str) -> str:
    """The CDS accession of an ENA FASTA title: ``ENA|AAC73113|AAC73113.1 ...`` -> ``AAC73113.1``."""
    first = title.split(None, 1)[0] if title.strip() else ""
    return first.rsplit("|", 1)[-1]


def read_cds_fasta(path: Path) -> Iterator[tuple[str, str]]:
    """(EMBL-CDS accession, upper-case DNA) of each record of an ENA CDS FASTA file."""
    with open_text(path) as handle:
        for title, seq in SimpleFastaParser(handle):
            yield fasta_id(title), seq.upper()
