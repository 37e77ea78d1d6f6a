"""Streaming, gzip-aware readers of the public UniProt and ENA files the benchmarks can be built from.

- UniProtKB flat files (``uniprot_sprot*.dat[.gz]``, ``uniprot_trembl*.dat[.gz]``), one entry at a time
  through ``Bio.SwissProt``, only entries whose DE lines hold ``EC=`` (most TrEMBL entries are not
  enzymes: skipped unparsed, on a text test): accession, ``Reviewed``/``Unreviewed`` (-> ``DBtype``), the
  ECs of the DE lines (``EC=`` of the name and of its ``Includes:``/``Contains:`` parts), the OC lineage,
  the protein ids of ``DR EMBL`` lines (the second field: the EMBL-CDS accession, ``-`` when the CDS is not
  annotated).
- The UniProt TSV export with the same facts (``ENTRY_TSV_FIELDS``). Its ``xref_embl`` column holds only
  the nucleotide accessions, so the CDS ids of a TSV entry come from ``idmapping_selected.tab``; without
  its optional ``sequence`` column the protein is the CDS translated by the builder.
- ``idmapping_selected.tab[.gz]``: 22 tab-separated columns, without a header, documented by UniProt
  (``IDMAPPING_COLUMNS``); the builder reads columns 1, 8, 9, 10 and 18 (1-based) by those numbers.
- ENA CDS FASTA: ``>ENA|AAC73113|AAC73113.1 description`` or ``>AAC73113.1 description``.

A malformed entry is a ``Reject`` (file, record, reason), never a crash that loses the rest of a dump.
Entries come in batches of their raw text (``entry_batches``) that ``parse_batch`` turns into entries, so
batches can be parsed in other processes (``biotalk.data.sources.stage_entries``) in the file's order.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count, islice
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
_ENTRY_END = re.compile(r"\n//[^\S\n]*(?=\n)")  # a '//' line (blanks may follow), with the newline before it
_DE_LINE_EC = re.compile(r"^DE.*EC=", re.MULTILINE)
_FIRST_NAME = re.compile(r" [(\[]")  # "Name (Short) (EC 1.2.3.4) [Includes: ...]" -> "Name"


BATCH = 1000  # entries (flat-file entries or TSV rows) per batch


@dataclass(frozen=True)
class EntryBatch:
    """Raw text of consecutive entries of one file: ``start`` numbers the first (flat files: from 0; TSV:
    its line number); ``columns`` are the TSV's column numbers by key (None: flat-file entries)."""

    file: str
    start: int
    texts: list[str]
    columns: dict[str, int] | None = None


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


def _chunks(path: Path, block: int = 1 << 22) -> Iterator[str]:
    """The text of each entry of a flat file (up to and with its ``//`` line), cut from blocks of text by a
    search for ``\n//`` (not a line at a time in Python: as slow as parsing the entries)."""
    rest = "\n"  # the text not yet cut, after the newline that ends the line before it
    with open_text(path) as handle:
        while data := handle.read(block):
            text, start = rest + data, 0
            for end in _ENTRY_END.finditer(text):  # its newline is there: a line cut by the block waits
                yield text[start + 1 : end.end() + 1]
                start = end.end()
            rest = text[start:]
    if rest[1:].strip():
        yield rest[1:]  # the last entry: its '//' line lacks a newline, or it is cut short (a reject)


def _without_ec(text: str) -> bool:
    """A whole entry (``ID`` line to ``//`` line) with no ``EC=`` in its DE lines: not an enzyme, whatever
    the rest of its text holds, so it need not be parsed. A text cut short or not starting with ``ID`` is
    parsed (and rejected as malformed) as before; ``EC=`` in other lines (CC) only costs a parse."""
    whole = text.startswith("ID") and text.rstrip().endswith("\n//")
    return whole and ("EC=" not in text or _DE_LINE_EC.search(text) is None)


def _flat_batch(batch: EntryBatch) -> list[Entry | Reject]:
    out: list[Entry | Reject] = []
    for i, text in enumerate(batch.texts, start=batch.start):
        if _without_ec(text):
            continue
        try:
            entry = _flat_entry(SwissProt.read(io.StringIO(text)))
        except Exception as err:  # Bio.SwissProt raises ValueError, IndexError, ... on malformed text
            ac = re.search(r"^AC\s+(\w+)", text, re.MULTILINE)
            out.append(Reject(batch.file, ac.group(1) if ac else f"entry {i + 1}", f"malformed entry: {err}"))
            continue
        if entry.ec_items:  # none when EC= was in other lines only, or not an EC DE lines can hold
            out.append(entry)
    return out


