"""Whole genome sequences from data/raw/genbank, split into training and held-out regions for LOLBERT.

Held out are whole genomes (``heldout_genomes``: substrings of their file names) and the last
``heldout_fraction`` of every other record. Fragments are drawn inside one region, so a held-out
fragment never overlaps the training coordinates. Near-identical strains (four E. coli, three
M. gallisepticum) share sequence across files, so a held-out region of one strain is not novel DNA;
hold out a genome without a sibling (e.g. Streptococcus pyogenes) for a generalisation test.
The CDS source of pretraining reads in-frame windows of the genes (``read_cds``) that lie wholly in the
training regions (``cds_inside``); its intergenic DNA is the training regions with every CDS cut out.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
from Bio.GenBank.Scanner import GenBankScanner

from biotalk.data.errors import InputError
from biotalk.data.fragments import Fragment, sample_fragments, sample_read_lengths
from biotalk.data.genbank import GENBANK_GLOB
from biotalk.io import open_text

MIN_RECORD_NT = 300  # shorter records cannot hold the longest reads; skipped and reported


@dataclass(frozen=True)
class Region:
    source: str  # genome file name
    record: str  # record id (chromosome, plasmid, contig)
    start: int  # 0-based, on the forward strand of the record
    end: int
    sequence: str  # record[start:end], upper-case

    def __len__(self) -> int:
        return self.end - self.start


def read_genomes(genbank_dir: str | Path) -> tuple[list[Region], list[str]]:
    """Every record of every GenBank file as one whole-record Region, plus skipped-record reasons."""
    genbank_dir = Path(genbank_dir)
    files = sorted(genbank_dir.glob(GENBANK_GLOB))
    if not files:
        raise InputError(f"{genbank_dir}: no GenBank files ({GENBANK_GLOB})")
    regions, skipped = [], []
    for path in files:
        with open_text(path) as handle:
            for rec in GenBankScanner().parse_records(handle, do_features=False):
                try:
                    seq = str(rec.seq).upper()
                except Exception as err:  # undefined sequence (CON / WGS master records)
                    skipped.append(f"{path.name}:{rec.id}: no sequence ({type(err).__name__})")
                    continue
                if len(seq) < MIN_RECORD_NT:
                    skipped.append(f"{path.name}:{rec.id}: {len(seq)} nt < {MIN_RECORD_NT}")
                    continue
                regions.append(Region(path.name, rec.id, 0, len(seq), seq))
    if not regions:
        raise InputError(f"{genbank_dir}: no record with a sequence")
    return regions, skipped


def split_regions(
    genomes: list[Region], heldout_genomes: list[str] = (), heldout_fraction: float = 0.0
) -> tuple[list[Region], list[Region]]:
    """(train, heldout) regions: named genomes whole, plus the tail ``heldout_fraction`` of the others."""
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must lie in [0, 1), got {heldout_fraction}")
    sources = sorted({g.source for g in genomes})
    for key in heldout_genomes:
        if not any(key in s for s in sources):
            raise InputError(f"held-out genome {key!r} matches no file among {sources}")
    train, heldout = [], []
    for g in genomes:
        if any(key in g.source for key in heldout_genomes):
            heldout.append(g)
            continue
        cut = g.end - int(round(len(g) * heldout_fraction))
        if cut < g.end:
            heldout.append(Region(g.source, g.record, cut, g.end, g.sequence[cut - g.start :]))
        train.append(Region(g.source, g.record, g.start, cut, g.sequence[: cut - g.start]))
    if not train or not heldout:
        raise InputError("genome split leaves no training or no held-out sequence; check heldout_* settings")
    return train, heldout


def draw_fragments(
    regions: list[Region], n: int, rng: np.random.Generator, rc_prob: float = 0.5
) -> list[tuple[Region, Fragment]]:
    """``n`` read-length fragments, regions chosen in proportion to their length (uniform per base).

    Each fragment's ``start`` is on its record's coordinates (region start added)."""
    lengths = np.array([len(r) for r in regions], dtype=np.float64)
    picks = rng.choice(len(regions), size=n, p=lengths / lengths.sum())
    out = []
    for i in picks.tolist():
        frag = sample_fragments(regions[i].sequence, 1, rng, rc_prob)[0]
        out.append((regions[i], replace(frag, start=frag.start + regions[i].start)))
    return out


def cut_out(regions: list[Region], loci, min_nt: int = MIN_RECORD_NT) -> tuple[list[Region], int]:
    """``regions`` with every locus span (``source``, ``record``, ``start``, ``end``) removed, and the
    number of bases removed; pieces shorter than ``min_nt`` are dropped too (counted in the bases)."""
    spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for locus in loci:
        spans.setdefault((locus.source, locus.record), []).append((locus.start, locus.end))
    out, before = [], sum(map(len, regions))
    for region in regions:
        cursor = region.start
        for start, end in sorted(spans.get((region.source, region.record), [])) + [(region.end, region.end)]:
            start, end = min(max(start, region.start), region.end), min(end, region.end)
            if start - cursor >= min_nt:
                offset = cursor - region.start
                out.append(Region(region.source, region.record, cursor, start, region.sequence[offset : start - region.start]))
            cursor = max(cursor, end)
    return out, before - sum(map(len, out))


@dataclass(frozen=True)
class Cds:
    source: str  # genome file name
    record: str  # record id
    start: int  # 0-based span on the forward strand of the record
    end: int
    strand: int  # +1 or -1
    table: int  # NCBI genetic code (/transl_table; 11 when absent)
    sequence: str  # sense strand, first base = first base of the start codon

    def __len__(self) -> int:
        return self.end - self.start


class Span(NamedTuple):
    source: str
    record: str
    start: int
    end: int


def read_cds(genbank_dir: str | Path) -> tuple[list[Cds], list[Span]]:
    """(every CDS that can be read in frame: one span, whole codons, not ``/pseudo``; the span of every part
    of every CDS, those included: the coding DNA that intergenic DNA excludes)."""
    import warnings

    from Bio import BiopythonWarning
    from Bio.SeqFeature import SimpleLocation

    readable, coding = [], []
    for path in sorted(Path(genbank_dir).glob(GENBANK_GLOB)):
        with open_text(path) as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore", BiopythonWarning)
            for rec in GenBankScanner().parse_records(handle, do_features=True):
                for f in (f for f in rec.features if f.type == "CDS"):
                    loc = f.location
                    coding += [Span(path.name, rec.id, int(part.start), int(part.end)) for part in loc.parts]
                    if not isinstance(loc, SimpleLocation) or len(loc) % 3 or "pseudo" in f.qualifiers:
                        continue
                    try:
                        table = int(f.qualifiers.get("transl_table", ["11"])[0])
                    except ValueError:
                        raise InputError(f"{path.name}:{rec.id}: CDS at {loc}: bad /transl_table") from None
                    sense = str(f.extract(rec.seq)).upper()
                    readable.append(Cds(path.name, rec.id, int(loc.start), int(loc.end), loc.strand or 1, table, sense))
    return readable, coding


def cds_inside(cds: list[Cds], regions: list[Region]) -> list[Cds]:
    """The CDS that lie wholly inside one of ``regions`` (training DNA after the held-out cut): a gene that
    is held out, or overlaps a held-out span, is never read by the CDS source."""
    spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for r in regions:
        spans.setdefault((r.source, r.record), []).append((r.start, r.end))
    for v in spans.values():
        v.sort()
    out = []
    for c in cds:
        ranges = spans.get((c.source, c.record), [])
        i = bisect.bisect_right(ranges, (c.start, float("inf"))) - 1
        if i >= 0 and ranges[i][0] <= c.start and c.end <= ranges[i][1]:
            out.append(c)
    return out


def draw_cds_windows(cds: list[Cds], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` read-length windows of CDS, sense strand, each starting on a codon boundary of its gene;
    genes chosen in proportion to their length (uniform per codon)."""
    lengths = np.array([len(c) for c in cds], dtype=np.float64)
    picks = rng.choice(len(cds), size=n, p=lengths / lengths.sum())
    reads = sample_read_lengths(n, rng)
    out = []
    for i, read in zip(picks.tolist(), reads.tolist(), strict=True):
        seq = cds[i].sequence
        read = min(read, len(seq))
        start = 3 * int(rng.integers(0, (len(seq) - read) // 3 + 1))
        out.append(seq[start : start + read])
    return out
