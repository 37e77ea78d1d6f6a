"""Where a benchmark's evaluation genes sit in the raw genomes, so LOLBERT pretraining can leave them out.

A DNA encoder pretrained on the genomes that hold the test genes has read those genes (and, in the four
E. coli strains, their near-identical copies) before it is scored on them. ``heldout_loci`` finds every
CDS whose protein is at least ``min_identity`` identical (MMseqs2, the identity module's hit rules) to the
protein of a record in the named splits (default Test-I, Test-II and valid2): the genes themselves and
their homologues in any genome. ``biotalk.data.genomes.cut_out`` removes those spans from the training DNA.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from Bio import BiopythonWarning, SeqIO

from biotalk.data.errors import InputError
from biotalk.data.genbank import GENBANK_GLOB
from biotalk.data.identity import identity_hits, proteins
from biotalk.data.schema import split_key
from biotalk.io import open_text

MIN_PROTEIN_AA = 10  # shorter translations are fragments that would hit anything


@dataclass(frozen=True)
class Locus:
    source: str  # genome file name
    record: str  # record id
    start: int  # 0-based span of the CDS on the record (joins: first to last base)
    end: int


def genome_cds(genbank_dir: str | Path) -> tuple[list[Locus], list[str]]:
    """Every CDS of every genome with its protein (``/translation``, else the bacterial-code translation)."""
    files = sorted(Path(genbank_dir).glob(GENBANK_GLOB))
    if not files:
        raise InputError(f"{genbank_dir}: no GenBank files ({GENBANK_GLOB})")
    loci, prots = [], []
    for path in files:
        with open_text(path) as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore", BiopythonWarning)  # parser notes, partial codons of pseudo CDS
            for rec in SeqIO.parse(handle, "genbank"):
                for feature in rec.features:
                    if feature.type != "CDS":
                        continue
                    protein = (feature.qualifiers.get("translation") or [""])[0]
                    if not protein:
                        protein = str(feature.extract(rec.seq).translate(table=11, to_stop=True))
                    if len(protein) >= MIN_PROTEIN_AA:
                        loci.append(Locus(path.name, rec.id, int(feature.location.start), int(feature.location.end)))
                        prots.append(protein)
    return loci, prots


def split_proteins(benchmark_dir: str | Path, splits: Sequence[str]) -> list[str]:
    """The proteins of every record of the named shared splits of a built benchmark."""
    import polars as pl

    out = []
    for split in splits:
        path = Path(benchmark_dir) / f"{split_key('I', split)}.parquet"
        if not path.is_file():
            raise InputError(f"{path}: not found (build the benchmark first, or drop {split!r} from the held-out splits)")
        out += proteins(pl.read_parquet(path, columns=["Protein", "Sequence"]))
    return out


def heldout_loci(genbank_dir: str | Path, benchmark_dir: str | Path, splits: Sequence[str],
                 min_identity: float, threads: int = 1, cache_dir: str | Path | None = None) -> list[Locus]:  # fmt: skip
    """Spans of every genome CDS whose protein is >= ``min_identity`` identical to a held-out split's protein."""
    loci, prots = genome_cds(genbank_dir)
    queries = split_proteins(benchmark_dir, splits)
    hits = identity_hits(queries, prots, threads, cache_dir)
    close = set(hits.filter(hits["Identity"] >= min_identity)["Target"].to_list())
    close |= {q.rstrip("*") for q in queries}  # an identical protein is held out even without a reported hit
    return [locus for locus, p in zip(loci, prots, strict=True) if p.rstrip("*") in close]
