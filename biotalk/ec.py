"""The one place that parses and validates Enzyme Commission (EC) numbers.

An EC number has four levels: class.subclass.sub-subclass.serial. We accept
- full numbers ``1.2.3.4``,
- partial numbers where trailing levels are ``-`` (``1.2.-.-``),
- preliminary serials with an ``n`` prefix (``3.5.1.n3``), as ENZYME and UniProt write them.

Everything else (``1.2.3``, ``1.2.3.4a``, ``-``, ``1.-.3.4``) is rejected with ``InvalidEC``.
Hierarchical metrics need levels encoded as *prefixes* (``1``, ``1.2``, ``1.2.3``, ``1.2.3.4``):
raw digits would collapse ``1.1.1.1`` into one node and match spuriously.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

LEVELS = 4
_LEVEL = r"(?:\d+|-)"
_SERIAL = r"(?:n?\d+|-)"
_EC_RE = re.compile(rf"^(?:EC[ :]?)?(\d+)\.({_LEVEL})\.({_LEVEL})\.({_SERIAL})$", re.IGNORECASE)
# Finds EC-like tokens inside free text (descriptions, /product): used to mask labels out of text.
EC_IN_TEXT_RE = re.compile(r"(?<![\w.])(?:EC[ :]?)?\d+\.(?:\d+|-)\.(?:\d+|-)\.(?:n?\d+|-)(?![\w.]*\d)", re.IGNORECASE)


class InvalidEC(ValueError):
    """Raised for a string that is not a full, partial or preliminary EC number."""


@dataclass(frozen=True, order=True)
class EC:
    """A parsed EC number; ``levels`` holds only the specified levels (1 to 4)."""

    levels: tuple[str, ...]

    @property
    def depth(self) -> int:
        return len(self.levels)

    @property
    def is_full(self) -> bool:
        return len(self.levels) == LEVELS

    @property
    def is_preliminary(self) -> bool:
        return self.is_full and self.levels[3].startswith("n")

    def prefixes(self) -> tuple[str, ...]:
        """Hierarchy nodes from the root down: 1.2.3.4 -> ('1', '1.2', '1.2.3', '1.2.3.4')."""
        return tuple(".".join(self.levels[: i + 1]) for i in range(len(self.levels)))

    def prefix(self, depth: int) -> str:
        """The node at ``depth`` (1-based), e.g. prefix(2) of 1.2.3.4 is '1.2'."""
        if not 1 <= depth <= self.depth:
            raise ValueError(f"EC {self} has no level {depth}")
        return ".".join(self.levels[:depth])

    def __str__(self) -> str:
        return ".".join(self.levels + ("-",) * (LEVELS - len(self.levels)))


def parse_ec(text: str) -> EC:
    """Parse one EC string; raise ``InvalidEC`` naming the input if it is malformed."""
    if not isinstance(text, str):
        raise InvalidEC(f"EC must be a string, got {type(text).__name__}: {text!r}")
    match = _EC_RE.match(text.strip())
    if not match:
        raise InvalidEC(f"not an EC number: {text!r}")
    parts = match.groups()
    depth = LEVELS
    for i, part in enumerate(parts):
        if part == "-":
            depth = i
            break
    if any(p != "-" for p in parts[depth:]):
        raise InvalidEC(f"specified level after a '-' in {text!r}")
    if depth < LEVELS and parts[3].startswith("n"):
        raise InvalidEC(f"preliminary serial under an unspecified level in {text!r}")
    levels = tuple(str(int(p)) if p.isdigit() else p for p in parts[:depth])
    if depth == LEVELS and levels[3].startswith("n"):
        levels = levels[:3] + ("n" + str(int(levels[3][1:])),)
    return EC(levels)


def ec_order_key(ec: str) -> tuple[tuple[int, int], ...]:
    """The one EC order, the hierarchy's: 1.2.3.4 < 1.2.3.10 < 1.10.1.1, a partial EC before its
    children, preliminary serials after numeric ones and ordered by number (3.5.1.n3 < 3.5.1.n10)."""
    return tuple((1, int(x[1:])) if x.startswith("n") else (0, int(x)) for x in parse_ec(ec).levels)


def is_valid_ec(text: str) -> bool:
    try:
        parse_ec(text)
    except InvalidEC:
        return False
    return True


def is_full_ec(text: str) -> bool:
    """True for a 4-level EC (preliminary serials included)."""
    try:
        return parse_ec(text).is_full
    except InvalidEC:
        return False


def normalize_ec(text: str) -> str:
    """Canonical string form: strips whitespace and an 'EC' prefix, drops leading zeros."""
    return str(parse_ec(text))


def ec_prefixes(text: str | None) -> tuple[str, ...]:
    """Prefix nodes of an EC string; ``None``/'' (no prediction) gives the empty tuple."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return ()
    return parse_ec(text).prefixes()


