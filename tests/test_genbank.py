"""GenBank reading on the 15 real genomes in data/raw, and rejects on corrupted copies of a real one."""

import gzip
import shutil
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from Bio import SeqIO
from Bio.Seq import MutableSeq, Seq
from Bio.SeqFeature import CompoundLocation, SimpleLocation

from biotalk.data.errors import InputError
from biotalk.data.genbank import file_report, read_genbank_dir, reject_category
from biotalk.io import open_text

RAW = Path(__file__).resolve().parents[1] / "data" / "raw"
K12 = "Escherichia_coli_K12_MG1655_NC_000913.3.gbk.gz"
HEPATOPLASMA = "Hepatoplasma_crinochetorum_Av_NZ_CP006932.1.gb.gz"
ARCHAEA = {
    "Methanosarcina_mazei_WWM610_GCF_000970165.1.gbff.gz",
    "Methanococcus_maripaludis_S2_NC_005791.1.gbk.gz",
}


@pytest.fixture(scope="module")
def parsed():
    return read_genbank_dir(RAW)


def test_all_genomes_read_with_expected_counts(parsed):
    df, rejects = parsed
    assert df["SourceFile"].n_unique() == 15
    assert df["RecordId"].is_unique().all()
    assert df["EC"].n_unique() == 1084  # SOURCES.md: distinct full ECs over the 15 genomes
    cds_per_file = dict(df.group_by("SourceFile").agg(pl.col("EmblCdsId").n_unique()).iter_rows())
    assert cds_per_file[K12] == 871  # SOURCES.md: CDS with a full EC
    assert cds_per_file["Chlamydia_trachomatis_L2_GCF_006508185.1.gbff.gz"] == 177
    assert cds_per_file["Streptococcus_pyogenes_M1_GAS_NC_002737_RASTtk.gb.gz"] == 507
    assert all(reject_category(r.reason) == "partial EC" for r in rejects)


def test_every_record_is_complete_and_translates(parsed):
    df, _ = parsed
    for col in ("AC", "EmblCdsId", "EC", "Sequence", "Protein", "Organism", "LocusTag"):
        assert (df[col].str.len_chars() > 0).all(), col
    assert (df["Sequence"].str.len_chars() % 3 == 0).all()
    assert not df["Sequence"].str.contains("[^ACGTN]").any()
    assert (df["Sequence"].str.len_chars() == 3 * df["Protein"].str.len_chars() + 3).all()
    for dna, protein, source in (
        df.select("Sequence", "Protein", "SourceFile").sample(300, seed=0).iter_rows()
    ):
        table = 4 if "plasm" in source else 11  # Mycoplasma, Mycoplasmoides, Hepatoplasma
        if "U" not in protein:
            assert str(Seq(dna).translate(table=table, cds=True)) == protein


def test_partial_ec_does_not_cost_the_full_ec(parsed):
    df, rejects = parsed
    partial_ids = {r.record for r in rejects if r.source == K12 and r.reason.startswith("partial EC")}
    both = partial_ids & set(df.filter(pl.col("SourceFile") == K12)["EmblCdsId"])
    assert both  # CDS with a full and a partial EC keep their full EC


def test_complement_feature_is_reverse_complemented(parsed):
    df, _ = parsed
    record = SeqIO.read(open_text(RAW / "genbank" / K12), "genbank")
    ids = set(df["EmblCdsId"])
    feature = next(
        f for f in record.features
        if f.type == "CDS" and f.location.strand == -1 and f.qualifiers.get("protein_id", [""])[0] in ids
    )  # fmt: skip
    expected = str(record.seq[feature.location.start : feature.location.end].reverse_complement())
    row = df.filter(pl.col("EmblCdsId") == feature.qualifiers["protein_id"][0]).row(0, named=True)
    assert expected != str(record.seq[feature.location.start : feature.location.end])
    assert row["Sequence"] == expected and row["Protein"] == feature.qualifiers["translation"][0]


def test_transl_table_4_reads_tga_as_tryptophan(parsed):
    df, _ = parsed
    myco = df.filter(pl.col("SourceFile").str.contains("Mycoplasma"))
    hits = 0
    for dna, protein in myco.select("Sequence", "Protein").iter_rows():
        codons = [dna[i : i + 3] for i in range(0, len(dna) - 3, 3)]
        tga = [i for i, c in enumerate(codons) if c == "TGA"]
        assert all(protein[i] == "W" for i in tga)
        hits += len(tga)
    assert hits > 100


def test_selenocysteine_from_transl_except(parsed):
    df, _ = parsed
    mmp = df.filter(pl.col("LocusTag").is_in(["MMP0138", "MMP0511"]))
    assert mmp.height == 2 and all("U" in p for p in mmp["Protein"])
    assert df.filter(pl.col("SourceFile") == K12)["Protein"].str.contains("U").sum() >= 1  # fdhF etc.


def test_dbtype_oc_and_identifiers(parsed):
    df, _ = parsed
    assert set(df.filter(pl.col("DBtype") == "SwissProt")["SourceFile"]) == {K12}
    assert (df.filter(pl.col("SourceFile") == K12)["DBtype"] == "SwissProt").mean() > 0.95
    assert set(df.filter(pl.col("OC") == "Archaea")["SourceFile"]) == ARCHAEA
    assert set(df["OC"]) == {"Bacteria", "Archaea"}
    k12 = df.filter((pl.col("SourceFile") == K12) & (pl.col("DBtype") == "SwissProt"))
    assert not k12["AC"].str.starts_with("NP_").any()  # UniProt accession, not the protein_id
    spy = df.filter(pl.col("SourceFile").str.starts_with("Streptococcus"))
    assert spy["EmblCdsId"].str.starts_with("fig|").all()
    assert spy.filter(pl.col("Product").str.contains("EC 2.7.7.7"))["EC"].str.contains("2.7.7.7").any()
    # RefSeq WP_ proteins are shared across genomes: the CDS id is the locus tag, the WP_ stays in AC
    myco = df.filter(pl.col("SourceFile").str.contains("gallisepticum"))
    assert myco["AC"].str.starts_with("WP_").all() and (myco["EmblCdsId"] == myco["LocusTag"]).all()


