"""Resumable downloads against a real HTTP server process on 127.0.0.1 (tests/fixtures/range_server.py)
serving real files (an ENZYME release; genes of the published-layout fixture as ENA records)."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest

from biotalk.data.fetch import MANIFEST, FetchError, Retry, Source, download, fetch_ena, fetch_files

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests/fixtures/range_server.py"
ENZYME = ROOT / "data/raw/expasy_enzyme/enzyme_2018-09-12.dat.gz"  # 2.7 MB
ENZCLASS = ROOT / "data/raw/expasy_enzyme/enzclass_2021-02-10.txt"
GENES = ROOT / "tests/fixtures/published/Benchmark-Datasets-Test/test2.csv"
FAST = Retry(attempts=4, backoff=0.01, timeout=10)


class Server:
    def __init__(self, root: Path, log: Path, *flags: str) -> None:
        self.log_path = log
        self.process = subprocess.Popen([sys.executable, str(SERVER), str(root), str(log), *flags],
                                        stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.process.stdout.readline().split()[1]}"

    def log(self) -> list[dict]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines()] if self.log_path.exists() else []

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start a server on a folder holding the ENZYME files and ena.fasta; flags as range_server.py's."""
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(ENZYME, root / "enzyme.dat.gz")
    shutil.copy(ENZCLASS, root / "enzclass.txt")
    genes = pl.read_csv(GENES, infer_schema=False)
    (root / "ena.fasta").write_text("".join(f">ENA|{acc.split('.')[0]}|{acc} CDS\n{seq}\n"
                                            for acc, seq in genes.select("EmblCdsId", "Sequence").iter_rows()))
    servers: list[Server] = []

    def start(*flags: str) -> Server:
        servers.append(Server(root, tmp_path / f"log{len(servers)}.jsonl", *flags))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_complete_download_manifest_and_skip(serve, tmp_path):
    server = serve()
    sources = {"enzyme": Source(f"{server.url}/enzyme.dat.gz", sha256=sha(ENZYME)),
               "classes": Source(f"{server.url}/enzclass.txt", file="enzclass_current.txt")}
    manifest = fetch_files(sources, tmp_path / "out", FAST, progress=False)
    assert (tmp_path / "out/enzyme.dat.gz").read_bytes() == ENZYME.read_bytes()
    assert sha(tmp_path / "out/enzclass_current.txt") == sha(ENZCLASS)
    record = json.loads((tmp_path / "out" / MANIFEST).read_text())["files"]["enzyme"]
    assert record == manifest["files"]["enzyme"]
    assert (record["size"], record["sha256"], record["url"]) == (ENZYME.stat().st_size, sha(ENZYME), sources["enzyme"].url)
    assert not list((tmp_path / "out").glob("*.part*"))
    requests = len(server.log())
    fetch_files(sources, tmp_path / "out", FAST, verify=True, progress=False)  # complete and matching: skipped
    assert len(server.log()) == requests == 2
    with pytest.raises(FetchError, match="not the expected"):
        download(f"{server.url}/enzclass.txt", tmp_path / "bad.txt", FAST, sha256="0" * 64, progress=False)
    assert not (tmp_path / "bad.txt").exists() and not (tmp_path / "bad.txt.part").exists()


def test_dropped_connection_resumes_from_the_bytes_on_disk(serve, tmp_path):
    server = serve("--drop-after", "300000")
    download(f"{server.url}/enzyme.dat.gz", tmp_path / "enzyme.dat.gz", FAST, progress=False)
    assert sha(tmp_path / "enzyme.dat.gz") == sha(ENZYME)
    first, second = server.log()
    assert (first["range"], first["sent"]) == (None, 300000)
    assert second["range"] == "bytes=300000-" and second["status"] == 206 and second["if_range"] is not None
    assert first["sent"] + second["sent"] == ENZYME.stat().st_size  # nothing fetched twice
    stale = tmp_path / "changed.txt.part"  # bytes of an older release on disk: If-Range gets the whole file
    stale.write_bytes(b"old release " * 1000)
    stale.with_name(stale.name + ".json").write_text(json.dumps({"validator": '"older"'}))
    download(f"{server.url}/enzclass.txt", tmp_path / "changed.txt", FAST, progress=False)
    assert sha(tmp_path / "changed.txt") == sha(ENZCLASS) and server.log()[-1]["status"] == 200


