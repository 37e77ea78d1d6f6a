"""A resumable response cache: one JSON line per generated answer, keyed by a hash of
(model id, rendered prompt, generation settings).

Every batch is appended and fsync'ed as soon as it is generated, so a killed run loses at most the
batch in flight; a rerun reads the file and generates only the answers it lacks. A line cut short by
a kill is skipped (and counted in ``skipped``); appending starts on a fresh line.
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

log = logging.getLogger(__name__)


def cache_key(model_id: str, prompt: str, settings: GenerationSettings) -> str:
    return content_key(model=model_id, prompt=prompt, settings=dataclasses.asdict(settings))


def _ends_with_newline(f) -> bool:
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return True
    f.seek(size - 1)
    return f.read(1) == b"\n"


class ResponseCache:
    """``key -> response`` backed by an append-only JSON-lines file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.responses: dict[str, str] = {}
        self.skipped = 0
        if self.path.is_file():
            with self.path.open(encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    try:
                        entry = json.loads(line)
                        self.responses[entry["key"]] = entry["response"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        self.skipped += 1
                        log.warning("%s:%d: unreadable cache line skipped (a run killed mid-write?)", self.path, lineno)

    def __contains__(self, key: str) -> bool:
        return key in self.responses

    def __getitem__(self, key: str) -> str:
        return self.responses[key]

    def __len__(self) -> int:
        return len(self.responses)

    def add(self, entries: Sequence[dict]) -> None:
        """Append entries (each with ``key`` and ``response``) and make them durable."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as f:
            if not _ends_with_newline(f):
                f.write(b"\n")  # the last line was cut short by a kill: start a new one
            f.write("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries).encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        for e in entries:
            self.responses[e["key"]] = e["response"]


def generate_cached(
    backend, prompts: Sequence[str], settings: GenerationSettings, cache: ResponseCache, batch_size: int = 8
) -> tuple[list[str], int]:
    """Answers to rendered ``prompts`` (cached ones read, the others generated in length-sorted batches);
    returns (answers in prompt order, number generated now). Identical prompts (a gene with two ECs is two
    records) are generated once."""
    keys = [cache_key(backend.model_id, p, settings) for p in prompts]
    todo: dict[str, str] = {}
    for key, prompt in zip(keys, prompts, strict=True):
        if key not in cache:
            todo.setdefault(key, prompt)
    order = sorted(todo, key=lambda k: -len(todo[k]))  # similar lengths together: little padding
    with tqdm(total=len(order), desc="generating", unit="answer", disable=not order) as bar:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            answers = backend.generate([todo[k] for k in batch], settings)
            cache.add([
                {"key": k, "model": backend.model_id, "settings": dataclasses.asdict(settings), "prompt": todo[k],
                 "response": a}
                for k, a in zip(batch, answers, strict=True)
            ])  # fmt: skip
            bar.update(len(batch))
    return [cache[k] for k in keys], len(order)
