"""The UniProt/ENA front end on real-format fixtures (tests/fixtures/uniprot, see its README): readers,
idmapping by column number, both entry formats giving the same records, and a whole build checked record
by record (kept or rejected with which reason, EC, DBtype, clusters from idmapping, DNA from ENA); the
bucketed joins and the lazy EC resolution on hand-made inputs with every first-copy rule."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest
from fixtures.data import ROOT

from biotalk.config import load_config
from biotalk.data.buckets import Buckets
from biotalk.data.build import BuildConfig, build_benchmarks, enzyme_inputs, resolve_ecs
from biotalk.data.enzyme import load_enzyme
from biotalk.data.errors import InputError
from biotalk.data.sources import UniProtInputs, read_uniprot
from biotalk.data.staging import ENTRY_SCHEMA, _idmapping_batches, stage_entries
from biotalk.data.uniprot import _chunks, domain, fasta_id, read_cds_fasta, read_flat, read_tsv

FIXTURES = ROOT / "tests" / "fixtures" / "uniprot"
FLAT = ["uniprot_sprot.dat.gz", "uniprot_trembl.dat.gz"]
INPUTS = {"idmapping": "idmapping_selected.tab.gz", "cds_fasta": ["ena_cds.fasta.gz"]}
# Every fixture entry with an EC that yields no record, and why (record: accession, or accession + CDS id).
REJECTED = {
    ("P0AE52", "partial EC: 1.11.1.-"),  # its full EC 1.11.1.7 is kept
    ("P22564", "partial EC: 3.2.2.-"),
    ("P62623", "no EMBL CDS: no EMBL cross-reference"),
    ("O23729", "not Bacteria or Archaea: Eukaryota"),
    ("NP_988249", "not in idmapping: no UniRef clusters"),
    ("P0A9L5 NP_418223.2", "no CDS sequence in ENA FASTA"),  # its other CDS, NP_418223.1, is kept
}
DELETED = ("YP_002406707.1|1.3.99.1", "EC not current in ENZYME: 1.3.99.1 was deleted or split into ()")
# RecordId -> (AC, EC, DBtype, OC) of every record the build keeps (before the split's guarantees).
KEPT = {
    "NP_417808.1|5.2.1.8": ("P0A9K9", "5.2.1.8", "SwissProt", "Bacteria"),
    "NP_418223.1|5.2.1.8": ("P0A9L5", "5.2.1.8", "SwissProt", "Bacteria"),
    "NP_414569.1|5.2.1.8": ("P0AEM0", "5.2.1.8", "SwissProt", "Bacteria"),
    "NP_417806.1|5.2.1.8": ("P45523", "5.2.1.8", "SwissProt", "Bacteria"),
    "NP_414543.1|2.7.2.4": ("P00561", "2.7.2.4", "SwissProt", "Bacteria"),  # multi-EC entry: one row per EC
    "NP_414543.1|1.1.1.3": ("P00561", "1.1.1.3", "SwissProt", "Bacteria"),
    "NP_416975.1|1.11.1.7": ("P0AE52", "1.11.1.7", "SwissProt", "Bacteria"),
    "NP_415584.1|2.3.1.267": ("P0A948", "2.3.1.267", "SwissProt", "Bacteria"),  # 2.3.1.128, transferred
    "YP_002409726.1|5.2.1.8": ("YP_002409726", "5.2.1.8", "Unreviewed", "Bacteria"),
    "NP_987692.1|5.2.1.8": ("NP_987692", "5.2.1.8", "Unreviewed", "Archaea"),
    "NP_988248.1|5.2.1.8": ("NP_988248", "5.2.1.8", "Unreviewed", "Archaea"),
    "WP_014574611.1|5.2.1.8": ("WP_014574611", "5.2.1.8", "Unreviewed", "Bacteria"),
}


def _idmapping() -> pl.DataFrame:
    return pl.concat(_idmapping_batches(FIXTURES / INPUTS["idmapping"], 1 << 20))


def _dna() -> dict[str, str]:
    return dict(read_cds_fasta(FIXTURES / "ena_cds.fasta.gz"))


def test_flat_file_reader() -> None:
    entries = {e.ac: e for path in FLAT for e in read_flat(FIXTURES / path)}
    assert len(entries) == 16
    assert entries["P00561"].ec_items == ("2.7.2.4", "1.1.1.3")  # the ECs of both Includes: parts
    assert entries["P0AE52"].ec_items == ("1.11.1.-", "1.11.1.7")
    assert entries["NP_987692"].ec_items == ("5.2.1.8",)  # evidence tag {ECO:...} dropped
    assert entries["P0A9L5"].cds_ids == ("NP_418223.1", "NP_418223.2")  # the NOT_ANNOTATED_CDS '-' skipped
    assert entries["P62623"].has_embl is False and entries["P62623"].cds_ids == ()
    assert (entries["P0A9K9"].dbtype, entries["NP_987692"].dbtype) == ("SwissProt", "Unreviewed")
    assert [domain(entries[a].lineage) for a in ("P0A9K9", "NP_987692", "O23729")] == ["Bacteria", "Archaea", "Eukaryota"]
    assert entries["O23729"].protein.startswith("MAPAMEEIRQ") and len(entries["O23729"].protein) == 394


def test_tsv_reader_and_lineage_with_ranks() -> None:
    entries = {e.ac: e for e in read_tsv(FIXTURES / "uniprot.tsv.gz")}
    assert domain(entries["O23729"].lineage) == "Eukaryota"  # "cellular organisms (no rank), Eukaryota (domain)"
    assert entries["P00561"].ec_items == ("2.7.2.4", "1.1.1.3") and entries["P00561"].cds_ids is None
    assert entries["P0AE52"].product == "peroxiredoxin, thiol peroxidase, thioredoxin-dependent"


def test_idmapping_read_by_documented_column_numbers() -> None:
    rows = {r["AC"]: r for r in _idmapping().iter_rows(named=True)}
    assert rows["P0A9L5"]["EmblCds"] == "NP_418223.1; NP_418223.2"  # column 18, not 22 (PubMed) as the reference read
    assert rows["YP_002409726"]["UniRef50"] == "UniRef50_P0A9K9"  # an E. coli IAI39 SlyD in K-12's cluster
    assert (rows["P0A9K9"]["UniRef100"], rows["P0A9K9"]["UniRef90"]) == ("UniRef100_P0A9K9", "UniRef90_P0A9K9")


def test_ena_fasta_ids() -> None:
    assert fasta_id("ENA|AAC73113|AAC73113.1 Escherichia coli thrA") == "AAC73113.1"
    assert fasta_id("AAC73113.1 Escherichia coli") == "AAC73113.1"
    assert all(seq == seq.upper() and set(seq) <= set("ACGTN") for seq in _dna().values())


def _read(raw: Path, work: Path, **inputs) -> tuple[pl.DataFrame, list]:
    """``read_uniprot``'s records collected (they are a lazy frame over Parquet in ``work``) and rejects."""
    records, rejects = read_uniprot(raw, UniProtInputs(**inputs), work)
    assert isinstance(records, pl.LazyFrame)
    assert sorted(p.name for p in work.iterdir()) == ["records"]  # staged inputs removed, records on disk
    return records.collect(), rejects


