"""``describe_records`` renders a template once per EC and annotation shape and puts each record's values in
with polars (``biotalk.data.describe._texts``): its texts must be those of rendering every record whole, on
the real mini records and on annotations made to break the stand-ins (stops, brackets, spaces, ECs at the
edges, "qq" inside)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from biotalk.data.describe import _ec_fields, _slots, describe_records, render, template_choice
from biotalk.data.enzyme import EnzymeDB, load_enzyme
from biotalk.data.genbank import read_genbank_dir
from biotalk.ec import normalize_ec

RAW = Path(__file__).resolve().parents[1] / "data" / "raw"
ENZ = RAW / "expasy_enzyme"
# ECs with a name, transferred to several, absent from ENZYME, and one whose name is a common product
ECS = ["1.1.1.1", "2.7.7.7", "1.1.1.5", "7.1.2.2", "3.1.3.2", "2.7.1.1"]


@cache
def enzyme_db() -> EnzymeDB:
    return load_enzyme(ENZ / "enzyme_2018-09-12.dat.gz", [ENZ / "enzclass_2018-09-12.txt.gz", ENZ / "enzclass_2021-02-10.txt"])


def _whole(df: pl.DataFrame, db: EnzymeDB, seed: int) -> pl.DataFrame:
    """Every record rendered on its own (what ``describe_records`` did row by row)."""
    text = [c for c in ("Product", "Function", "Note") if c in df.columns]
    rows = []
    for record_id, ec, *raw in df.select("RecordId", "EC", *text).iter_rows():
        annotation = dict(zip(text, raw, strict=True))
        args = [annotation.get(c) or "" for c in ("Product", "Function", "Note")]
        template_id = template_choice(seed, record_id)
        rows.append([render(template_id, _slots(_ec_fields(db, normalize_ec(ec), m), *args, m), m) for m in (False, True)])
    return pl.DataFrame(rows, schema=["Description", "DescriptionMasked"], orient="row")


def test_mini_records_as_rendered_whole() -> None:
    db = enzyme_db()
    records = read_genbank_dir(RAW)[0]
    described = describe_records(records, db, seed=3)
    assert described.select("Description", "DescriptionMasked").equals(_whole(records, db, seed=3))
    assert described["TemplateId"].n_unique() == 10


_EDGE = st.sampled_from([" ", ".", ",", ";", ":", "(", ")", "[", "]", "!", "?", "-", "qq", "Qq", "EC 1.1.1.1", "1.2",
                         "\u00a0", "{", "}", "'", "/", "  ", "a", "B", "kinase", "(NADP+)", "EC", "3.-.-.-", "qqnoteqq",
                         "Qqproductqq"])  # fmt: skip
_VALUE = st.lists(_EDGE, max_size=5).map("".join)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(ECS), _VALUE, _VALUE, _VALUE), min_size=1, max_size=30), st.integers(0, 99))
def test_adversarial_annotation_as_rendered_whole(rows: list[tuple[str, ...]], seed: int) -> None:
    db = enzyme_db()
    df = pl.DataFrame(rows, schema=["EC", "Product", "Function", "Note"], orient="row").with_row_index("RecordId")
    df = df.with_columns(pl.col("RecordId").cast(pl.Utf8))
    described = describe_records(df, db, seed)
    assert described.select("Description", "DescriptionMasked").equals(_whole(df, db, seed))
