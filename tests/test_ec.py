from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from biotalk.ec import (
    EC_IN_TEXT_RE,
    InvalidEC,
    LabelMap,
    ec_at_level,
    ec_order_key,
    ec_prefixes,
    full_ecs,
    is_full_ec,
    normalize_ec,
    parse_ec,
    split_ec_field,
)


@pytest.mark.parametrize(
    "text, expected, prefixes",
    [
        ("1.2.3.4", "1.2.3.4", ("1", "1.2", "1.2.3", "1.2.3.4")),
        ("1.2.-.-", "1.2.-.-", ("1", "1.2")),
        ("3.5.1.n3", "3.5.1.n3", ("3", "3.5", "3.5.1", "3.5.1.n3")),
        ("EC 1.1.1.1", "1.1.1.1", ("1", "1.1", "1.1.1", "1.1.1.1")),
        (" 2.7.7.7 ", "2.7.7.7", ("2", "2.7", "2.7.7", "2.7.7.7")),
        ("7.-.-.-", "7.-.-.-", ("7",)),
        ("01.02.3.4", "1.2.3.4", ("1", "1.2", "1.2.3", "1.2.3.4")),
    ],
)
def test_parse_valid(text, expected, prefixes):
    ec = parse_ec(text)
    assert str(ec) == expected
    assert ec.prefixes() == prefixes
    assert ec_prefixes(text) == prefixes


@pytest.mark.parametrize("text", ["1.2.3", "1.2.3.4a", "-", "", "1.-.3.4", "1.2.-.n3", "a.b.c.d", "1.2.3.4.5", "-.-.-.-"])
def test_parse_rejects_garbage(text):
    with pytest.raises(InvalidEC):
        parse_ec(text)


def test_missing_prediction_is_empty():
    assert ec_prefixes(None) == ()
    assert ec_prefixes("  ") == ()


def test_full_and_level_helpers():
    assert is_full_ec("1.2.3.4") and is_full_ec("3.5.1.n3")
    assert not is_full_ec("1.2.-.-") and not is_full_ec("junk")
    assert ec_at_level("1.2.3.4", 2) == "1.2.-.-"
    assert normalize_ec(" EC:1.1.1.1") == "1.1.1.1"
    assert parse_ec("3.5.1.n3").is_preliminary


def test_partial_next_to_full_keeps_the_full_one():
    kept, rejected = full_ecs(split_ec_field(" 1.1.1.1; 2.3.1.-, junk 1.1.1.1"))
    assert kept == ["1.1.1.1"]
    assert [r[0] for r in rejected] == ["2.3.1.-", "junk"]


def test_ec_in_text_masking_pattern():
    text = "Alcohol dehydrogenase (EC 1.1.1.1); cf. EC 1.1.1.2 and 3.5.1.n3; version 1.2.3; x 1.2.3.4.5"
    assert EC_IN_TEXT_RE.findall(text) == ["EC 1.1.1.1", "EC 1.1.1.2", "3.5.1.n3"]


@given(st.lists(st.integers(0, 999), min_size=4, max_size=4), st.integers(1, 4))
def test_roundtrip_and_prefix_property(nums, depth):
    text = ".".join(str(n) for n in nums[:depth]) + ".-" * (4 - depth)
    ec = parse_ec(text)
    assert str(ec) == text
    assert parse_ec(str(ec)) == ec
    prefixes = ec.prefixes()
    assert len(prefixes) == depth
    assert all(b.startswith(a + ".") for a, b in pairwise(prefixes))


def test_one_ec_order_is_numeric_at_every_level_and_puts_preliminary_serials_after_numbers():
    ecs = ["3.5.1.n10", "1.10.1.1", "3.5.1.2", "1.2.3.10", "3.5.1.n3", "1.2.3.4", "1.2.-.-", "3.5.1.10"]
    assert sorted(ecs, key=ec_order_key) == [
        "1.2.-.-", "1.2.3.4", "1.2.3.10", "1.10.1.1", "3.5.1.2", "3.5.1.10", "3.5.1.n3", "3.5.1.n10"]
    assert ec_order_key(" EC 01.2.3.4") == ec_order_key("1.2.3.4")


def test_label_map_orders_normalises_and_encodes_unseen_as_minus_one():
    train = ["3.5.1.n10", "1.10.1.1", " 1.2.3.10", "EC 1.2.3.4", "1.2.3.4", "3.5.1.n3", "2.7.7.7"]
    labels = LabelMap.from_ecs(train)
    assert labels.labels == ("1.2.3.4", "1.2.3.10", "1.10.1.1", "2.7.7.7", "3.5.1.n3", "3.5.1.n10")
    assert list(labels.labels) == sorted(labels.labels, key=ec_order_key) and len(labels) == 6
    ids = labels.encode(["2.7.7.7", "1.2.3.04", "3.1.1.1", "3.5.1.n3"])
    assert ids.dtype == np.int64 and ids.tolist() == [3, 0, -1, 4]
    assert labels.decode(labels.encode(train)) == [normalize_ec(ec) for ec in train]  # round trip
    assert labels.id2label == dict(enumerate(labels.labels))
    assert labels.label2id == {ec: i for i, ec in enumerate(labels.labels)}
    assert LabelMap(tuple(labels.id2label[i] for i in range(len(labels)))) == labels  # rebuilt from a saved id2label
    with pytest.raises(IndexError, match="-1"):
        labels.decode([-1])
    with pytest.raises(InvalidEC):
        LabelMap.from_ecs(["1.2.3"])


def test_split_ec_field_labels_and_separators():
    assert split_ec_field("EC 1.1.1.1 | EC:2.7.7.7.") == ["1.1.1.1", "2.7.7.7"]
    assert split_ec_field("1.2.3.4/2.7.-.-") == ["1.2.3.4", "2.7.-.-"]