def test_flat_files_and_tsv_export_give_the_same_records(tmp_path: Path) -> None:
    flat, flat_rejects = _read(FIXTURES, tmp_path / "flat", entries=FLAT, batch_rows=3, **INPUTS)
    tsv, tsv_rejects = _read(FIXTURES, tmp_path / "tsv", entries=["uniprot.tsv.gz"], **INPUTS)
    assert flat.drop("SourceFile", "Function", "Product").equals(tsv.drop("SourceFile", "Function", "Product"))
    assert {(r.record, r.reason) for r in flat_rejects} == {(r.record, r.reason) for r in tsv_rejects} == REJECTED
    before_enzyme = set(KEPT) - {"NP_415584.1|2.3.1.267"} | {"NP_415584.1|2.3.1.128", DELETED[0]}  # as written
    assert set(flat["RecordId"]) == before_enzyme
    one, one_rejects = _read(FIXTURES, tmp_path / "one", entries=FLAT, batch_rows=3, buckets=1, **INPUTS)
    assert one.sort("RecordId").equals(flat.sort("RecordId")) and one_rejects == flat_rejects  # same rejects, same order


def test_tsv_export_of_five_columns_translates_the_cds(tmp_path: Path) -> None:
    """The five-column export (no sequence): proteins are the CDS translated with the bacterial code."""
    tsv = pl.read_csv(FIXTURES / "uniprot.tsv.gz", separator="\t", quote_char=None)
    tsv.select("Entry", "Reviewed", "EC number", "Taxonomic lineage", "EMBL").write_csv(tmp_path / "five.tsv", separator="\t")
    for name in ("idmapping_selected.tab.gz", "ena_cds.fasta.gz"):
        (tmp_path / name).symlink_to(FIXTURES / name)
    five, _ = _read(tmp_path, tmp_path / "five", entries=["five.tsv"], **INPUTS)
    flat, _ = _read(FIXTURES, tmp_path / "flat", entries=FLAT, **INPUTS)
    same = five.join(flat, on="RecordId", suffix="_flat")
    assert same.height == flat.height
    code4 = pl.col("Organism_flat").str.starts_with("Mycoplasma")  # genetic code 4: TGA is Trp, not a stop
    assert (same.filter(~code4)["Protein"] == same.filter(~code4)["Protein_flat"]).all()
    assert same.filter(code4)["Protein"].str.len_chars().max() < same.filter(code4)["Protein_flat"].str.len_chars().max()