def test_file_report_counts(parsed):
    df, rejects = parsed
    report = file_report(df, rejects)
    assert report.height == 15 and report["records"].sum() == df.height
    assert report["partial EC"].sum() == len(rejects)


def _corrupt_copy(tmp_path: Path) -> tuple[Path, dict[str, str], str]:
    """A copy of the Hepatoplasma genome with one defect per chosen CDS (locus -> expected reason),
    and one CDS rewritten as a two-part join of the same bases."""
    record = SeqIO.read(open_text(RAW / "genbank" / HEPATOPLASMA), "genbank")
    seq = MutableSeq(record.seq)
    cds = [
        f for f in record.features
        if f.type == "CDS" and "EC_number" in f.qualifiers and f.location.strand == 1 and "pseudo" not in f.qualifiers
    ]  # fmt: skip
    bad_ec, bad_base, bad_length, bad_stop, pseudo, joined = cds[:6]
    bad_ec.qualifiers["EC_number"] = ["1.2.3"]
    seq[int(bad_base.location.start) + 10] = "R"
    bad_length.location = SimpleLocation(bad_length.location.start, bad_length.location.end - 1, 1)
    start = int(bad_stop.location.start) + 6
    seq[start : start + 3] = "TAA"
    pseudo.qualifiers["pseudo"] = [""]
    lo, hi = int(joined.location.start), int(joined.location.end)
    joined.location = CompoundLocation([SimpleLocation(lo, lo + 100, 1), SimpleLocation(lo + 100, hi, 1)])
    record.seq = Seq(seq)
    folder = tmp_path / "genbank"
    folder.mkdir()
    SeqIO.write(record, folder / "corrupt.gbk", "genbank")
    expected = {
        bad_ec.qualifiers["locus_tag"][0]: "invalid EC",
        bad_base.qualifiers["locus_tag"][0]: "non-ACGTN bases",
        bad_length.qualifiers["locus_tag"][0]: "length not divisible by 3",
        bad_stop.qualifiers["locus_tag"][0]: "internal stop codon",
        pseudo.qualifiers["locus_tag"][0]: "pseudo",
    }
    return folder, expected, joined.qualifiers["locus_tag"][0]


def test_rejects_on_corrupted_copies(parsed, tmp_path):
    folder, expected, joined_locus = _corrupt_copy(tmp_path)
    original = (RAW / "genbank" / HEPATOPLASMA).read_bytes()
    (folder / "truncated.gbk.gz").write_bytes(original[: len(original) // 2])
    (folder / "garbage.gb").write_text("this is not a GenBank file\n")
    text = (folder / "corrupt.gbk").read_text()
    (folder / "broken_record.gbff").write_text(text.split("ORIGIN")[0] + "ORIGIN\n        1 acgt\n//\n")
    df, rejects = read_genbank_dir(tmp_path)
    by_source = {r.source: r for r in rejects if r.source != "corrupt.gbk"}
    assert reject_category(by_source["truncated.gbk.gz"].reason) == "unreadable file"
    assert reject_category(by_source["garbage.gb"].reason) == "unparsable file"
    assert reject_category(by_source["broken_record.gbff"].reason) == "malformed record"
    assert set(df["SourceFile"]) == {"corrupt.gbk"}
    reasons = {r.record: reject_category(r.reason) for r in rejects if r.source == "corrupt.gbk"}
    for locus, reason in expected.items():
        assert reasons[locus] == reason, locus
        assert locus not in set(df["LocusTag"])
    good, _ = parsed
    original_rows = good.filter(pl.col("SourceFile") == HEPATOPLASMA)
    survivors = original_rows.filter(~pl.col("LocusTag").is_in(list(expected)))
    assert df.height == survivors.height  # every good record survives
    joined = df.filter(pl.col("LocusTag") == joined_locus).row(0, named=True)
    same = original_rows.filter(pl.col("LocusTag") == joined_locus).row(0, named=True)
    assert (joined["Sequence"], joined["Protein"]) == (same["Sequence"], same["Protein"])


def test_missing_or_empty_input_raises(tmp_path):
    with pytest.raises(InputError, match="nowhere"):
        read_genbank_dir(tmp_path / "nowhere")
    (tmp_path / "genbank").mkdir()
    with pytest.raises(InputError, match="no GenBank file"):
        read_genbank_dir(tmp_path)
    with pytest.raises(InputError, match="absent.gbk"):
        read_genbank_dir(RAW, files=["absent.gbk"])


def test_named_files_and_row_order(tmp_path):
    names = [HEPATOPLASMA, "Mycoplasma_gallisepticum_F_NC_017503.gbk.gz"]
    a, _ = read_genbank_dir(RAW, files=names)
    b, _ = read_genbank_dir(RAW, files=names[::-1])
    assert a.equals(b) and Counter(a["SourceFile"]).keys() == set(names)
    plain = tmp_path / "genbank"
    plain.mkdir()
    with gzip.open(RAW / "genbank" / HEPATOPLASMA) as src, open(plain / "hepatoplasma.gb", "wb") as dst:
        shutil.copyfileobj(src, dst)
    c, _ = read_genbank_dir(tmp_path)
    assert c.drop("SourceFile").equals(a.filter(pl.col("SourceFile") == HEPATOPLASMA).drop("SourceFile"))
