"""Natural-language descriptions of enzyme function, rendered from the templates (``biotalk.data.templates``)
with fields from ENZYME and a record's own annotation (cleaned by ``biotalk.data.text_clean``).

``Description`` may name the EC (as the paper's texts do); ``DescriptionMasked`` is rendered from
EC-free fields without the EC slots, then passed through ``mask_ec`` once more as a guarantee.
Per-EC fields are computed once per EC, so describing 10^6 records costs one pass over the rows.
A record's template is a stable hash of (seed, RecordId): independent of row order and process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

import polars as pl

from biotalk.data.enzyme import EnzymeDB
from biotalk.data.templates import EC_SLOTS, TEMPLATES
from biotalk.data.text_clean import (
    capitalise,
    clean_annotation,
    decap,
    join_words,
    mask_ec,
    strip_stop,
    tidy,
    with_article,
)
from biotalk.ec import EC_IN_TEXT_RE, normalize_ec
from biotalk.rng import name_key

_SLOT = re.compile(r"\[([^\[\]]*)\]|\{(\w+)\}")
_INNER_SLOT = re.compile(r"\{(\w+)\}")
_TEXT = ("Product", "Function", "Note")
# Stand-ins for a record's cleaned annotation in a rendered template: one lower-case word each, so tidy keeps
# it whole and capitalise makes one that opens a sentence "Qqproductqq" (the value's capitalised form goes there).
_HOLES = {"product": "qqproductqq", "function": "qqfunctionqq", "note": "qqnoteqq"}


class _Missing(Exception):
    """A required slot of a sentence alternative is empty."""


def _name(name: str, clean) -> str:
    return decap(strip_stop(clean(name)))


def _ec_fields(db: EnzymeDB, ec: str, masked: bool) -> dict[str, str]:
    """Slots that depend on the EC only: ENZYME entry (after following transfers) and class names."""
    clean = mask_ec if masked else (lambda t: t)
    entry = db.entry(ec)
    levels = ec.split(".")
    cls, sub, subsub = (db.class_name(".".join(levels[:i])) or "" for i in (1, 2, 3))
    lineage = decap(cls)
    if sub and subsub.lower().startswith(sub.lower()):  # "Acting on acid anhydrides; catalyzing ..."
        subsub = subsub[len(sub) :].lstrip(" ;,")
    inner = "; ".join(decap(n) for n in (sub, subsub) if n)
    if lineage and inner:
        lineage = f"{lineage} ({inner})"
    fields = {
        "ec": "" if masked else ec,
        "cls": decap(cls),
        "cls_a": with_article(cls) if cls else "",
        "sub": decap(sub),
        "subsub": decap(subsub),
        "lineage": lineage,
    }
    split = db.successors(ec) if entry is None and ec in db.entries else ()
    if split:  # transferred to several ECs: name them all, the rest is ambiguous
        fields["ec_name"] = join_words([_name(db.entries[t].name, clean) for t in split if t in db.entries], "or")
    if entry is not None:
        comments = [strip_stop(clean(c)) for c in entry.comments]
        comments = [c for c in comments if c]
        fields |= {
            "ec_name": _name(entry.name, clean),
            "alt": join_words([decap(strip_stop(clean(a))) for a in entry.alt_names[:2]], "or"),
            "reaction": decap(strip_stop(clean(entry.reactions[0]))) if entry.reactions else "",
            "reactions": "; ".join(r for r in (decap(strip_stop(clean(r))) for r in entry.reactions) if r),
            "cofactor": join_words([decap(strip_stop(clean(c))) for c in entry.cofactors]),
            "comment": comments[0] if comments else "",
            "comments": ". ".join(comments[:2]),
        }
    return fields


def _same(a: str, b: str) -> bool:
    return re.sub(r"\W+", "", a).lower() == re.sub(r"\W+", "", b).lower()


def _fields(ec_fields: Mapping[str, str], product: str, function: str, note: str, distinct: bool) -> dict[str, str]:
    """All slots, from the EC's and the record's cleaned annotation; ``distinct``: the product is not the EC's name."""
    ec_name = ec_fields.get("ec_name", "")
    return dict(ec_fields) | {
        "name": ec_name or product,
        "product": product if distinct or not ec_name else "",
        "name_if_product": ec_name if distinct else "",
        "product_if_name": product if distinct else "",
        "function": function,
        "note": note,
    }


