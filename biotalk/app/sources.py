"""What an app index is built from: the genes (a built benchmark's splits, or any FASTA or GenBank file of
genes), the zero-shot EC candidates with their ENZYME descriptions, and the ENZYME names the page shows.

Every table is one row per gene (``biotalk.retrieval.gene_table``): ``GeneId``, ``ECs`` (maybe empty for a
gene of unknown function), ``Organism``, ``Description``, ``Sequence`` (and ``Splits`` for a benchmark).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polars as pl
from Bio import SeqIO

from biotalk.clip_eval import Candidates, candidate_vectors
from biotalk.data.describe import describe_ec
from biotalk.data.enzyme import EnzymeDB
from biotalk.data.errors import InputError
from biotalk.data.schema import SHARED_SPLITS, split_key
from biotalk.ec import EC, EC_IN_TEXT_RE, InvalidEC, ec_order_key, full_ecs, parse_ec, split_ec_field
from biotalk.io import open_text

GENE_SCHEMA = {"GeneId": pl.Utf8, "ECs": pl.List(pl.Utf8), "Organism": pl.Utf8, "Description": pl.Utf8,
               "Sequence": pl.Utf8}  # fmt: skip
ORGANISM_RE = re.compile(r"\[([^\[\]]+)\]\s*$|\bOS=(.+?)(?:\s+\w\w=|$)")  # NCBI "[Organism]", UniProt "OS=..."


def benchmark_files(data: Path, benchmark: str, splits: Iterable[str]) -> list[Path]:
    """The files of the splits (our parquet layout, or the published csv names): the index's source."""
    files = []
    for split in splits:
        key = split_key(benchmark, split)
        names = [f"{key}.parquet", f"{split}.csv", f"{key}.csv", f"{split}.parquet"] if split in SHARED_SPLITS \
            else [f"{key}.parquet", f"{key}.csv"]  # fmt: skip
        files.extend([p for p in (data / n for n in names) if p.is_file()][:1])  # the one the loader reads
    return files


def _genes(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=GENE_SCHEMA, orient="row").unique("GeneId", keep="first", maintain_order=True)


def _ecs(items: Iterable[str]) -> list[str]:
    ecs, _ = full_ecs(items)
    return sorted(set(ecs), key=ec_order_key)


def fasta_genes(path: Path) -> pl.DataFrame:
    """Genes of a FASTA file: the id (first word), the header's ECs ("EC 1.2.3.4" anywhere in it) and organism
    ("[Escherichia coli]" or "OS=Escherichia coli"), the rest of the header as the description."""
    rows = []
    with open_text(path) as handle:
        for rec in SeqIO.parse(handle, "fasta"):
            header = rec.description[len(rec.id):].strip()
            found = ORGANISM_RE.search(header)
            organism = (found.group(1) or found.group(2) or "").strip() if found else ""
            ecs = _ecs(m.group(0) for m in EC_IN_TEXT_RE.finditer(header))
            rows.append({"GeneId": rec.id, "ECs": ecs, "Organism": organism, "Description": header,
                         "Sequence": str(rec.seq).upper()})
    return _genes(rows)


def genbank_genes(path: Path) -> pl.DataFrame:
    """Every CDS of a GenBank file that is not a pseudogene, with or without an EC: id (/protein_id, else
    /locus_tag, else record:location), its /EC_number values, organism, /product, DNA (joins and strand
    handled by Biopython)."""
    rows = []
    with open_text(path) as handle:
        for record in SeqIO.parse(handle, "genbank"):
            organism = record.annotations.get("organism", "")
            for feature in record.features:
                q = feature.qualifiers
                if feature.type != "CDS" or "pseudo" in q or "pseudogene" in q:
                    continue
                gene_id = (q.get("protein_id") or q.get("locus_tag") or [f"{record.id}:{feature.location}"])[0]
                ecs = _ecs(item for value in q.get("EC_number", []) for item in split_ec_field(value))
                rows.append({"GeneId": gene_id, "ECs": ecs, "Organism": organism,
                             "Description": "; ".join(q.get("product", [])),
                             "Sequence": str(feature.extract(record.seq)).upper()})
    return _genes(rows)


def file_genes(path: Path) -> pl.DataFrame:
    """Genes of a FASTA or GenBank file (gzipped or not), recognised by its first line."""
    if not path.is_file():
        raise FileNotFoundError(f"genes: file not found: {path}")
    with open_text(path) as handle:
        first = next((line for line in handle if line.strip()), "")
    if first.startswith(">"):
        genes = fasta_genes(path)
    elif first.startswith("LOCUS"):
        genes = genbank_genes(path)
    else:
        raise InputError(f"genes: {path} is neither FASTA ('>' first) nor GenBank ('LOCUS' first)")
    if genes.is_empty():
        raise InputError(f"genes: no gene in {path} (a GenBank file needs CDS features)")
    return genes


def candidate_ecs(db: EnzymeDB, genes: pl.DataFrame, which: str) -> list[str]:
    """The ECs a DNA query can be named with: every active ENZYME EC (``all``), or the active ECs of the
    indexed genes (``genes``)."""
    if which == "all":
        return db.active_ecs()
    current = {db.resolve(ec) for ecs in genes["ECs"] for ec in ecs}
    return sorted((ec for ec in current if ec and ec in db.entries), key=ec_order_key)


def candidate_table(model, db: EnzymeDB, ecs: list[str], templates: list[int],
                    cache_dir: Path | None) -> tuple[pl.DataFrame, np.ndarray]:  # fmt: skip
    """(EC, Name, Text) per candidate and its unit vector (templates averaged, as in evaluation)."""
    if not ecs:
        raise InputError("no candidate EC for zero-shot naming (candidates=genes, but no gene has a known EC)")
    cands = Candidates(ecs, [[describe_ec(ec, db, t, masked=True) for ec in ecs] for t in templates])
    vectors = candidate_vectors(model, cands, cache_dir).numpy()
    table = pl.DataFrame({"EC": ecs, "Name": [db.entries[ec].name for ec in ecs], "Text": cands.texts[0]})
    return table, vectors


def ec_names(db: EnzymeDB, ecs: Iterable[str]) -> dict[str, str]:
    """ENZYME names of the ECs (transfers followed) and of every class prefix above them, keyed like the
    hierarchy's nodes: '1.-.-.-', '1.11.-.-', '1.11.1.-', '1.11.1.6'."""
    names: dict[str, str] = {}
    for ec in set(ecs):
        try:
            levels = parse_ec(ec).levels
        except InvalidEC:
            continue
        for depth in range(1, len(levels) + 1):
            node = str(EC(levels[:depth]))
            if node in names:
                continue
            entry = db.entry(node) if depth == 4 else None
            name = entry.name if entry else db.class_name(node) if depth < 4 else None
            if name:
                names[node] = name
    return names
