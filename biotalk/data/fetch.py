"""Resumable downloads of the public dumps a full-scale benchmark is built from (UniProtKB, UniRef
id mapping, ENZYME) and of ENA CDS sequences in batches of accessions.

The dumps are tens of gigabytes, so a broken connection or a killed run must not cost what is already on
disk: a file grows as ``NAME.part`` and is fetched on from its size with an HTTP ``Range`` request (with
``If-Range``, so a file that changed on the server starts over instead of being spliced), and is renamed
only when whole. Connection errors and 5xx answers are retried with exponential backoff; other 4xx
answers fail at once. ``manifest.json`` records url, size, sha256 and date of every complete file, and
a complete file that matches its record is not fetched again. ENA batches are files of their own,
named by their accessions' digest: a batch already written is skipped, so a rerun fetches only the rest.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

from biotalk.data.errors import InputError
from biotalk.io import write_json, write_text

MANIFEST = "manifest.json"
ENA_DIR = "ena"
ENA_INDEX = "batches.jsonl"  # one line per ENA batch written: its record, appended as batches complete
CHUNK = 1 << 16
RETRY_STATUS = {408, 429}  # besides 5xx: worth another try
USER_AGENT = "biotalk-fetch/1 (+https://github.com)"


class FetchError(InputError):
    """A download that cannot succeed: a 4xx answer, a checksum mismatch, or every retry spent."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status of the last answer, when there was one


@dataclass
class Source:
    """One file to fetch: its url, the name to store it under (default: the url's last path part) and,
    where the provider publishes one, its sha256."""

    url: str
    file: str = ""
    sha256: str = ""

    @property
    def name(self) -> str:
        return self.file or Path(urllib.request.urlparse(self.url).path).name


@dataclass(frozen=True)
class Retry:
    attempts: int = 6  # tries per file (or ENA batch), the first one included
    backoff: float = 2.0  # seconds before the first retry, doubled for each next one
    timeout: float = 60.0  # seconds without data before a connection counts as broken


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(url: str, path: Path, **extra: Any) -> dict[str, Any]:
    """The manifest entry of a complete file."""
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {"url": url, "size": path.stat().st_size, "sha256": sha256_file(path), "date": date, **extra}


def _retryable(err: Exception) -> bool:
    if isinstance(err, urllib.error.HTTPError):
        return err.code >= 500 or err.code in RETRY_STATUS
    return isinstance(err, (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException))


def _total(response: http.client.HTTPResponse | urllib.error.HTTPError, start: int) -> int | None:
    """The whole file's size: from ``Content-Range`` (``bytes a-b/total``), else start + Content-Length."""
    match = re.search(r"/(\d+)\s*$", response.headers.get("Content-Range") or "")
    if match:
        return int(match.group(1))
    length = response.headers.get("Content-Length")
    return start + int(length) if length is not None else None


def _attempt(url: str, part: Path, timeout: float, bar: tqdm) -> None:
    """One request: append to ``part`` from its size (the whole file when the server ignores the range
    or the file changed); raises on a short body so the caller retries from the new size."""
    meta = part.with_name(part.name + ".json")  # the validator of the bytes in ``part``
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
        validator = json.loads(meta.read_text()).get("validator") if meta.is_file() else None
        if validator:
            headers["If-Range"] = validator
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start and _total(err, 0) == start:
            return  # asked past the end: the part is already whole
        if err.code == 416:
            part.unlink()
            raise ConnectionError(f"{url}: range from byte {start} not satisfiable; starting over") from None
        raise
    with response:
        if response.status != 206:  # a full body: the range was ignored or the file changed
            start = 0
        total = _total(response, start)
        validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
        meta.write_text(json.dumps({"validator": validator, "total": total}))
        bar.reset(total)
        bar.update(start)
        with part.open("ab" if start else "wb") as handle:
            for block in iter(lambda: response.read(CHUNK), b""):
                handle.write(block)
                bar.update(len(block))
    size = part.stat().st_size
    if total is not None and size != total:
        raise ConnectionError(f"{url}: connection closed at byte {size} of {total}")


