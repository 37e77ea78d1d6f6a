"""Natural-language descriptions of enzyme function, filled from ENZYME and a record's own annotation.

Each of the 10 templates is a list of sentences; a sentence is a string or a tuple of alternatives,
and the first alternative whose slots are all filled is used (a sentence with none is left out).
``[...]`` marks an optional piece kept only when its slots are filled. So a template never shows an
empty slot or "None", and an EC absent from ENZYME still gets a description from its class names
and the record's /product.

``Description`` may name the EC (as the paper's texts do); ``DescriptionMasked`` is rendered from
EC-free fields without the EC slots, then passed through ``mask_ec`` once more as a guarantee.
Per-EC fields are computed once per EC, so describing 10^6 records costs one pass over the rows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import lru_cache

import polars as pl

from biotalk.data.enzyme import EnzymeDB
from biotalk.ec import EC_IN_TEXT_RE, normalize_ec

Part = str | tuple[str, ...]

TEMPLATES: tuple[tuple[Part, ...], ...] = (
    (
        (
            "{name}[ (EC {ec})] catalyses the reaction {reaction}.",
            "{name}[ (EC {ec})] is an enzyme of the {cls}.",
            "This enzyme[ (EC {ec})] is one of the {cls}.",
        ),
        "It is also known as {alt}.",
        "It belongs to the {lineage}.",
        "{comment}.",
    ),
    (
        (
            "This gene encodes {name}[, an enzyme classified as EC {ec}].",
            "This gene encodes {cls_a}[ classified as EC {ec}].",
        ),
        (
            "The encoded protein is {name_if_product}, which catalyses {reaction}.",
            "It catalyses the reaction {reaction}.",
        ),
        "Annotated function: {function}.",
        "{note}.",
    ),
    (
        ("This enzyme belongs to the {cls}[, subclass {sub}][, sub-subclass {subsub}].",),
        ("Its accepted name is {ec_name}[ (EC {ec})].", "It is annotated as {product}[ (EC {ec})]."),
        "It catalyses the following reaction(s): {reactions}.",
        "Cofactor: {cofactor}.",
    ),
    (
        (
            "The reaction {reaction} is catalysed by {name}[, EC {ec}].",
            "{name}[, EC {ec},] is one of the {lineage}.",
            "This enzyme[, EC {ec},] is one of the {lineage}.",
        ),
        "Other names: {alt}.",
        "It requires {cofactor} as a cofactor.",
        "In this genome the gene product is annotated as {product_if_name}.",
    ),
    (
        ("{name} is an enzyme[ with EC number {ec}].", "This is {cls_a}[ with EC number {ec}]."),
        "Its recommended name is {name_if_product}.",
        "Biochemically, it converts {reaction}.",
        "{comments}.",
    ),
    (
        (
            "{name}[ (EC {ec})]: {reaction}.",
            "{name}[ (EC {ec})]: an enzyme of the {lineage}.",
            "Enzyme[ (EC {ec})] of the {lineage}.",
        ),
        "Cofactor requirement: {cofactor}.",
        "{function}.",
        "{note}.",
    ),
    (
        ("Enzyme function: {name}[, EC {ec}].", "Enzyme function: {cls_a}[, EC {ec}]."),
        "It is classified among the {lineage}.",
        "Synonyms include {alt}.",
        "It catalyses {reactions}.",
        "{comment}.",
    ),
    (
        (
            "This protein, annotated as {product}, acts as {name_if_product}[ (EC {ec})].",
            "This protein acts as {name}[ (EC {ec})].",
            "This protein is {cls_a}[ (EC {ec})].",
        ),
        "As a member of the {cls}, it catalyses {reaction}.",
        "Its activity depends on {cofactor}.",
    ),
    (
        (
            "The protein encoded by this gene, {product}, is an enzyme of the {cls}[ (EC {ec})].",
            "The protein encoded by this gene is {name}[ (EC {ec})].",
            "The protein encoded by this gene is {cls_a}[ (EC {ec})].",
        ),
        "It is known as {name_if_product}[ or {alt}].",
        "Catalytic activity: {reaction}.",
        "Function: {function}.",
        "{comment}.",
    ),
    (
        ("{cls_a}[ (EC {ec})] known as {name}.", "{cls_a}[ (EC {ec})]."),
        "Subclass: {sub}[; sub-subclass: {subsub}].",
        "Reaction: {reactions}.",
        "Cofactors: {cofactor}.",
        "{comments}.",
    ),
)
EC_SLOTS = frozenset({"ec"})
_SLOT = re.compile(r"\[([^\[\]]*)\]|\{(\w+)\}")
_INNER_SLOT = re.compile(r"\{(\w+)\}")
_PARENTHETICAL = re.compile(r"\s*[(\[](?:[^()\[\]]|\([^()]*\))*[)\]]")
_UNIT_END = re.compile(r"(?<=[.;!?])\s+")
_ABBREVIATION = re.compile(r"(?:\b(?:cf|e\.g|i\.e|etc|sp|spp|approx|vs|no|ca|al)\.)$", re.IGNORECASE)
_MULTIFUN_CODE = re.compile(r"(?:^|(?<=[;,]\s))\d+(?:\.\d+)*\s*:\s*")
_NOTE_NOISE = re.compile(
    r"derived by automated computational analysis|\w+=\S|^evidence \w+ ?:|pubmedid|product type|"
    r"^citation|^go_|^coordinates|similar to|^contains selenocysteine",
    re.IGNORECASE,
)
_WRAPPED_SLASH = re.compile(r"(?<=\S)/ (?=\S)")  # GenBank line wrap after a slash: "synthase/ dihydrofolate"
_EMPTY_BRACKETS = re.compile(r"\(\s*[;,]?\s*\)|\[\s*\]")


class _Missing(Exception):
    """A required slot of a sentence alternative is empty."""


def mask_ec(text: str) -> str:
    """``text`` with every EC number and EC cross-reference removed, still readable.

    Parentheticals that name an EC go ("(EC 2.7.7.7)", "(cf. EC 1.1.1.382)"); a sentence or
    ';'-clause that still names one ("Formerly EC 1.1.1.89.") is dropped whole.
    """
    if not text or not EC_IN_TEXT_RE.search(text):
        return text
    text = _PARENTHETICAL.sub(lambda m: "" if EC_IN_TEXT_RE.search(m.group(0)) else m.group(0), text)
    units = _split_units(text)
    kept = [u for u in units if not EC_IN_TEXT_RE.search(u)]
    out = " ".join(kept).strip()
    if kept and kept[-1].endswith(";"):
        out = out[:-1].rstrip() + ("." if text.rstrip().endswith(".") else "")
    return _tidy(out)


def _split_units(text: str) -> list[str]:
    """Sentences and ';'-clauses; abbreviations (cf., e.g.) and lower-case continuations do not split."""
    units: list[str] = []
    for piece in _UNIT_END.split(text):
        if units and (_ABBREVIATION.search(units[-1]) or (units[-1].endswith(".") and piece[:1].islower())):
            units[-1] = f"{units[-1]} {piece}"
        else:
            units.append(piece)
    return [u for u in units if u]


def _tidy(text: str) -> str:
    """One space between words, none before punctuation, no doubled or clashing stops."""
    text = _EMPTY_BRACKETS.sub("", text)
    text = " ".join(text.split())
    text = re.sub(r"\s+([.,;:)\]])", r"\1", text)
    text = re.sub(r"([(\[])\s+", r"\1", text)
    text = re.sub(r"[,;:]+(?=[.!?])", "", text)
    text = re.sub(r"([.!?])\.+", r"\1", text)
    text = re.sub(r",(?=[,;])", "", text)
    return text.strip()


def _strip_stop(text: str) -> str:
    text = _tidy(text)
    while text.endswith((".", ";", ",")):
        text = text[:-1].rstrip()
    return text


def _decap(name: str) -> str:
    """Lower-case a capitalised common word for use mid-sentence ("Alcohol dehydrogenase"), but
    keep symbols and acronyms ("DNA polymerase", "tRNA", "NADH")."""
    if len(name) > 1 and name[0].isupper() and name[1].islower():
        return name[0].lower() + name[1:]
    return name


def _capitalise(sentence: str) -> str:
    first = re.match(r"[A-Za-z]+", sentence)
    if first and first.group(0).islower():
        return sentence[0].upper() + sentence[1:]
    return sentence


def _join(items: Sequence[str], word: str = "and") -> str:
    items = [i for i in items if i]
    if len(items) <= 2:
        return f" {word} ".join(items)
    return ", ".join(items[:-1]) + f" {word} " + items[-1]


def _with_article(class_name: str) -> str:
    """'Oxidoreductases' -> 'an oxidoreductase' (the seven class names are plain plurals)."""
    name = _decap(class_name)
    name = name[:-1] if name.endswith("ases") else name
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _name(name: str, clean) -> str:
    return _decap(_strip_stop(clean(name)))


def _ec_fields(db: EnzymeDB, ec: str, masked: bool) -> dict[str, str]:
    """Slots that depend on the EC only: ENZYME entry (after following transfers) and class names."""
    clean = mask_ec if masked else (lambda t: t)
    entry = db.entry(ec)
    levels = ec.split(".")
    cls, sub, subsub = (db.class_name(".".join(levels[:i])) or "" for i in (1, 2, 3))
    lineage = _decap(cls)
    if sub and subsub.lower().startswith(sub.lower()):  # "Acting on acid anhydrides; catalyzing ..."
        subsub = subsub[len(sub) :].lstrip(" ;,")
    inner = "; ".join(_decap(n) for n in (sub, subsub) if n)
    if lineage and inner:
        lineage = f"{lineage} ({inner})"
    fields = {
        "ec": "" if masked else ec,
        "cls": _decap(cls),
        "cls_a": _with_article(cls) if cls else "",
        "sub": _decap(sub),
        "subsub": _decap(subsub),
        "lineage": lineage,
    }
    split = db.successors(ec) if entry is None and ec in db.entries else ()
    if split:  # transferred to several ECs: name them all, the rest is ambiguous
        fields["ec_name"] = _join([_name(db.entries[t].name, clean) for t in split if t in db.entries], "or")
    if entry is not None:
        comments = [_strip_stop(clean(c)) for c in entry.comments]
        comments = [c for c in comments if c]
        fields |= {
            "ec_name": _name(entry.name, clean),
            "alt": _join([_decap(_strip_stop(clean(a))) for a in entry.alt_names[:2]], "or"),
            "reaction": _decap(_strip_stop(clean(entry.reactions[0]))) if entry.reactions else "",
            "reactions": "; ".join(r for r in (_decap(_strip_stop(clean(r))) for r in entry.reactions) if r),
            "cofactor": _join([_decap(_strip_stop(clean(c))) for c in entry.cofactors]),
            "comment": comments[0] if comments else "",
            "comments": ". ".join(comments[:2]),
        }
    return fields


@lru_cache(maxsize=65536)
def _record_fields(product: str, function: str, note: str, masked: bool) -> tuple[str, str, str]:
    """/product, /function, /note cleaned for prose: MultiFun codes and pipeline notes removed."""
    clean = mask_ec if masked else (lambda t: t)
    product = _decap(_strip_stop(clean(_WRAPPED_SLASH.sub("/", product))))
    function = _MULTIFUN_CODE.sub("", function)
    function = "; ".join(p for p in (_strip_stop(clean(p)) for p in function.split(";")) if p)
    notes = [_strip_stop(clean(p)) for p in note.split(";")]
    note = "; ".join(p for p in notes if p and not _NOTE_NOISE.search(p))
    return product, _strip_stop(function), note


def _same(a: str, b: str) -> bool:
    return re.sub(r"\W+", "", a).lower() == re.sub(r"\W+", "", b).lower()


def _slots(ec_fields: dict[str, str], product: str, function: str, note: str, masked: bool) -> dict[str, str]:
    fields = dict(ec_fields)
    product, function, note = _record_fields(product or "", function or "", note or "", masked)
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
                sentences.append(_capitalise(_tidy(_fill(alternative, fields, masked))))
                break
            except _Missing:
                continue
    text = _tidy(" ".join(sentences))
    return mask_ec(text) if masked else text


def describe_ec(ec: str, db: EnzymeDB, template_id: int = 0, masked: bool = True) -> str:
    """A description of an EC from ENZYME and class names only (CLIP zero-shot over all ECs)."""
    return render(template_id, _slots(_ec_fields(db, normalize_ec(ec), masked), "", "", "", masked), masked)


def template_choice(seed: int, record_id: str, n: int = len(TEMPLATES)) -> int:
    """A template index from a stable hash of (seed, RecordId): independent of row order and process."""
    digest = hashlib.blake2b(f"{seed}\x1f{record_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n


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