def test_retries_after_503_then_gives_up(serve, tmp_path):
    server = serve("--fail", "2")
    download(f"{server.url}/enzclass.txt", tmp_path / "enzclass.txt", FAST, progress=False)
    assert [r["status"] for r in server.log()] == [503, 503, 200]
    assert sha(tmp_path / "enzclass.txt") == sha(ENZCLASS)
    server = serve("--fail", "4")
    with pytest.raises(FetchError, match="gave up after 4 attempts"):
        download(f"{server.url}/enzclass.txt", tmp_path / "again.txt", FAST, progress=False)
    with pytest.raises(FetchError, match="404"):  # a client error is not retried
        download(f"{server.url}/nothing.txt", tmp_path / "nothing.txt", FAST, progress=False)
    assert [r["status"] for r in server.log()] == [503] * 4 + [404]


def test_killed_client_resumes_where_it_stopped(serve, tmp_path):
    server = serve("--rate", "1000000")  # ~2.7 s for the whole file
    config = tmp_path / "sources.yaml"
    config.write_text(f"out: {tmp_path / 'out'}\nsources:\n  enzyme:\n    url: {server.url}/enzyme.dat.gz\n"
                      f"backoff: 0.01\nprogress: false\n")
    command = [sys.executable, "scripts/fetch_sources.py", "--config", str(config)]
    client = subprocess.Popen(command, cwd=ROOT)
    part = tmp_path / "out/enzyme.dat.gz.part"
    deadline = time.time() + 60
    while (not part.exists() or part.stat().st_size < 400_000) and time.time() < deadline:
        time.sleep(0.02)
    client.send_signal(signal.SIGKILL)
    client.wait(10)
    on_disk = part.stat().st_size
    assert 400_000 <= on_disk < ENZYME.stat().st_size and not (tmp_path / "out/enzyme.dat.gz").exists()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    last = server.log()[-1]
    assert last["range"] == f"bytes={on_disk}-" and last["sent"] == ENZYME.stat().st_size - on_disk
    assert sha(tmp_path / "out/enzyme.dat.gz") == sha(ENZYME)
    assert json.loads((tmp_path / "out" / MANIFEST).read_text())["files"]["enzyme"]["sha256"] == sha(ENZYME)


def test_ena_batches_resume_and_report_missing(serve, tmp_path):
    server = serve()
    known = pl.read_csv(GENES, infer_schema=False)["EmblCdsId"].to_list()
    accessions = [*known, "XX000000.1", "YY000000.1", "ZZ000000.1"]  # three ENA does not have
    base = f"{server.url}/ena/browser/api/fasta/"
    result = fetch_ena(accessions, tmp_path, base, batch_size=2, retry=FAST, progress=False)
    assert (result["batches"], result["fetched"]) == (3, 3)
    assert result["missing"] == ["XX000000.1", "YY000000.1", "ZZ000000.1"]
    requested = [r["path"].rsplit("/", 1)[1].split(",") for r in server.log()]
    assert requested == [accessions[0:2], accessions[2:4], accessions[4:6]]
    assert [r["status"] for r in server.log()] == [200, 200, 404]  # a batch ENA knows nothing of: empty
    files = sorted((tmp_path / "ena").glob("batch_*.fasta"))
    text = "".join(f.read_text() for f in files)
    assert all(f"|{acc} " in text for acc in known)
    assert fetch_ena(accessions, tmp_path, base, 2, FAST, progress=False)["fetched"] == 0 and len(server.log()) == 3
    files[1].unlink()  # a lost batch is fetched again, alone
    again = fetch_ena(accessions, tmp_path, base, 2, FAST, progress=False)
    assert again["fetched"] == 1 and server.log()[-1]["path"].endswith(",".join(accessions[2:4]))
    assert again["missing"] == result["missing"]
