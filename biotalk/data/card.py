"""The dataset card of a build (``OUT/README.md``): what the files hold, Table 1, the leakage guarantees,
what was removed or rejected and why, and the provenance and licences of every input file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from biotalk.cache import file_digest
from biotalk.data.genbank import Reject, reject_category
from biotalk.data.schema import portable_path
from biotalk.reports import table1

if TYPE_CHECKING:
    from biotalk.data.build import BuildConfig
    from biotalk.data.split import SplitResult

STRICT_RULES = """**Split rules: strict** (`split_rules: strict`, `test_identity: {identity}`). Per EC, the split
units are {level} clusters (a coarser level when it has at least 3), never single sequences: no Test-I,
Test-II or valid2 record shares a {level} cluster with any Train or Valid record of any benchmark, nor is it
at least {pct} % identical over {cov} coverage of both proteins to one by an MMseqs2 search (`easy-search
-s 7.5`, done by the builder besides the clusters, which do not bound identity between clusters). The
non-curated members of a held-out cluster left Benchmark I (`removed.tsv`). Valid is disjoint from Train at
{level} too. {untested} ECs with Benchmark-III training records are not in Test-I: all their curated genes
lie in one {level} cluster, so none can be held out (the paper's rule would test them against a near copy).
`Test/valid2.parquet` ({valid2}) is zero-shot validation: Test-II ECs (in no training set) moved out
of Test-II in whole groups sharing no cluster, gene or search pair with a test record; choose zero-shot
settings on it, never on Test-II."""

PAPER_RULES = """**Split rules: paper** (`split_rules: paper`): the BioTalk paper's fallback levels. An EC with fewer
than 3 UniRef50 units falls back to UniRef90, UniRef100 and then single sequences, so many Test-I records
share a UniRef90 or UniRef50 cluster with training records (the same gene from another strain): Test-I
then mostly measures retrieval of near-identical genes. Use `split_rules: strict` for honest evaluation."""


def _valid2_line(stats: dict) -> str:
    v2 = stats["Test"].get("valid2")
    return f"\nvalid2 (zero-shot validation): {v2['records']:,} records, {v2['classes']:,} classes.\n" if v2 else ""


def _paper_table(paper_stats: dict | None) -> str:
    if paper_stats is None:
        return ""
    return f"""
The same records split by the paper's rules (`split_rules: paper`; not written here, for comparison):

{table1(paper_stats)}
"""


def _count_lines(counts: dict[str, int]) -> str:
    return "\n".join(f"| {k} | {v:,} |" for k, v in sorted(counts.items())) or "| (none) | 0 |"


def split_rules_text(cfg: BuildConfig, stats: dict, untested: int) -> str:
    """The card's paragraph naming the split rules of the build and what they guarantee."""
    if cfg.split_rules == "paper":
        return PAPER_RULES
    from biotalk.data.cluster import LEVEL_COLUMNS

    v2 = stats["Test"].get("valid2")
    valid2 = f"{v2['records']:,} records, {v2['classes']:,} ECs" if v2 else "not built: valid2_share 0"
    return STRICT_RULES.format(identity=cfg.test_identity, level=LEVEL_COLUMNS[float(cfg.test_identity)],
                               pct=round(100 * float(cfg.test_identity)), cov=cfg.coverage, untested=untested,
                               valid2=valid2)  # fmt: skip


MMSEQS_CLUSTERS = """**The UniRef columns are computed, not UniProt's.** No UniProt ID mapping is available here, so the
proteins were clustered with MMseqs2 (`easy-cluster`, greedy by length, coverage {coverage} of both
sequences, identities {identities}), hierarchically like UniRef: the 100 % representatives were
clustered at 90 %, those at 50 %, so each 90 cluster lies in one 50 cluster. IDs name the
representative: `UniRef50_<AC>`."""

UNIPROT_CLUSTERS = """**The UniRef columns are UniProt's** (`idmapping_selected.tab`, columns 8-10). Records come from
UniProtKB entries (Bacteria and Archaea) and their ENA CDS; `AC` is the UniProtKB accession, `EmblCdsId` the
EMBL-CDS accession, `DBtype` `SwissProt` a reviewed entry."""

GENBANK_PROVENANCE = """Full provenance: `SOURCES.md` (copied from the raw data folder). NCBI RefSeq/GenBank records are
public with no NCBI-imposed restrictions (submitters may claim rights in some sequences); one genome
(S. pyogenes M1 GAS) is a RASTtk/PATRIC annotation of a public NCBI sequence. ExPASy ENZYME (2018
release, SIB Swiss Institute of Bioinformatics; current releases CC BY 4.0) supplies EC names,
reactions, cofactors and comments; class names from enzclass.txt (2018, plus 2021 for class 7).
"""

UNIPROT_PROVENANCE = """Sources: UniProtKB (CC BY 4.0), the UniProt ID mapping, ENA coding sequences (see the ENA terms of
use) and ExPASy ENZYME (CC BY 4.0). """


def dataset_card(cfg: BuildConfig, stats: dict, targets: dict[str, int], result: SplitResult,
                 rejects: list[Reject], inputs: list[Path], paper_stats: dict | None = None) -> str:  # fmt: skip
    """The dataset card (OUT/README.md): provenance, licences, Table 1, what was removed and why."""
    removed = result.removed
    removed_counts = {f"{s}: {r}": n for s, r, n in removed.group_by("Scope", "Reason").len().iter_rows()}
    reject_counts: dict[str, int] = {}
    for r in rejects:
        reject_counts[reject_category(r.reason)] = reject_counts.get(reject_category(r.reason), 0) + 1
    files = "\n".join(f"| `{portable_path(p)}` | {p.stat().st_size:,} | `{file_digest(p)}` |" for p in inputs)
    uniprot = cfg.source == "uniprot"
    return f"""# BioTalk benchmark ({"UniProtKB + ENA + ENZYME" if uniprot else "mini, from GenBank genomes"})

DNA sequences of enzyme genes from prokaryotic genomes, each paired with its EC number and a
natural-language description of the enzyme's function, split into the BioTalk benchmarks:
Benchmark I (all records, train/valid), II (I balanced), III (curated SwissProt records only,
train/valid), IV (III balanced), and the shared test sets Test-I (in-distribution, from the curated
records) and Test-II (out-of-distribution: ECs absent from every training set).

Built by `python scripts/build_benchmarks.py` with seed {cfg.seed}; the same inputs and seed give
byte-identical files. Build configuration: `build.json`.

## Table 1 ({cfg.split_rules} split rules)

{table1(stats)}
{_valid2_line(stats)}{_paper_table(paper_stats)}
Balancing targets (records per EC): Benchmark-II {targets["Benchmark-II"]}, Benchmark-IV {targets["Benchmark-IV"]}
(padding copies have `IsDuplicate = true`).

## Files and columns

`Benchmark-{{I,II,III,IV}}/{{Train,Valid}}.parquet`, `Test/{{test1,test2}}.parquet` (and `Test/valid2.parquet`
under strict rules); one row per (CDS, EC).
Published BioTalk columns first: `AC` (UniProtKB accession from the CDS cross-reference, else the
protein ID or locus tag), `EC`, `OC` (Bacteria/Archaea), `UniRef100`, `UniRef90`, `UniRef50`,
`EmblCdsId` (protein ID of the CDS), `Sequence` (gene DNA), `Description`, `DBtype` (`SwissProt` when
the CDS cross-references Swiss-Prot, else `Unreviewed`); then `Protein`, `Organism`,
`DescriptionMasked` (no EC number or EC cross-reference: use it to train and prompt without leaking
the label), `TemplateId`, `SplitLevel` (`UniRef50`, `UniRef90`, `UniRef100`, `record`, or `EC` for an
EC held out whole), `IsDuplicate`, `RecordId` (`EmblCdsId|EC`).

{UNIPROT_CLUSTERS if uniprot else MMSEQS_CLUSTERS.format(coverage=cfg.coverage, identities=cfg.identities)}

## Splits and guarantees

{split_rules_text(cfg, stats, len(result.untested))}

Per EC, clusters are drawn at random under the seed (UniRef50, falling back to UniRef90, UniRef100,
then single sequences when an EC has fewer than 3 units, under paper rules only). ECs found only in curated records and
curated ECs that cannot be split go to Test-II. Guarantees: one DNA sequence sits in one split of a
benchmark; no Test-I/Test-II record, nor a record sharing its split cluster (UniRef100 when the split
fell back to single records; Test-II: its UniRef50 cluster), is in any train or valid set; every Test-I EC is in Benchmark-III Train; no Test-II EC is
in any train or valid set. Rows that broke a guarantee were removed (`removed.tsv`):

| scope: reason | rows |
|---|---|
{_count_lines(removed_counts)}

Identity to training: `identity.parquet` holds, for every Test-I, Test-II and valid2 record and every
benchmark, the highest identity of its protein to that benchmark's training proteins (MMseqs2, 80 % coverage
of both; null = no hit); every metric block reports its bins (<30, 30-50, 50-90, >=90 %, no hit).

Input records rejected while reading (`rejects.tsv`: source, record, reason). One label space: every
label is an active EC of the ENZYME release (a zero-shot candidate); a transferred EC was followed to its
target, and an EC the release does not know (newer than it) was rejected.

| reason | records |
|---|---|
{_count_lines(reject_counts)}

## Provenance and licences

| input file | bytes | sha256 |
|---|---|---|
{files}

{UNIPROT_PROVENANCE if uniprot else GENBANK_PROVENANCE}Descriptions are generated from these fields and the records' own /product, /function and /note.
"""