def _distinct(ec_fields: Mapping[str, str], product: str) -> bool:
    ec_name = ec_fields.get("ec_name", "")
    return bool(product and ec_name and not _same(product, ec_name))


def _slots(ec_fields: Mapping[str, str], product: str, function: str, note: str, masked: bool) -> dict[str, str]:
    product, function, note = clean_annotation(product or "", function or "", note or "", masked)
    return _fields(ec_fields, product, function, note, _distinct(ec_fields, product))


def _fill(sentence: str, fields: Mapping[str, str], masked: bool) -> str:
    def substitute(match: re.Match) -> str:
        optional, slot = match.groups()
        if slot is not None:
            if not fields.get(slot):
                raise _Missing(slot)
            return fields[slot]
        names = _INNER_SLOT.findall(optional)
        if any(not fields.get(n) or (masked and n in EC_SLOTS) for n in names):
            return ""
        return _INNER_SLOT.sub(lambda m: fields[m.group(1)], optional)

    return _SLOT.sub(substitute, sentence)


def _part_slots(part: str | tuple[str, ...]) -> tuple[str, ...]:
    alternatives = (part,) if isinstance(part, str) else part
    return tuple(sorted({name for alt in alternatives for name in _INNER_SLOT.findall(alt)}))


# The slots each sentence of each template reads: a sentence is a function of these values only.
_PART_SLOTS = tuple(tuple(_part_slots(part) for part in template) for template in TEMPLATES)


@lru_cache(maxsize=1 << 18)
def _sentence(template_id: int, part: int, masked: bool, values: tuple[str, ...]) -> str | None:
    """One sentence of a template (None: every alternative misses a slot), from the values of its slots."""
    fields = dict(zip(_PART_SLOTS[template_id][part], values, strict=True))
    alternatives = TEMPLATES[template_id][part]
    for alternative in (alternatives,) if isinstance(alternatives, str) else alternatives:
        try:
            return capitalise(tidy(_fill(alternative, fields, masked)))
        except _Missing:
            continue
    return None


@lru_cache(maxsize=1 << 18)
def _joined(sentences: tuple[str, ...], masked: bool) -> str:
    text = tidy(" ".join(sentences))
    return mask_ec(text) if masked else text


def _sentences(template_id: int, fields: Mapping[str, str], masked: bool) -> tuple[str, ...]:
    """The sentences of a template whose slots are filled, each cached by the values it reads."""
    sentences = (_sentence(template_id, part, masked, tuple(fields.get(s) or "" for s in slots))
                 for part, slots in enumerate(_PART_SLOTS[template_id]))  # fmt: skip
    return tuple(s for s in sentences if s is not None)


def render(template_id: int, fields: Mapping[str, str], masked: bool) -> str:
    """One template filled with ``fields``; sentences whose slots are empty are left out."""
    return _joined(_sentences(template_id, fields, masked), masked)


def describe_ec(ec: str, db: EnzymeDB, template_id: int = 0, masked: bool = True) -> str:
    """A description of an EC from ENZYME and class names only (CLIP zero-shot over all ECs)."""
    return render(template_id, _slots(_ec_fields(db, normalize_ec(ec), masked), "", "", "", masked), masked)


def template_choice(seed: int, record_id: str, n: int = len(TEMPLATES)) -> int:
    """A template index from a stable hash of (seed, RecordId): independent of row order and process."""
    return name_key(f"{seed}\x1f{record_id}") % n


def _fits(value: str, masked: bool) -> bool:
    """Whether ``value`` may be put in place of its stand-in after rendering and give the text the template
    renders with it. It must be left whole by ``tidy`` and have edges that no rule of ``tidy`` or
    ``capitalise`` and no EC match can hold across: neither edge a space, no ``.,;:!?)]`` first and no
    ``.,;:!?([`` last (slots sit between spaces and stops); no stand-in inside and, masked, no EC."""
    if not value:
        return True
    first, last = value[0], value[-1]
    edges = not first.isspace() and first not in ".,;:!?)]" and not last.isspace() and last not in ".,;:!?(["
    return edges and "qq" not in value.lower() and tidy(value) == value and not (masked and EC_IN_TEXT_RE.search(value))