def read_flat(path: Path) -> Iterator[Entry | Reject]:
    """Entries of a UniProtKB flat file with an EC in their DE lines; a malformed entry is a ``Reject``."""
    for batch in entry_batches(path):
        yield from _flat_batch(batch)


def _tsv_columns(header: list[str], path: Path) -> dict[str, int]:
    where = {name: i for i, name in enumerate(header)}
    found = {key: next((where[n] for n in names if n in where), None) for key, names in ENTRY_TSV_FIELDS.items()}
    missing = [ENTRY_TSV_FIELDS[k][0] for k in REQUIRED_TSV if found[k] is None]
    if missing:
        raise InputError(f"{path}: UniProt TSV export without the column(s) {', '.join(missing)}")
    return {k: i for k, i in found.items() if i is not None}


def _tsv_batch(batch: EntryBatch) -> list[Entry | Reject]:
    cols = batch.columns
    out: list[Entry | Reject] = []
    rows = csv.reader(batch.texts, delimiter="\t", quoting=csv.QUOTE_NONE)
    for n, row in enumerate(rows, start=batch.start):
        if len(row) <= max(cols.values()):
            out.append(Reject(batch.file, f"line {n}", f"malformed entry: {len(row)} columns"))
            continue
        get = {k: row[i].strip() for k, i in cols.items()}
        entry = Entry(
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
        out.append(entry)
    return out


def read_tsv(path: Path) -> Iterator[Entry | Reject]:
    """Entries of a UniProt TSV export (header row of REST field names or of UniProt's column labels)."""
    for batch in entry_batches(path):
        yield from _tsv_batch(batch)


def _flat_batches(path: Path, size: int) -> Iterator[EntryBatch]:
    texts = _chunks(path)
    for start in count(0, size):
        texts_batch = list(islice(texts, size))
        if not texts_batch:
            return
        yield EntryBatch(path.name, start, texts_batch)


def _is_tsv(path: Path) -> bool:
    return any(s in (".tsv", ".tab") for s in path.suffixes)


def _tsv_batches(path: Path, size: int) -> Iterator[EntryBatch]:
    with open_text(path) as handle:
        header = next(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), [])
        cols = _tsv_columns(header, path)
        lines: list[str] = []
        start = 2
        for line in handle:
            lines.append(line)
            if len(lines) == size:
                yield EntryBatch(path.name, start, lines, cols)
                start, lines = start + size, []
        if lines:
            yield EntryBatch(path.name, start, lines, cols)


def entry_batches(path: Path, size: int = BATCH) -> Iterator[EntryBatch]:
    """The raw text of the entries of a flat file or (``.tsv``/``.tsv.gz``, ``.tab``) a TSV export, ``size``
    entries a batch; ``InputError`` (on the first batch) for a TSV without the required columns."""
    return _tsv_batches(path, size) if _is_tsv(path) else _flat_batches(path, size)


def read_entries(path: Path) -> Iterator[Entry | Reject]:
    """Entries of a flat file or (``.tsv``/``.tsv.gz``, ``.tab``) a TSV export, one at a time (what the
    collected front end of benchmarks/bench_uniprot_scale.py's baseline reads)."""
    return read_tsv(path) if _is_tsv(path) else read_flat(path)


def parse_batch(batch: EntryBatch) -> list[Entry | Reject]:
    """A batch's entries and rejects, in file order (flat files: only entries with an EC)."""
    return _flat_batch(batch) if batch.columns is None else _tsv_batch(batch)


def fasta_id(title: str) -> str:
    """The CDS accession of an ENA FASTA title: ``ENA|AAC73113|AAC73113.1 ...`` -> ``AAC73113.1``."""
    first = title.split(None, 1)[0] if title.strip() else ""
    return first.rsplit("|", 1)[-1]


def read_cds_fasta(path: Path) -> Iterator[tuple[str, str]]:
    """(EMBL-CDS accession, upper-case DNA) of each record of an ENA CDS FASTA file."""
    with open_text(path) as handle:
        for title, seq in SimpleFastaParser(handle):
            yield fasta_id(title), seq.upper()
