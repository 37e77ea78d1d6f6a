"""ENZYME 2018 and the 2018/2021 class names, read from data/raw."""

from pathlib import Path

import pytest

from biotalk.data.enzyme import load_enzyme, read_enzclass
from biotalk.data.errors import InputError
from biotalk.ec import ec_order_key

ENZ = Path(__file__).resolve().parents[1] / "data" / "raw" / "expasy_enzyme"
DAT = ENZ / "enzyme_2018-09-12.dat.gz"
CLASS_2018 = ENZ / "enzclass_2018-09-12.txt.gz"
CLASS_2021 = ENZ / "enzclass_2021-02-10.txt"


@pytest.fixture(scope="module")
def db():
    return load_enzyme(DAT, [CLASS_2018, CLASS_2021])


def test_release_counts_match_sources(db):
    entries = db.entries.values()
    assert len(db.entries) == 7471
    assert len(db.active_ecs()) == 6239
    assert sum(e.deleted for e in entries) == 158
    assert sum(bool(e.transferred_to) for e in entries) == 1074
    assert all(e.reactions for e in entries if e.active)  # every active entry has a CA line


def test_entry_fields(db):
    adh = db.entries["1.1.1.1"]
    assert adh.name == "Alcohol dehydrogenase" and adh.alt_names == ("Aldehyde reductase",)
    assert adh.reactions == (
        "A primary alcohol + NAD(+) = an aldehyde + NADH",
        "A secondary alcohol + NAD(+) = a ketone + NADH",
    )
    assert adh.cofactors == ("Zn(2+) or Fe cation",)
    assert adh.comments[1] == "The animal, but not the yeast, enzyme acts also on cyclic secondary alcohols."


def test_continued_lines_are_joined_with_enzyme_rule(db):
    # "... = (S)-3-hydroxy-3-methylglutaryl-CoA +" / "2 NADPH." : a space, not "+2"
    assert db.entries["1.1.1.34"].reactions == (
        "(R)-mevalonate + CoA + 2 NADP(+) = (S)-3-hydroxy-3-methylglutaryl-CoA + 2 NADPH",
    )
    # "... 4,5-" / "dioxygenase." : a line ending in a hyphen continues without a space
    assert db.entries["1.13.11.25"].name.endswith("-9,17-dione 4,5-dioxygenase")
    assert not any("  " in r or "+2 " in r for e in db.entries.values() for r in e.reactions)


def test_transfers_are_followed(db):
    assert db.resolve("1.1.1.68") == "1.5.1.20"
    assert db.entry("1.1.1.68").name == db.entries["1.5.1.20"].name
    assert db.resolve("1.1.1.5") is None  # split into two: ambiguous
    assert db.successors("1.1.1.5") == ("1.1.1.303", "1.1.1.304")
    deleted = next(ec for ec, e in db.entries.items() if e.deleted)
    assert db.resolve(deleted) is None and db.successors(deleted) == ()
    assert db.resolve("7.1.2.2") == "7.1.2.2"  # newer than the 2018 release: taken as current
    assert db.resolve("1.1.1.1") == "1.1.1.1"
    for ec in db.entries:  # every single-target chain ends on an active entry
        target = db.resolve(ec)
        assert target is None or db.entries[target].active


def test_class_names_from_both_releases():
    old, new = read_enzclass(CLASS_2018), read_enzclass(CLASS_2021)
    assert "7" not in old and new["7"] == "Translocases"
    assert old["1.1.1"] == new["1.1.1"] == "With NAD(+) or NADP(+) as acceptor"
    assert all(new[k] == v for k, v in old.items())


def test_class_name_prefix_forms(db):
    assert db.class_name("1") == "Oxidoreductases"
    assert db.class_name("1.1.1") == db.class_name("1.1.1.-") == "With NAD(+) or NADP(+) as acceptor"
    assert db.class_name("1.1.-.-") == "Acting on the CH-OH group of donors"
    assert db.class_name("7.1.2").startswith("Hydron translocation")
    assert db.class_name("9.9.9") is None
    only_2018 = load_enzyme(DAT, CLASS_2018)
    assert only_2018.class_name("7") is None


def test_active_ecs_sorted_numerically(db):
    ecs = db.active_ecs()
    assert ecs == sorted(ecs, key=ec_order_key)
    assert ecs.index("1.1.1.2") < ecs.index("1.1.1.10")


def test_missing_files_raise(tmp_path):
    with pytest.raises(InputError, match="nope.dat"):
        load_enzyme(tmp_path / "nope.dat", CLASS_2021)
    (tmp_path / "empty.txt").write_text("no classes here\n")
    with pytest.raises(InputError, match="empty.txt"):
        load_enzyme(DAT, tmp_path / "empty.txt")