def download(url: str, dest: Path, retry: Retry = Retry(), sha256: str = "", resume: bool = True,
             progress: bool = True) -> dict[str, Any]:
    """Fetch ``url`` into ``dest`` through ``dest.part`` (resumed from its size when ``resume``),
    retrying with backoff; check ``sha256`` when given; return the manifest record."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    meta = part.with_name(part.name + ".json")
    if not resume:
        part.unlink(missing_ok=True)
    with tqdm(desc=dest.name, unit="B", unit_scale=True, disable=not progress, leave=False) as bar:
        for attempt in range(retry.attempts):
            try:
                _attempt(url, part, retry.timeout, bar)
                break
            except Exception as err:  # noqa: BLE001 - sorted into retryable and fatal right here
                status = getattr(err, "code", None)
                if not _retryable(err):
                    raise FetchError(f"{url}: {err}", status) from None
                if attempt + 1 == retry.attempts:
                    raise FetchError(f"{url}: gave up after {retry.attempts} attempts: {err}", status) from None
                time.sleep(retry.backoff * 2**attempt)
    actual = sha256_file(part) if sha256 else ""
    if actual != sha256.lower():
        part.unlink()
        raise FetchError(f"{url}: sha256 {actual} is not the expected {sha256}; the download was removed")
    os.replace(part, dest)
    meta.unlink(missing_ok=True)
    return file_record(url, dest)


def is_current(dest: Path, record: dict[str, Any] | None, url: str, sha256: str = "", verify: bool = False) -> bool:
    """A complete file that matches its manifest record (same url and size; same hash when ``verify``)."""
    if record is None or not dest.is_file() or record.get("url") != url or dest.stat().st_size != record.get("size"):
        return False
    if sha256 and record.get("sha256") != sha256.lower():
        return False
    return not verify or sha256_file(dest) == record.get("sha256")


def read_manifest(out: Path) -> dict[str, Any]:
    path = out / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {"files": {}}


def fetch_files(sources: dict[str, Source], out: Path, retry: Retry = Retry(), verify: bool = False,
                progress: bool = True) -> dict[str, Any]:
    """Every source into ``out/<its file name>``; the manifest is rewritten after each file, so a killed
    run keeps the record of what it finished."""
    manifest = read_manifest(out)
    for name, source in tqdm(sources.items(), desc="sources", disable=not progress):
        dest = out / source.name
        if is_current(dest, manifest["files"].get(name), source.url, source.sha256, verify):
            continue
        record = download(source.url, dest, retry, source.sha256, progress=progress)
        manifest["files"][name] = {**record, "path": dest.name}
        write_json(out / MANIFEST, manifest)
    return manifest


def fasta_ids(path: Path) -> set[str]:
    """Every accession a FASTA names: ``>ENA|AAC73113|AAC73113.1 ...`` gives both forms."""
    ids: set[str] = set()
    with path.open() as handle:
        for line in handle:
            if line.startswith(">"):
                ids.update(part for part in line[1:].split(None, 1)[0].split("|") if part and part != "ENA")
    return ids


def batches(accessions: Sequence[str], size: int) -> list[tuple[str, list[str]]]:
    """``(file name, accessions)`` of each batch; the name holds a digest of its accessions, so a
    changed list never reuses a batch written for another."""
    out = []
    for i in range(0, len(accessions), size):
        chunk = list(accessions[i : i + size])
        digest = hashlib.blake2b(",".join(chunk).encode(), digest_size=6).hexdigest()
        out.append((f"batch_{i // size:06d}_{digest}.fasta", chunk))
    return out


def _missing(path: Path, chunk: list[str]) -> list[str]:
    found = fasta_ids(path)
    return [acc for acc in chunk if acc not in found and acc.split(".")[0] not in found]


def _fetch_batch(url: str, dest: Path, retry: Retry) -> None:
    """One batch; ENA answers 404 when it has none of the accessions: an empty batch, not a failure."""
    try:
        download(url, dest, retry, resume=False, progress=False)
    except FetchError as err:
        if err.status != 404:
            raise
        write_text(dest, "")


def fetch_ena(accessions: Sequence[str], out: Path, base_url: str, batch_size: int = 200, retry: Retry = Retry(),
              progress: bool = True) -> dict[str, Any]:
    """ENA sequences of ``accessions`` into ``out/ena/batch_*.fasta``, ``batch_size`` per request;
    batches already written are skipped. Returns counts and the accessions ENA did not return."""
    folder = out / ENA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / ENA_INDEX
    done = {}
    if index.is_file():
        for line in index.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill; its batch is rechecked from the file
                continue
            done[record["file"]] = record
    accessions = list(dict.fromkeys(a.strip() for a in accessions if a.strip()))
    fetched, missing, todo = 0, [], batches(accessions, batch_size)
    for name, chunk in tqdm(todo, desc="ENA batches", disable=not progress):
        dest = folder / name
        if not dest.is_file() or name not in done:
            if not dest.is_file():
                _fetch_batch(base_url.rstrip("/") + "/" + ",".join(chunk), dest, retry)
                fetched += 1
            done[name] = file_record(base_url, dest, file=name, accessions=len(chunk), missing=_missing(dest, chunk))
            with index.open("a") as handle:
                handle.write(json.dumps(done[name]) + "\n")
        missing += done[name]["missing"]
    return {"url": base_url, "batch_size": batch_size, "accessions": len(accessions), "batches": len(todo),
            "fetched": fetched, "missing": missing, "index": f"{ENA_DIR}/{ENA_INDEX}"}
