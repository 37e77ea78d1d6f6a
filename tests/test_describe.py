"""Descriptions of the real mini records and of every ENZYME EC: wording hygiene, masking, determinism."""

import re
from pathlib import Path

import polars as pl
import pytest

from biotalk.data.describe import describe_ec, describe_records, template_choice
from biotalk.data.enzyme import load_enzyme
from biotalk.data.genbank import read_genbank_dir
from biotalk.data.templates import TEMPLATES
from biotalk.data.text_clean import mask_ec
from biotalk.ec import EC_IN_TEXT_RE

RAW = Path(__file__).resolve().parents[1] / "data" / "raw"
ENZ = RAW / "expasy_enzyme"
FILES = [
    "Escherichia_coli_K12_MG1655_NC_000913.3.gbk.gz",
    "Streptococcus_pyogenes_M1_GAS_NC_002737_RASTtk.gb.gz",
    "Hepatoplasma_crinochetorum_Av_NZ_CP006932.1.gb.gz",
    "Methanosarcina_mazei_WWM610_GCF_000970165.1.gbff.gz",
    "Chlamydia_trachomatis_L2_GCF_006508185.1.gbff.gz",
]


@pytest.fixture(scope="module")
def db():
    return load_enzyme(
        ENZ / "enzyme_2018-09-12.dat.gz",
        [ENZ / "enzclass_2018-09-12.txt.gz", ENZ / "enzclass_2021-02-10.txt"],
    )


@pytest.fixture(scope="module")
def records():
    return read_genbank_dir(RAW, files=FILES)[0]


@pytest.fixture(scope="module")
def described(records, db):
    return describe_records(records, db, seed=0)


def assert_clean(text: str) -> None:
    # a sentence may lead with "6-phospho-..." or "tRNA", never with a lower-case word
    assert text.endswith((".", "?", "!")) and not re.match(r"[a-z]+\b", text), text
    assert "None" not in text and not re.search(r"\{\w+\}", text), text
    assert "  " not in text and not re.search(r" [.,;:]|\.\.|,\.|;\.|\(\s*\)", text), text


def test_ten_distinct_templates():
    assert len(TEMPLATES) == 10 and len(set(TEMPLATES)) == 10


def test_every_template_renders_cleanly_for_every_record(records, db):
    sample = records.sample(400, seed=1)
    for template_id in range(10):
        out = describe_records(sample, db, seed=0, templates=[template_id])
        assert set(out["TemplateId"]) == {template_id}
        for text, masked in out.select("Description", "DescriptionMasked").iter_rows():
            assert_clean(text)
            assert_clean(masked)
            assert not EC_IN_TEXT_RE.search(masked), masked


def test_every_enzyme_ec_describable(db):
    ecs = db.active_ecs()[::7] + ["7.1.2.2", "7.2.2.10", "1.1.1.5", "1.1.1.68"]
    for ec in ecs:
        for template_id in range(10):
            assert_clean(describe_ec(ec, db, template_id, masked=False))
            masked = describe_ec(ec, db, template_id)
            assert_clean(masked)
            assert not EC_IN_TEXT_RE.search(masked), masked


def test_unknown_ec_uses_2021_class_names_and_product(db):
    text = describe_ec("7.1.2.2", db, template_id=3)
    assert "translocases" in text and "hydrolysis of a nucleoside triphosphate" in text
    one = pl.DataFrame(
        {"RecordId": ["x|7.1.2.2"], "EC": ["7.1.2.2"], "Product": ["F0F1 ATP synthase subunit beta"]}
    )
    out = describe_records(one, db, seed=0, templates=[1])
    assert out["DescriptionMasked"][0] == "This gene encodes F0F1 ATP synthase subunit beta."


def test_description_carries_the_ec_and_masked_does_not(described):
    assert not any(EC_IN_TEXT_RE.search(t) for t in described["DescriptionMasked"])
    with_ec = sum(ec in text for ec, text in described.select("EC", "Description").iter_rows())
    assert with_ec > 0.8 * described.height  # paper-faithful texts mostly name their EC
    spy = described.filter(pl.col("Product").str.contains(r"\(EC "))
    assert spy.height > 100 and not spy["DescriptionMasked"].str.contains(r"\(EC|\(\)").any()


def test_record_annotation_is_used(described):
    k12 = described.filter(pl.col("SourceFile").str.starts_with("Escherichia") & (pl.col("TemplateId") == 1))
    with_function = k12.filter(pl.col("Function") != "")
    assert with_function["Description"].str.contains("Annotated function: ").all()
    assert not with_function["Description"].str.contains(r"\d+(\.\d+)* : ").any()  # MultiFun codes removed
    assert not described["Description"].str.contains("rasttk|Derived by automated").any()


def test_mask_ec_examples():
    assert mask_ec("DNA polymerase III beta subunit (EC 2.7.7.7)") == "DNA polymerase III beta subunit"
    assert mask_ec("Specific for NADPH (cf. EC 1.1.1.382 and EC 1.1.1.383).") == "Specific for NADPH."
    assert mask_ec("Acts on X. Formerly EC 1.1.1.89.") == "Acts on X."
    assert mask_ec("Acts on X, cf. EC 3.5.1.n3. Needs Mg(2+).") == "Needs Mg(2+)."
    assert mask_ec("See EC 2.7.1.-; binds ATP; i.e. the reverse one.") == "binds ATP; i.e. the reverse one."
    assert mask_ec("binds ATP; see EC 2.7.1.- for the homolog") == "binds ATP"
    assert mask_ec("Alcohol dehydrogenase") == "Alcohol dehydrogenase"
    assert mask_ec("EC 1.1.1.1") == ""


def test_template_choice_is_stable_and_order_free(records, db):
    small = records.head(300)
    a = describe_records(small, db, seed=7)
    b = describe_records(small.reverse(), db, seed=7).reverse()
    assert a.equals(b)
    assert describe_records(small, db, seed=7).equals(a)
    c = describe_records(small, db, seed=8)
    assert not a["TemplateId"].equals(c["TemplateId"])
    assert template_choice(7, "NP_414543.1|2.7.2.4") == template_choice(7, "NP_414543.1|2.7.2.4")
    counts = a["TemplateId"].value_counts()["count"]
    assert counts.len() == 10 and counts.min() > 10  # roughly uniform


def test_bad_template_ids_rejected(records, db):
    with pytest.raises(ValueError, match="templates"):
        describe_records(records.head(3), db, seed=0, templates=[10])