def _texts(distinct: pl.DataFrame, db: EnzymeDB, masked: bool, per_ec: dict[tuple[str, bool], dict[str, str]]) -> pl.Series:
    """The text of each distinct (``TemplateId, EC``, annotation) row. A template is rendered once per EC and
    shape of the annotation (which values are empty, whether the product is the EC's name) with stand-ins,
    which polars then replaces with each row's values; a row whose values do not ``_fits`` is rendered whole."""
    for ec in distinct["EC"].unique().to_list():
        if (ec, masked) not in per_ec:
            per_ec[ec, masked] = _ec_fields(db, normalize_ec(ec), masked)
    notes = []
    for raw in distinct.select(_TEXT).unique().iter_rows():
        values = clean_annotation(*raw, masked)
        notes.append((*raw, *values, *(capitalise(v) for v in values), all(_fits(v, masked) for v in values)))
    value_cols = [f"_{h}" for h in _HOLES] + [f"_cap_{h}" for h in _HOLES]
    table = distinct.with_row_index("_row").join(
        pl.DataFrame(notes, schema=[*_TEXT, *value_cols, "_fits"], orient="row"), on=list(_TEXT), nulls_equal=True
    )
    pairs = table.select("EC", "_product").unique()
    same = [_distinct(per_ec[ec, masked], product) for ec, product in pairs.iter_rows()]
    table = table.join(pairs.with_columns(pl.Series("_distinct", same, dtype=pl.Boolean)), on=["EC", "_product"], nulls_equal=True)
    shape = ["TemplateId", "EC", "_distinct", *((pl.col(f"_{h}") != "").alias(f"_has_{h}") for h in _HOLES)]
    shapes = table.select(*shape).unique()
    rendered = []
    for template_id, ec, distinct_name, *filled in shapes.iter_rows():
        holes = [hole if f else "" for hole, f in zip(_HOLES.values(), filled, strict=True)]
        text = _joined(_sentences(template_id, _fields(per_ec[ec, masked], *holes, distinct_name), masked), False)
        rendered.append(None if masked and EC_IN_TEXT_RE.search(text) else text)
    shapes = shapes.with_columns(pl.Series("_text", rendered, dtype=pl.Utf8))
    table = table.with_columns(*shape).join(shapes, on=shapes.columns[:-1], nulls_equal=True).sort("_row")
    text = pl.col("_text")
    for name, hole in _HOLES.items():
        text = text.str.replace_all(hole.capitalize(), pl.col(f"_cap_{name}"), literal=True)
        text = text.str.replace_all(hole, pl.col(f"_{name}"), literal=True)
    texts = table.with_columns(text.alias("_filled")).select(pl.when("_fits").then("_filled")).to_series()
    whole = table.select("_row", "TemplateId", "EC", *_TEXT).filter(texts.is_null())
    fills = {i: render(t, _slots(per_ec[ec, masked], *raw, masked), masked) for i, t, ec, *raw in whole.iter_rows()}
    return texts.scatter(list(fills), list(fills.values())) if fills else texts


def describe_records(df: pl.DataFrame, db: EnzymeDB, seed: int,
                     templates: Sequence[int] | None = None) -> pl.DataFrame:  # fmt: skip
    """``df`` plus ``Description``, ``DescriptionMasked`` and ``TemplateId`` (one template per record).

    ``templates`` restricts the choice to these template ids (default: all 10). Uses the optional
    ``Product``, ``Function`` and ``Note`` columns when present. Each distinct (template, EC,
    annotation) is rendered once and joined back to its records.
    """
    choices = list(range(len(TEMPLATES))) if templates is None else list(templates)
    if not choices or any(not 0 <= t < len(TEMPLATES) for t in choices):
        raise ValueError(f"templates must be ids in 0..{len(TEMPLATES) - 1}, got {templates}")
    ids = [choices[template_choice(seed, record_id, len(choices))] for record_id in df["RecordId"].to_list()]
    annotation = [pl.col(c).fill_null("") if c in df.columns else pl.lit("", pl.Utf8).alias(c) for c in _TEXT]
    keys = df.select(pl.Series("TemplateId", ids, dtype=pl.Int32), "EC", *annotation)
    distinct = keys.unique(maintain_order=True)
    per_ec: dict[tuple[str, bool], dict[str, str]] = {}
    distinct = distinct.with_columns(
        _texts(distinct, db, False, per_ec).alias("Description"), _texts(distinct, db, True, per_ec).alias("DescriptionMasked")
    )
    found = keys.join(distinct, on=keys.columns, how="left", maintain_order="left", nulls_equal=True)
    return df.with_columns(found["Description"], found["DescriptionMasked"], keys["TemplateId"])
