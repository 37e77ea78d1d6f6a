"""ExPASy ENZYME (``enzyme.dat``) and its class names (``enzclass.txt``), for descriptions and EC checks.

Records are parsed by ``Bio.ExPASy.Enzyme``. Biopython concatenates continued DE and CA lines with
no separator ("... + NADP(+) = X +" / "2 NADPH." becomes "X +2 NADPH."), so continuation lines are
merged first with ENZYME's rule: a line that ends in a hyphen continues without a space, any
other line with one space.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from Bio.ExPASy import Enzyme

from biotalk.data.errors import InputError
from biotalk.ec import EC_IN_TEXT_RE, InvalidEC, ec_order_key, normalize_ec, parse_ec
from biotalk.io import open_text

_ENZCLASS_LINE = re.compile(r"^\s*(\d+)\.\s*(\d+|-)\.\s*(\d+|-)\.\s*-\s+(\S.*)$")
_NUMBERED_REACTION = re.compile(r"(?:^|(?<=\.))\s*\(\d+\)\s+")


@dataclass(frozen=True)
class EnzymeEntry:
    """One ENZYME entry; text fields carry no trailing period except ``comments`` (full sentences)."""

    ec: str
    name: str
    alt_names: tuple[str, ...] = ()
    reactions: tuple[str, ...] = ()
    cofactors: tuple[str, ...] = ()
    comments: tuple[str, ...] = ()
    transferred_to: tuple[str, ...] = ()
    deleted: bool = False

    @property
    def active(self) -> bool:
        return not self.deleted and not self.transferred_to


@dataclass
class EnzymeDB:
    """ENZYME entries by EC, and class/subclass/sub-subclass names by prefix ("1", "1.1", "1.1.1")."""

    entries: dict[str, EnzymeEntry]
    class_names: dict[str, str] = field(default_factory=dict)

    def class_name(self, prefix: str) -> str | None:
        """Name of a class, subclass or sub-subclass: "1.1.1", "1.1.1.-" and "1.1.-.-" all work."""
        levels = [p.strip() for p in prefix.split(".") if p.strip() not in ("", "-")]
        return self.class_names.get(".".join(str(int(p)) if p.isdigit() else p for p in levels))

    def successors(self, ec: str) -> tuple[str, ...]:
        """Active ECs reached by following "Transferred entry" links (sorted); () when deleted.

        An EC this release does not know (newer than it, e.g. class 7 in 2018) is its own successor.
        """
        ec = normalize_ec(ec)
        found: set[str] = set()
        seen: set[str] = set()
        todo = [ec]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            entry = self.entries.get(current)
            if entry is None or entry.active:
                found.add(current)
            else:
                todo.extend(entry.transferred_to)
        return tuple(sorted(found, key=ec_order_key))

    def resolve(self, ec: str) -> str | None:
        """The current EC of ``ec``: itself when active (or unknown to this release), the target of a
        transfer (followed through chains), None when deleted or when it was split into several ECs
        (ambiguous: ``successors`` lists them)."""
        targets = self.successors(ec)
        return targets[0] if len(targets) == 1 else None

    def entry(self, ec: str) -> EnzymeEntry | None:
        """The active entry describing ``ec`` after ``resolve``; None when deleted, split or unknown."""
        current = self.resolve(ec)
        return self.entries.get(current) if current else None

    def active_ecs(self) -> list[str]:
        """Every active (not transferred, not deleted) EC of the release, in numeric order."""
        return sorted((ec for ec, e in self.entries.items() if e.active), key=ec_order_key)


def load_enzyme(enzyme_dat: str | Path, enzclass: str | Path | Sequence[str | Path]) -> EnzymeDB:
    """Read ``enzyme.dat`` (gzipped or not) and one or more ``enzclass.txt`` files.

    With several enzclass files, names are merged; pass the 2021 file next to the 2018 one to get
    class 7 (Translocases), which the 2018 release lacks.
    """
    paths = [enzclass] if isinstance(enzclass, (str, Path)) else list(enzclass)
    names: dict[str, str] = {}
    for path in paths:
        for prefix, name in read_enzclass(path).items():
            names.setdefault(prefix, name)
    return EnzymeDB(entries=read_enzyme_dat(enzyme_dat), class_names=names)


def _lines(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"ENZYME file not found: {path}")
    with open_text(path) as handle:
        return handle.readlines()


def read_enzclass(path: str | Path) -> dict[str, str]:
    """Class names by prefix ("1", "1.1", "1.1.1") from enzclass.txt, without the trailing period."""
    names = {}
    for line in _lines(path):
        match = _ENZCLASS_LINE.match(line)
        if match:
            levels = [g for g in match.groups()[:3] if g != "-"]
            names[".".join(levels)] = _strip_period(match.group(4))
    if not names:
        raise InputError(f"no class names in enzclass file: {path}")
    return names


def read_enzyme_dat(path: str | Path) -> dict[str, EnzymeEntry]:
    """Entries by normalised EC; an entry with a malformed ID raises ``InputError`` naming it."""
    entries = {}
    try:
        for record in Enzyme.parse(_merge_continuations(_lines(path))):
            entry = _entry(record)
            entries[entry.ec] = entry
    except (ValueError, AssertionError) as err:
        raise InputError(f"{path}: malformed ENZYME entry: {err}") from None
    if not entries:
        raise InputError(f"no ENZYME entries in {path}")
    return entries


def _merge_continuations(lines: Iterable[str]) -> Iterator[str]:
    """Join continued DE/CA/CF/AN/CC lines into one line each, so Biopython sees whole fields."""
    pending: str | None = None
    for line in lines:
        key, value = line[:2], line[5:].rstrip()
        if pending is not None and _continues(pending, key, value):
            text = value.strip()
            pending = (
                pending + text
                if pending.endswith("-") and not pending.endswith(" -")
                else f"{pending} {text}"
            )
            continue
        if pending is not None:
            yield pending + "\n"
        pending = line.rstrip("\r\n") if key in ("DE", "CA", "CF", "AN", "CC") else None
        if pending is None:
            yield line
    if pending is not None:
        yield pending + "\n"


def _continues(pending: str, key: str, value: str) -> bool:
    if key != pending[:2]:
        return False
    if key == "CA":
        return not re.match(r"\(\d+\)\s", value)
    if key == "AN":
        return not pending.endswith(".")
    if key == "CC":
        return value.startswith("    ") and pending[5:].startswith("-!-")
    return True  # DE and CF are single fields


def _strip_period(text: str) -> str:
    text = " ".join(text.split())
    return text[:-1].rstrip() if text.endswith(".") else text


def _entry(record: Enzyme.Record) -> EnzymeEntry:
    try:
        ec = normalize_ec(record["ID"])
        if not parse_ec(ec).is_full:
            raise InvalidEC(f"not a full EC: {record['ID']!r}")
    except InvalidEC as err:
        raise ValueError(f"bad ID {record['ID']!r}: {err}") from None
    name = _strip_period(record["DE"])
    if name.startswith("Transferred entry"):
        targets = tuple(normalize_ec(m.group(0)) for m in EC_IN_TEXT_RE.finditer(name))
        return EnzymeEntry(ec=ec, name=name, transferred_to=targets)
    if name.startswith("Deleted entry"):
        return EnzymeEntry(ec=ec, name=name, deleted=True)
    reactions = tuple(_strip_period(r) for r in _NUMBERED_REACTION.split(record["CA"]) if r.strip())
    cofactors = tuple(_strip_period(c) for c in record["CF"].split(";") if c.strip())
    return EnzymeEntry(
        ec=ec,
        name=name,
        alt_names=tuple(_strip_period(a) for a in record["AN"] if a.strip()),
        reactions=reactions,
        cofactors=cofactors,
        comments=tuple(" ".join(c.split()) for c in record["CC"] if c.strip()),
    )
