"""Text clean-up for descriptions: EC masking, tidy punctuation, names for use mid-sentence, and the
records' own /product, /function and /note made fit for prose."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from biotalk.ec import EC_IN_TEXT_RE

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
    return tidy(out)


def _split_units(text: str) -> list[str]:
    """Sentences and ';'-clauses; abbreviations (cf., e.g.) and lower-case continuations do not split."""
    units: list[str] = []
    for piece in _UNIT_END.split(text):
        if units and (_ABBREVIATION.search(units[-1]) or (units[-1].endswith(".") and piece[:1].islower())):
            units[-1] = f"{units[-1]} {piece}"
        else:
            units.append(piece)
    return [u for u in units if u]


def tidy(text: str) -> str:
    """One space between words, none before punctuation, no doubled or clashing stops."""
    text = _EMPTY_BRACKETS.sub("", text)
    text = " ".join(text.split())
    text = re.sub(r"\s+([.,;:)\]])", r"\1", text)
    text = re.sub(r"([(\[])\s+", r"\1", text)
    text = re.sub(r"[,;:]+(?=[.!?])", "", text)
    text = re.sub(r"([.!?])\.+", r"\1", text)
    text = re.sub(r",(?=[,;])", "", text)
    return text.strip()


def strip_stop(text: str) -> str:
    text = tidy(text)
    while text.endswith((".", ";", ",")):
        text = text[:-1].rstrip()
    return text


def decap(name: str) -> str:
    """Lower-case a capitalised common word for use mid-sentence ("Alcohol dehydrogenase"), but
    keep symbols and acronyms ("DNA polymerase", "tRNA", "NADH")."""
    if len(name) > 1 and name[0].isupper() and name[1].islower():
        return name[0].lower() + name[1:]
    return name


def capitalise(sentence: str) -> str:
    first = re.match(r"[A-Za-z]+", sentence)
    if first and first.group(0).islower():
        return sentence[0].upper() + sentence[1:]
    return sentence


def join_words(items: Sequence[str], word: str = "and") -> str:
    items = [i for i in items if i]
    if len(items) <= 2:
        return f" {word} ".join(items)
    return ", ".join(items[:-1]) + f" {word} " + items[-1]


def with_article(class_name: str) -> str:
    """'Oxidoreductases' -> 'an oxidoreductase' (the seven class names are plain plurals)."""
    name = decap(class_name)
    name = name[:-1] if name.endswith("ases") else name
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


@lru_cache(maxsize=65536)
def clean_annotation(product: str, function: str, note: str, masked: bool) -> tuple[str, str, str]:
    """/product, /function, /note cleaned for prose: MultiFun codes and pipeline notes removed."""
    clean = mask_ec if masked else (lambda t: t)
    product = decap(strip_stop(clean(_WRAPPED_SLASH.sub("/", product))))
    function = _MULTIFUN_CODE.sub("", function)
    function = "; ".join(p for p in (strip_stop(clean(p)) for p in function.split(";")) if p)
    notes = [strip_stop(clean(p)) for p in note.split(";")]
    note = "; ".join(p for p in notes if p and not _NOTE_NOISE.search(p))
    return product, strip_stop(function), note
