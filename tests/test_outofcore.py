"""The bounded-memory build path (biotalk.data.outofcore) on the real mini records: the same files as the
in-memory path, no partial output from a killed build; the ENA accession list of the UniProt fixtures."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from fixtures.data import ROOT, mini_build_config

from biotalk.data.build import assemble, assign, enzyme_inputs, read_records, store_rules
from biotalk.data.describe import describe_records
from biotalk.data.enzyme import load_enzyme
from biotalk.data.outofcore import stage_records, write_splits
from biotalk.data.sources import UniProtInputs, cds_accessions
from biotalk.data.uniprot import read_cds_fasta

UNIPROT = ROOT / "tests" / "fixtures" / "uniprot"


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory):
    cfg = mini_build_config(tmp_path_factory.mktemp("unused") / "out")
    db = load_enzyme(*enzyme_inputs(cfg))
    return cfg, db, read_records(cfg, db)[0]


def _bytes(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_parquet(buf)
    return buf.getvalue()


def test_writer_gives_the_in_memory_files(mini, tmp_path: Path) -> None:
    cfg, db, records = mini
    expected, result, targets = assemble(describe_records(records, db, cfg.seed), cfg)
    store = stage_records(records.lazy(), tmp_path / "store", part_rows=400, batch_rows=1000)
    assert len(store.parts()) >= 8  # several partitions and staging batches, so their order matters
    assert set(store.slim.columns) >= {"RecordId", "EC", "Sequence", "Protein"}
    assert store.slim["Sequence"].str.len_chars().max() <= 20  # keys, not the DNA
    splits, slim_result, slim_targets = assign(store.slim, cfg, store_rules(store, cfg))
    assert slim_targets == targets and slim_result.untested == result.untested
    assert slim_result.removed.equals(result.removed)
    write_splits(tmp_path / "out", store, splits, db, cfg.seed, tmp_path / "work")
    assert list(splits) == list(expected)
    for name, df in expected.items():
        written = tmp_path / "out" / f"{name}.parquet"
        assert pl.read_parquet(written).equals(df), name
        assert written.read_bytes() == _bytes(df), name
    assert not (tmp_path / "work").exists()


def test_killed_build_leaves_the_old_output(tmp_path: Path) -> None:
    """SIGKILL while the new output is being written: the previous build stays whole, nothing partial."""
    cfg = mini_build_config(tmp_path / "out")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("previous build\n")
    args = [f"out={out}", f"raw_dir={cfg.raw_dir}", f"cache_dir={cfg.cache_dir}"]
    cmd = [sys.executable, str(ROOT / "scripts" / "build_benchmarks.py"), "--config", str(ROOT / "configs/data/mini.yaml"), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".out.*.tmp/Benchmark-*")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the build ended before its output was being written"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert (out / "old.txt").read_text() == "previous build\n"


def test_cds_accessions_of_the_uniprot_fixtures(tmp_path: Path) -> None:
    inputs = UniProtInputs(entries=["uniprot_sprot.dat.gz", "uniprot_trembl.dat.gz"], cds_fasta=["missing/*.fasta"])
    n = cds_accessions(UNIPROT, inputs, tmp_path / "ena.accessions")
    ids = (tmp_path / "ena.accessions").read_text().splitlines()
    assert n == len(ids) == len(set(ids)) and ids == sorted(ids)
    served = {cds_id for cds_id, _ in read_cds_fasta(UNIPROT / "ena_cds.fasta.gz")}
    assert "NP_414571.1" not in ids  # its entry has no EC: not an enzyme record
    assert served - {"NP_414571.1"} <= set(ids)  # every other CDS the fixture's ENA serves was asked for
    assert "NP_418223.2" in ids  # an entry's CDS that ENA lacks is still asked for
    tsv = cds_accessions(UNIPROT, UniProtInputs(entries=["uniprot.tsv.gz"]), tmp_path / "tsv.accessions")
    assert 0 < tsv <= n  # TSV entries take their CDS ids from idmapping column 18
