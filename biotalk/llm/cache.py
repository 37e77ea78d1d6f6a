"""A resumable answer cache: one JSON line per generated answer, keyed by a hash of (the backend's
``cache_id`` (model, and for local models dtype and device), rendered prompt, generation settings).

Every answer is appended and fsync'ed as soon as it arrives (a local batch, or one server answer), so a
killed run, or a server that dies, loses only the answers in flight; a rerun reads the file and asks only
for what it lacks. A line cut short by a kill is skipped (and counted in ``skipped``); appending starts
on a fresh line. With prompts sharded over processes (one per GPU), process ``r`` appends to its own
``<file>.part-r``; every reader reads the parts too, and ``merge_parts`` folds them into the file.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from biotalk.cache import cache_key as content_key
from biotalk.llm.backends import GenerationSettings
from biotalk.llm.openai_api import BackendError

log = logging.getLogger(__name__)


def cache_key(cache_id: str, prompt: str, settings: GenerationSettings) -> str:
    return content_key(model=cache_id, prompt=prompt, settings=dataclasses.asdict(settings))


def _ends_with_newline(f) -> bool:
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return True
    f.seek(size - 1)
    return f.read(1) == b"\n"


def _append(path: Path, entries: Sequence[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as f:
        if not _ends_with_newline(f):
            f.write(b"\n")  # the last line was cut short by a kill: start a new one
        f.write("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries).encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def _read_entries(file: Path) -> tuple[dict[str, str], int]:
    """(key -> response, unreadable lines) of one cache file; a missing file is empty."""
    responses, skipped = {}, 0
    if not file.is_file():
        return responses, skipped
    with file.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            try:
                entry = json.loads(line)
                responses[entry["key"]] = entry["response"]
            except (json.JSONDecodeError, KeyError, TypeError):
                skipped += 1
                log.warning("%s:%d: unreadable cache line skipped (a run killed mid-write?)", file, lineno)
    return responses, skipped


class ResponseCache:
    """``key -> response`` backed by an append-only JSON-lines file (and its ``.part-N`` files);
    ``part`` set: this process appends to ``<file>.part-<part>``."""

    def __init__(self, path: str | Path, part: int | None = None) -> None:
        self.path = Path(path)
        self.write_path = self.path if part is None else self.part_path(part)
        self.responses: dict[str, str] = {}
        self.skipped = 0
        for file in [self.path, *self.parts()]:
            self._read(file)

    def part_path(self, part: int) -> Path:
        return self.path.with_name(f"{self.path.name}.part-{part}")

    def parts(self) -> list[Path]:
        return sorted(self.path.parent.glob(f"{self.path.name}.part-*")) if self.path.parent.is_dir() else []

    def _read(self, file: Path) -> None:
        responses, skipped = _read_entries(file)
        self.responses.update(responses)
        self.skipped += skipped

    def __contains__(self, key: str) -> bool:
        return key in self.responses

    def __getitem__(self, key: str) -> str:
        return self.responses[key]

    def __len__(self) -> int:
        return len(self.responses)

    def add(self, entries: Sequence[dict]) -> None:
        """Append entries (each with ``key`` and ``response``) and make them durable."""
        _append(self.write_path, entries)
        for e in entries:
            self.responses[e["key"]] = e["response"]

    def merge_parts(self) -> int:
        """Append the part files' entries that the main file lacks to it, then delete the parts (a kill in
        between leaves entries twice, which reads the same); returns the number of entries moved."""
        known = set(_read_entries(self.path)[0])
        moved = 0
        for part in self.parts():
            entries = []
            for line in part.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(entry, dict) and "key" in entry and entry["key"] not in known:
                    entries.append(entry)
                    known.add(entry["key"])
            if entries:
                _append(self.path, entries)
            part.unlink()
            moved += len(entries)
        return moved


def generate_missing(backend, prompts: Sequence[str], settings: GenerationSettings, cache: ResponseCache,
                     batch_size: int = 8, shard: tuple[int, int] = (0, 1)) -> int:  # fmt: skip
    """Generate and store the answers ``cache`` lacks (identical prompts once; with ``shard=(rank, world)``
    only every ``world``-th of them, from ``rank``), longest prompts first (little padding); returns how many
    were generated. A backend failure keeps what arrived and says how to resume."""
    todo: dict[str, str] = {}
    for prompt in prompts:
        key = cache_key(backend.cache_id, prompt, settings)
        if key not in cache:
            todo.setdefault(key, prompt)
    rank, world = shard
    order = sorted(todo, key=lambda k: (-len(todo[k]), k))[rank::world]
    stored = 0
    extra = {"rank": rank} if world > 1 else {}
    with tqdm(total=len(order), desc="generating", unit="answer", disable=not order) as bar:
        try:
            for i, answer in backend.stream([todo[k] for k in order], settings, batch_size):
                cache.add([{"key": order[i], "model": backend.cache_id, "settings": dataclasses.asdict(settings),
                            "prompt": todo[order[i]], "response": answer, **extra}])  # fmt: skip
                stored += 1
                bar.update(1)
        except BackendError as err:
            raise BackendError(f"{err}; {stored} of the {len(order)} answers this run needed arrived and are saved "
                               f"in {cache.write_path}: rerun the same command to ask only for the other "
                               f"{len(order) - stored}") from None
    return stored


def generate_cached(backend, prompts: Sequence[str], settings: GenerationSettings, cache: ResponseCache,
                    batch_size: int = 8) -> tuple[list[str], int]:  # fmt: skip
    """Answers to rendered ``prompts`` (cached ones read, the others generated); returns (answers in prompt
    order, number generated now)."""
    generated = generate_missing(backend, prompts, settings, cache, batch_size)
    return [cache[cache_key(backend.cache_id, p, settings)] for p in prompts], generated