@pytest.fixture(scope="module")
def uniprot_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture built with configs/data/uniprot.yaml (inputs renamed to the fixture files)."""
    root = tmp_path_factory.mktemp("uniprot")
    raw = root / "raw"
    raw.mkdir()
    for path in FIXTURES.glob("*.gz"):
        (raw / path.name).symlink_to(path)
    (raw / "expasy_enzyme").symlink_to(ROOT / "data" / "raw" / "expasy_enzyme")
    overrides = [f"raw_dir={raw}", f"out={root / 'out'}", f"uniprot.entries=[{','.join(FLAT)}]", "threads=1",
                 "enzyme_dat=expasy_enzyme/enzyme_2018-09-12.dat.gz", "enzclass=[expasy_enzyme/enzclass_2018-09-12.txt.gz]",
                 "target_ii=2", "target_iv=1", "cache_dir=null", "uniprot.batch_rows=4", "uniprot.buckets=3",
                 "uniprot.cds_fasta=[ena_*.fasta.gz]"]  # a glob, as for fetch_sources' ENA batches  # fmt: skip
    return build_benchmarks(load_config(BuildConfig, ROOT / "configs" / "data" / "uniprot.yaml", overrides))


def _splits(out: Path) -> dict[str, pl.DataFrame]:
    return {str(p.relative_to(out).with_suffix("")): pl.read_parquet(p) for p in out.glob("*/*.parquet")}


def test_build_record_by_record(uniprot_build: Path) -> None:
    rejects = pl.read_csv(uniprot_build / "rejects.tsv", separator="\t")
    assert set(rejects.select("record", "reason").iter_rows()) == REJECTED | {DELETED}
    splits = _splits(uniprot_build)
    rows = pl.concat(list(splits.values())).filter(~pl.col("IsDuplicate")).unique("RecordId")
    removed = pl.read_csv(uniprot_build / "removed.tsv", separator="\t")
    assert set(rows["RecordId"]) | set(removed["RecordId"]) == set(KEPT)
    clusters = {r["AC"]: r for r in _idmapping().iter_rows(named=True)}
    dna = _dna()
    for row in rows.iter_rows(named=True):
        assert (row["AC"], row["EC"], row["DBtype"], row["OC"]) == KEPT[row["RecordId"]]
        for level in ("UniRef100", "UniRef90", "UniRef50"):  # UniProt's clusters, not recomputed ones
            assert row[level] == clusters[row["AC"]][level]
        assert row["Sequence"] == dna[row["EmblCdsId"]]
        assert row["EC"] not in row["DescriptionMasked"]


def test_build_split_guarantees(uniprot_build: Path) -> None:
    splits = _splits(uniprot_build)
    tests = pl.concat([df for name, df in splits.items() if name.startswith("Test/")])
    training = pl.concat([df for name, df in splits.items() if not name.startswith("Test/")])
    assert not set(tests["UniRef50"]) & set(training["UniRef50"])  # strict rules: no shared UniRef50 cluster
    assert not set(tests["Sequence"]) & set(training["Sequence"])
    zero_shot = pl.concat([splits["Test/test2"], splits["Test/valid2"]])
    assert not set(zero_shot["EC"]) & set(training["EC"])
    only_reviewed = zero_shot.filter(pl.col("EC").is_in(["1.1.1.3", "2.7.2.4", "1.11.1.7", "2.3.1.267"]))
    assert only_reviewed.height == 4 and set(only_reviewed["SplitLevel"]) == {"EC"}  # held out whole
    assert set(splits["Test/test1"]["EC"]) <= set(splits["Benchmark-III/Train"]["EC"])
    assert set(splits["Benchmark-III/Train"]["DBtype"]) == {"SwissProt"}


def test_missing_input_is_one_line_error(tmp_path: Path) -> None:
    for path in FIXTURES.glob("*.gz"):
        (tmp_path / path.name).symlink_to(path)
    (tmp_path / INPUTS["idmapping"]).unlink()
    with pytest.raises(InputError) as err:
        read_uniprot(tmp_path, UniProtInputs(entries=FLAT, **INPUTS), tmp_path / "work")
    assert str(err.value) == f"UniProt input uniprot.idmapping not found: {tmp_path / INPUTS['idmapping']}"
    cfg = load_config(BuildConfig, ROOT / "configs" / "data" / "uniprot.yaml", [f"raw_dir={tmp_path}", f"out={tmp_path / 'out'}"])
    with pytest.raises(InputError, match=r"^UniProt input uniprot.entries not found: .*uniprot_sprot_bacteria.dat.gz$"):
        build_benchmarks(cfg)  # the config's own file names: checked before any work
    assert not (tmp_path / "out").exists()
    with gzip.open(tmp_path / INPUTS["idmapping"], "wt") as out:
        out.write("P0A9K9\tSLYD_ECOLI\t\n")  # 3 columns, not 22
    with pytest.raises(InputError, match=r"idmapping_selected.tab.gz: not a 22-column") as err:
        read_uniprot(tmp_path, UniProtInputs(entries=FLAT, **INPUTS), tmp_path / "work2")
    assert "\n" not in str(err.value)


def _idmapping_row(ac: str, clusters: tuple[str, str, str], cds: str) -> str:
    columns = [""] * 22
    columns[0], (columns[7], columns[8], columns[9]), columns[17] = ac, clusters, cds
    return "\t".join(columns)


@pytest.mark.parametrize("buckets", [1, 5])
def test_bucketed_joins_keep_every_first_copy_rule(tmp_path: Path, buckets: int) -> None:
    """Hand-made TSV export, idmapping and ENA FASTA with each case the joins decide: a CDS id shared by two
    entries (the later entry's record is a duplicate), two idmapping rows of one accession (the first
    counts), an id given twice in the FASTA (the smaller sequence counts), and each reject reason."""
    clusters = ("UniRef100_X", "UniRef90_X", "UniRef50_X")
    entries = {"A1": ("1.1.1.1; 2.7.2.4", "C1"), "A2": ("1.1.1.1", "C1; C2"), "A3": ("1.1.1.1", "C3"),
               "A4": ("1.1.1.1", ""), "A5": ("1.1.1.1", "C5"), "A6": ("1.1.1.1", "C6"), "A7": ("1.1.1.1", "C7")}  # fmt: skip
    rows = ["Entry\tReviewed\tEC number\tTaxonomic lineage\tEMBL"]
    rows += [f"{ac}\treviewed\t{ec}\tBacteria (domain), Pseudomonadota (phylum)\tX0{i};" for i, (ac, (ec, _)) in enumerate(entries.items())]
    (tmp_path / "entries.tsv").write_text("\n".join(rows) + "\n")
    idmap = [_idmapping_row(ac, clusters, cds) for ac, (_, cds) in entries.items() if ac not in ("A3", "A7")]
    idmap.insert(2, _idmapping_row("A3", ("UniRef100_A3", "UniRef90_A3", ""), "C3"))  # first row of A3 counts
    idmap.append(_idmapping_row("A3", clusters, "C3"))
    with gzip.open(tmp_path / "idmapping_selected.tab.gz", "wt") as out:
        out.write("\n".join(idmap) + "\n")
    dna = [("C1", "ATGAAATAA"), ("C2", "ATGGGCTAA"), ("C3", "ATGTAA"), ("C5", "ATGXAATAA"), ("C6", "ATGCCCTAA"),
           ("C6", "ATGAAATAA"), ("C7", "ATGTAA")]  # fmt: skip
    (tmp_path / "cds.fasta").write_text("".join(f">ENA|{i}|{i} made up\n{seq}\n" for i, seq in dna))
    records, rejects = _read(tmp_path, tmp_path / "work", entries=["entries.tsv"], idmapping="idmapping_selected.tab.gz",
                             cds_fasta=["cds.fasta"], batch_rows=2, buckets=buckets)  # fmt: skip
    assert [(r.record, r.reason) for r in rejects] == [  # in entry order, as one pass over the table lists them
        ("A3", "no UniRef cluster in idmapping"), ("A4", "no EMBL CDS: none in idmapping"),
        ("A7", "not in idmapping: no UniRef clusters"), ("A5 C5", "non-ACGTN bases: X"),
        ("C1|1.1.1.1", "duplicate record id"),
    ]  # fmt: skip
    kept = {r["RecordId"]: (r["AC"], r["Protein"]) for r in records.iter_rows(named=True)}
    assert kept == {"C1|1.1.1.1": ("A1", "MK"), "C1|2.7.2.4": ("A1", "MK"), "C2|1.1.1.1": ("A2", "MG"),
                    "C6|1.1.1.1": ("A6", "MK")}  # fmt: skip
    assert set(records["UniRef50"]) == {"UniRef50_X"}


def test_resolve_ecs_is_lazy_and_keeps_the_first_copy() -> None:
    """Transferred ECs relabelled (2.3.1.128 -> 2.3.1.267 in ENZYME 2018); a relabelled row that repeats a
    (CDS, EC) is a second copy; deleted and unknown ECs are rejects, deleted ones listed first."""
    db = load_enzyme(*enzyme_inputs(BuildConfig(raw_dir=str(ROOT / "data" / "raw"), enzclass=["expasy_enzyme/enzclass_2018-09-12.txt.gz"])))
    rows = [("C1", "2.3.1.267"), ("C2", "7.9.9.9"), ("C1", "2.3.1.128"), ("C2", "1.3.99.1"), ("C3", "2.3.1.128")]
    frame = pl.LazyFrame(rows, schema=["EmblCdsId", "EC"], orient="row").with_columns(
        pl.lit("f.dat").alias("SourceFile"), (pl.col("EmblCdsId") + "|" + pl.col("EC")).alias("RecordId"))
    records, rejects = resolve_ecs(frame, db)
    assert isinstance(records, pl.LazyFrame)
    assert records.collect()["RecordId"].to_list() == ["C1|2.3.1.267", "C3|2.3.1.267"]
    assert [(r.record, r.reason.split(":")[0]) for r in rejects] == [
        ("C2|1.3.99.1", "EC not current in ENZYME"), ("C2|7.9.9.9", "EC unknown to the ENZYME release"),
        ("C1|2.3.1.267", "duplicate (CDS, EC) after following a transferred EC"),
    ]  # fmt: skip


def _staged(paths: list[Path], folder: Path, workers: int, batch: int) -> tuple[list[pl.DataFrame], list]:
    """Each bucket's staged entry rows and the rejects of ``stage_entries``."""
    parts = Buckets(folder, "AC", 3, 4, ENTRY_SCHEMA)
    rejects = stage_entries(paths, parts, workers, batch)
    return [parts.scan(b).collect() for b in range(3)], rejects


