"""Natural-language descriptions of enzyme function, rendered from the templates (``biotalk.data.templates``)
with fields from ENZYME and a record's own annotation (cleaned by ``biotalk.data.text_clean``).

``Description`` may name the EC (as the paper's texts do); ``DescriptionMasked`` is rendered from
EC-free fields without the EC slots, then passed through ``mask_ec`` once more as a guarantee.
Per-EC fields are computed once per EC, so describing 10^6 records costs one pass over the rows.
A record's template is a stable hash of (seed, RecordId): independent of row order and process.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

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
from biotalk.ec import normalize_ec
from biotalk.rng import name_key

_SLOT = re.compile(r"\[([^\[\]]*)\]|\{(\w+)\}")
_INNER_SLOT = re.compile(r"\{(\w+)\}")


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


def _slots(ec_fields: dict[str, str], product: str, function: str, note: str, masked: bool) -> dict[str, str]:
    fields = dict(ec_fields)
    product, function, note = clean_annotation(product or "", function or "", note or "", masked)
    ec_name = fields.get("ec_name", "")
    name = ec_name or product
    distinct = bool(product and ec_name and not _same(product, ec_name))
    fields |= {
        "name": name,
        "product": product if distinct or not ec_name else "",
        "name_if_product": ec_name if distinct else "",
        "product_if_name": product if distinct else "",
        "function": function,
        "note": note,
    }
    return fields


def _fill(sentence: str, fields: dict[str, str], masked: bool) -> str:
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


def render(template_id: int, fields: dict[str, str], masked: bool) -> str:
    """One template filled with ``fields``; sentences whose slots are empty are left out."""
    sentences = []
    for part in TEMPLATES[template_id]:
        for alternative in (part,) if isinstance(part, str) else part:
            try:
                sentences.append(capitalise(tidy(_fill(alternative, fields, masked))))
                break
            except _Missing:
                continue
    text = tidy(" ".join(sentences))
    return mask_ec(text) if masked else text


def describe_ec(ec: str, db: EnzymeDB, template_id: int = 0, masked: bool = True) -> str:
    """A description of an EC from ENZYME and class names only (CLIP zero-shot over all ECs)."""
    return render(template_id, _slots(_ec_fields(db, normalize_ec(ec), masked), "", "", "", masked), masked)


def template_choice(seed: int, record_id: str, n: int = len(TEMPLATES)) -> int:
    """A template index from a stable hash of (seed, RecordId): independent of row order and process."""
    return name_key(f"{seed}\x1f{record_id}") % n


def describe_records(df: pl.DataFrame, db: EnzymeDB, seed: int,
                     templates: Sequence[int] | None = None) -> pl.DataFrame:  # fmt: skip
    """``df`` plus ``Description``, ``DescriptionMasked`` and ``TemplateId`` (one template per record).

    ``templates`` restricts the choice to these template ids (default: all 10). Uses the optional
    ``Product``, ``Function`` and ``Note`` columns when present.
    """
    choices = list(range(len(TEMPLATES))) if templates is None else list(templates)
    if not choices or any(not 0 <= t < len(TEMPLATES) for t in choices):
        raise ValueError(f"templates must be ids in 0..{len(TEMPLATES) - 1}, got {templates}")
    text_cols = [c for c in ("Product", "Function", "Note") if c in df.columns]
    rows = df.select("RecordId", "EC", *text_cols).iter_rows()
    per_ec: dict[tuple[str, bool], dict[str, str]] = {}
    texts_seen: dict[tuple, str] = {}  # records sharing EC, template and annotation share a text
    described, masked_out, ids = [], [], []
    for record_id, ec, *texts in rows:
        annotation = dict(zip(text_cols, texts, strict=True))
        args = tuple(annotation.get(c) or "" for c in ("Product", "Function", "Note"))
        template_id = choices[template_choice(seed, record_id, len(choices))]
        for masked, out in ((False, described), (True, masked_out)):
            key = (template_id, ec, masked, *args)
            if key not in texts_seen:
                if (ec, masked) not in per_ec:
                    per_ec[ec, masked] = _ec_fields(db, normalize_ec(ec), masked)
                texts_seen[key] = render(template_id, _slots(per_ec[ec, masked], *args, masked), masked)
            out.append(texts_seen[key])
        ids.append(template_id)
    return df.with_columns(
        pl.Series("Description", described, dtype=pl.Utf8),
        pl.Series("DescriptionMasked", masked_out, dtype=pl.Utf8),
        pl.Series("TemplateId", ids, dtype=pl.Int32),
    )
