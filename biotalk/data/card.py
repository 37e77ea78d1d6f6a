"""The dataset card of a build (``OUT/README.md``): what the files hold, Table 1, the leakage guarantees,
what was removed or rejected and why, and the provenance and licences of every input file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from biotalk.cache import file_digest
from biotalk.data.genbank import Reject, reject_category
from biotalk.reports import table1

if TYPE_CHECKING:
    from biotalk.data.build import BuildConfig


def _count_lines(counts: dict[str, int]) -> str:
    return "\n".join(f"| {k} | {v:,} |" for k, v in sorted(counts.items())) or "| (none) | 0 |"


def dataset_card(cfg: BuildConfig, stats: dict, targets: dict[str, int], removed: pl.DataFrame,
                 rejects: list[Reject], inputs: list[Path]) -> str:  # fmt: skip
    """The dataset card (OUT/README.md): provenance, licences, Table 1, what was removed and why."""
    removed_counts = {f"{s}: {r}": n for s, r, n in removed.group_by("Scope", "Reason").len().iter_rows()}
    reject_counts: dict[str, int] = {}
    for r in rejects:
        reject_counts[reject_category(r.reason)] = reject_counts.get(reject_category(r.reason), 0) + 1
    files = "\n".join(f"| `{p.relative_to(cfg.raw_dir)}` | {p.stat().st_size:,} | `{file_digest(p)}` |" for p in inputs)
    return f"""# BioTalk mini benchmark

DNA sequences of enzyme genes from prokaryotic genomes, each paired with its EC number and a
natural-language description of the enzyme's function, split into the BioTalk benchmarks:
Benchmark I (all records, train/valid), II (I balanced), III (curated SwissProt records only,
train/valid), IV (III balanced), and the shared test sets Test-I (in-distribution, from the curated
records) and Test-II (out-of-distribution: ECs absent from every training set).

Built by `python scripts/build_benchmarks.py` with seed {cfg.seed}; the same inputs and seed give
byte-identical files. Build configuration: `build.json`.

## Table 1

{table1(stats)}

Balancing targets (records per EC): Benchmark-II {targets["Benchmark-II"]}, Benchmark-IV {targets["Benchmark-IV"]}
(padding copies have `IsDuplicate = true`).

## Files and columns

`Benchmark-{{I,II,III,IV}}/{{Train,Valid}}.parquet`, `Test/{{test1,test2}}.parquet`; one row per (CDS, EC).
Published BioTalk columns first: `AC` (UniProtKB accession from the CDS cross-reference, else the
protein ID or locus tag), `EC`, `OC` (Bacteria/Archaea), `UniRef100`, `UniRef90`, `UniRef50`,
`EmblCdsId` (protein ID of the CDS), `Sequence` (gene DNA), `Description`, `DBtype` (`SwissProt` when
the CDS cross-references Swiss-Prot, else `Unreviewed`); then `Protein`, `Organism`,
`DescriptionMasked` (no EC number or EC cross-reference: use it to train and prompt without leaking
the label), `TemplateId`, `SplitLevel` (`UniRef50`, `UniRef90`, `UniRef100`, `record`, or `EC` for an
EC held out whole), `IsDuplicate`, `RecordId` (`EmblCdsId|EC`).

**The UniRef columns are computed, not UniProt's.** No UniProt ID mapping is available here, so the
proteins were clustered with MMseqs2 (`easy-cluster`, greedy by length, coverage {cfg.coverage} of both
sequences, identities {cfg.identities}), hierarchically like UniRef: the 100 % representatives were
clustered at 90 %, those at 50 %, so each 90 cluster lies in one 50 cluster. IDs name the
representative: `UniRef50_<AC>`.

## Splits and guarantees

Per EC, clusters are drawn at random under the seed (UniRef50, falling back to UniRef90, UniRef100,
then single sequences when an EC has fewer than 3 units). ECs found only in curated records and
curated ECs that cannot be split go to Test-II. Guarantees: one DNA sequence sits in one split of a
benchmark; no Test-I/Test-II record, nor a record sharing its split cluster (UniRef100 when the split
fell back to single records; Test-II: its UniRef50 cluster), is in any train or valid set; every Test-I EC is in Benchmark-III Train; no Test-II EC is
in any train or valid set. Rows that broke a guarantee were removed (`removed.tsv`):

| scope: reason | rows |
|---|---|
{_count_lines(removed_counts)}

Input records rejected while reading (`rejects.tsv`: source, record, reason):

| reason | records |
|---|---|
{_count_lines(reject_counts)}

## Provenance and licences

| input file | bytes | sha256 |
|---|---|---|
{files}

Full provenance: `SOURCES.md` (copied from the raw data folder). NCBI RefSeq/GenBank records are
public with no NCBI-imposed restrictions (submitters may claim rights in some sequences); one genome
(S. pyogenes M1 GAS) is a RASTtk/PATRIC annotation of a public NCBI sequence. ExPASy ENZYME (2018
release, SIB Swiss Institute of Bioinformatics; current releases CC BY 4.0) supplies EC names,
reactions, cofactors and comments; class names from enzclass.txt (2018, plus 2021 for class 7).
Descriptions are generated from these fields and the records' own /product, /function and /note.
"""