def test_parallel_parse_stages_the_same_rows_and_rejects(tmp_path: Path) -> None:
    """Batches of 3 entries parsed by 2 worker processes against one batch parsed here: the same rows (with
    ``Order`` counting across batches) and rejects, in the same order; then the whole read the same."""
    paths = [FIXTURES / p for p in [*FLAT, "uniprot.tsv.gz"]]
    serial, serial_rejects = _staged(paths, tmp_path / "serial", workers=1, batch=1000)
    parallel, parallel_rejects = _staged(paths, tmp_path / "parallel", workers=2, batch=3)
    assert all(a.equals(b) for a, b in zip(serial, parallel, strict=True))
    assert sorted(pl.concat(serial)["Order"]) == list(range(2 * 13))  # 13 rows a format, in file order
    assert parallel_rejects == serial_rejects and len(serial_rejects) == 2 * 4  # partial x2, eukaryote, EMBL
    for i, entries in enumerate((FLAT, ["uniprot.tsv.gz"])):
        one, one_rejects = _read(FIXTURES, tmp_path / f"one{i}", entries=entries, workers=1, **INPUTS)
        two, two_rejects = _read(FIXTURES, tmp_path / f"two{i}", entries=entries, workers=2, **INPUTS)
        assert one.equals(two) and one_rejects == two_rejects