def ec_at_level(text: str, depth: int) -> str:
    """The EC truncated to ``depth`` levels as a partial EC string, e.g. ('1.2.3.4', 2) -> '1.2.-.-'."""
    ec = parse_ec(text)
    return str(EC(ec.levels[:depth]))


_FIELD_SEPARATOR = re.compile(r"[;,|/\s]+")
_EC_LABEL = re.compile(r"\bEC[ :]*(?=\d)", re.IGNORECASE)


def split_ec_field(text: str) -> list[str]:
    """Split a multi-EC field ('1.1.1.1; 2.3.1.-', '1.1.1.1, 2.3.1.5', 'EC 1.1.1.1 | EC 2.7.7.7.') into
    items; an 'EC' label and a sentence's trailing dot belong to no item."""
    items = _FIELD_SEPARATOR.split(_EC_LABEL.sub("", text or ""))
    return [item.rstrip(".") for item in items if item.rstrip(".")]


def full_ecs(items: Iterable[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Keep the full ECs of a record, normalised; return (kept, [(item, reason)] for the rest).

    A partial EC next to a full one does not cost the record its full EC (a defect of the
    reference builder, which dropped the whole record).
    """
    kept: list[str] = []
    rejected: list[tuple[str, str]] = []
    for item in items:
        try:
            ec = parse_ec(item)
        except InvalidEC as err:
            rejected.append((item, str(err)))
            continue
        if ec.is_full:
            if str(ec) not in kept:
                kept.append(str(ec))
        else:
            rejected.append((item, "partial EC"))
    return kept, rejected


@dataclass(frozen=True)
class LabelMap:
    """Class ids of a classifier over full ECs: the training split's ECs, normalised, in ``ec_order_key`` order.

    Every model that predicts EC classes (MLP, fine-tuned LOLBERT, CLIP) builds its ids here, so the same
    training split gives the same ids everywhere; an EC outside the map encodes to -1 (scored wrong).
    """

    labels: tuple[str, ...]

    @classmethod
    def from_ecs(cls, ecs: Iterable[str]) -> LabelMap:
        """The unique normalised ECs of ``ecs`` (a training split) as classes."""
        return cls(tuple(sorted({normalize_ec(ec) for ec in ecs}, key=ec_order_key)))

    def encode(self, ecs: Sequence[str]) -> np.ndarray:
        """int64 class ids; -1 for an EC not in the map."""
        index = self.label2id
        return np.array([index.get(normalize_ec(ec), -1) for ec in ecs], dtype=np.int64)

    def decode(self, ids: Sequence[int]) -> list[str]:
        """ECs of class ids; an id outside 0..len-1 (such as -1) raises IndexError instead of wrapping."""
        bad = [int(i) for i in ids if not 0 <= int(i) < len(self.labels)]
        if bad:
            raise IndexError(f"class id {bad[0]} outside 0..{len(self.labels) - 1}")
        return [self.labels[int(i)] for i in ids]

    @cached_property
    def label2id(self) -> dict[str, int]:
        return {ec: i for i, ec in enumerate(self.labels)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    def __len__(self) -> int:
        return len(self.labels)