def test_flat_entries_without_ec_are_skipped_unparsed(tmp_path: Path) -> None:
    """An entry without EC in its DE lines is not parsed (a broken one is no reject) and the EC entry after it
    is kept; EC= in a CC line alone does not make an enzyme; a text cut short is still a malformed entry."""
    entry = (FIXTURES / "O23729.dat").read_text()
    no_ec = entry.replace("DE            EC=2.3.1.74;\n", "")
    assert "EC=" in no_ec  # its CATALYTIC ACTIVITY comment still names the EC
    broken = no_ec.replace("Reviewed;", "broken;").replace("O23729;", "Q00001;")  # ID line Biopython rejects
    cut = no_ec.replace("O23729;", "Q00002;").split("SQ   ")[0]  # no sequence, no '//' line
    (tmp_path / "mixed.dat").write_text(broken + entry + no_ec + cut)
    items = list(read_flat(tmp_path / "mixed.dat"))
    assert [type(i).__name__ for i in items] == ["Entry", "Reject"]
    assert (items[0].ac, items[0].ec_items) == ("O23729", ("2.3.1.74",))
    assert items[1].record == "Q00002" and items[1].reason.startswith("malformed entry")
    with_ec = broken.replace("DE   AltName", "DE            EC=2.3.1.74;\nDE   AltName")
    (tmp_path / "broken.dat").write_text(with_ec)
    rejects = list(read_flat(tmp_path / "broken.dat"))  # the same broken entry with an EC: parsed, rejected
    assert [(r.record, r.reason.split(":")[0]) for r in rejects] == [("Q00001", "malformed entry")]


@pytest.mark.parametrize("block", [1, 2, 3, 7, 1 << 22])
def test_flat_entries_are_cut_at_their_end_lines_across_blocks(tmp_path: Path, block: int) -> None:
    """An entry ends at a line that is '//' and blanks, wherever the reader's blocks of text end."""
    (tmp_path / "cut.dat").write_text("ID a\n//\nID b\n//  \n  //\nID c\nxx//\n//\n\nID d\n//")
    expected = ["ID a\n//\n", "ID b\n//  \n", "  //\nID c\nxx//\n//\n", "\nID d\n//"]
    assert list(_chunks(tmp_path / "cut.dat", block)) == expected
    (tmp_path / "short.dat").write_text("ID a\n//\nID b\nSQ   \n")
    assert list(_chunks(tmp_path / "short.dat", block)) == ["ID a\n//\n", "ID b\nSQ   \n"]
