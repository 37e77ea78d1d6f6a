"""The bounded-memory build path (biotalk.data.outofcore) on the real mini records: the same files as the
in-memory path, no partial output from a killed build; the coded split equals the string split on
adversarial ids; the ENA accession list of the UniProt fixtures."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fixtures.data import ROOT, mini_build_config
from hypothesis import given, settings
from hypothesis import strategies as st

from biotalk.data.balance import balance
from biotalk.data.build import assemble, assign, enzyme_inputs, read_records, store_rules
from biotalk.data.describe import describe_records
from biotalk.data.enzyme import load_enzyme
from biotalk.data.identity import write_identity
from biotalk.data.near import near_proteins
from biotalk.data.outofcore import keyed_near, protein_key, stage_records, store_identity, write_splits
from biotalk.data.sources import UniProtInputs, cds_accessions
from biotalk.data.split import PAPER, SplitRules, split_benchmarks
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
    store = stage_records(records.lazy(), tmp_path / "store", part_rows=400, file_rows=150)
    assert len(store.parts()) >= 8 and len(store.files()) > len(store.parts())  # several files a partition: order
    assert store.slim.schema["RecordId"] == store.slim.schema["UniRef50"] == pl.UInt32  # codes, not strings
    assert store.slim.schema["DnaKey"] == store.slim.schema["Protein"] == pl.UInt64  # keys, not the DNA
    splits, slim_result, slim_targets = assign(store.slim, cfg, store_rules(store, cfg))
    slim_result = store.decoded(slim_result)
    assert slim_targets == targets and slim_result.untested == result.untested
    assert slim_result.removed.equals(result.removed)
    write_splits(tmp_path / "out", store, splits, db, cfg.seed, tmp_path / "work")
    assert list(splits) == list(expected)
    for name, df in expected.items():
        written = tmp_path / "out" / f"{name}.parquet"
        assert pl.read_parquet(written).equals(df), name
        assert written.read_bytes() == _bytes(df), name
    assert not (tmp_path / "work").exists()


def test_keyed_near_streams_the_same_pairs_as_the_string_search(mini, tmp_path: Path) -> None:
    """The strict rule's search from FASTA files written out of the store (keys as ids) finds the pairs of
    the in-memory search of the protein strings, and a second call reads them from the cache."""
    cfg, _, records = mini
    store = stage_records(records.lazy(), tmp_path / "store", part_rows=400, file_rows=150)
    curated = records.filter(pl.col("DBtype") == "SwissProt")["Protein"].to_list()
    by_strings = near_proteins(curated, records["Protein"].to_list(), float(cfg.test_identity), cfg.coverage,
                               cache_dir=cfg.cache_dir)  # the in-memory build's search, cached by the other tests
    expected = by_strings.select(protein_key(pl.col(c)).alias(c) for c in by_strings.columns).drop_nulls()
    keyed = keyed_near(store, float(cfg.test_identity), cfg.coverage, 1, tmp_path / "cache")
    assert keyed.height > expected["Protein"].n_unique()  # pairs between different proteins, not only self-hits
    assert keyed.sort(keyed.columns).equals(expected.sort(expected.columns))
    (cached,) = (tmp_path / "cache").glob("near-keys-*.parquet")
    cached.write_bytes(_bytes(keyed.head(3)))  # a changed cache entry is what the second call returns
    assert keyed_near(store, float(cfg.test_identity), cfg.coverage, 1, tmp_path / "cache").equals(keyed.head(3))
    assert not (store.folder / "near").exists()


def test_store_identity_equals_the_in_memory_table(mini, tmp_path: Path) -> None:
    """identity.parquet from the store (proteins streamed to FASTA, keyed by hashes) is the table of the
    in-memory reference (``write_identity`` on the split tables), row for row."""
    cfg, db, records = mini
    expected_splits = assemble(describe_records(records, db, cfg.seed), cfg)[0]
    expected = write_identity(tmp_path, expected_splits)
    store = stage_records(records.lazy(), tmp_path / "store", part_rows=400, file_rows=150)
    splits = assign(store.slim, cfg, store_rules(store, cfg))[0]
    got = store_identity(store, splits, cache_dir=tmp_path / "cache")
    assert expected["MaxIdentity"].is_not_null().sum() > 100 and expected["MaxIdentity"].is_null().sum() > 0
    assert got.equals(expected)
    assert store_identity(store, splits, cache_dir=tmp_path / "cache").equals(expected)  # from the cache
    assert not (store.folder / "identity").exists()


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


# Ids whose string order is not their numeric, length or case order ("A10" < "A9" < "a1"), ECs likewise.
_NAMES = ["A9", "A10", "A100", "A2", "B1", "AB", "a1", "Z", "A09", "A1"]
# EC -> (UniRef50 names, UniRef90 per UniRef50, UniRef100 per UniRef90): split at UniRef50, at UniRef90, at
# UniRef100 and by record under the paper's rules; the 4.2.1 ECs have curated records only (Test-II, valid2).
_ECS = {"1.1.1.9": (10, 4, 3), "1.1.1.10": (6, 2, 2), "1.1.1.100": (2, 4, 2), "2.7.1.1": (1, 1, 4),
        "2.7.1.11": (1, 1, 1), "3.1.3.2": (10, 1, 1), "4.2.1.9": (3, 2, 2), "4.2.1.10": (2, 1, 2),
        "4.2.1.100": (1, 1, 1), "4.2.1.2": (2, 2, 1)}  # fmt: skip


def _adversarial_pool(seed: int, n: int = 400) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Records (curated and not, genes shared by two ECs, empty proteins) and search pairs."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(_ECS), n)
    ecs = [list(_ECS)[i] for i in which]
    shape = [_ECS[ec] for ec in ecs]
    own = rng.random(n) < 0.9  # a tenth of the UniRef50 clusters span ECs
    u50 = [f"UniRef50_{_NAMES[rng.integers(0, k)]}{'_' + ec[-2:] if o else ''}" for (k, _, _), ec, o in zip(shape, ecs, own, strict=True)]
    u90 = [f"{u.replace('50', '90')}_{rng.integers(0, k) * 9}" for u, (_, k, _) in zip(u50, shape, strict=True)]
    u100 = [f"{u.replace('90', '100')}.{_NAMES[rng.integers(0, k)]}" for u, (_, _, k) in zip(u90, shape, strict=True)]
    gene = np.where(rng.random(n) < 0.1, rng.integers(0, 30, n), which * 1000 + rng.integers(0, 40, n))  # repeats
    dna = [("acgt" if g % 5 == 0 else "ACGT") * 3 + str(g) for g in gene]  # case differs, the DNA key does not
    protein = ["" if g % 17 == 0 else f"M{g % 97 if g % 4 == 0 else g}K" for g in gene]  # empty ones, shared ones
    curated = (rng.random(n) < 0.5) | np.char.startswith(ecs, "4.2.1.")
    df = pl.DataFrame({
        "RecordId": [f"CDS{rng.integers(0, 10 * n)}|{ec}" for ec in ecs], "EC": ecs, "UniRef50": u50, "UniRef90": u90,
        "UniRef100": u100, "Sequence": dna, "Protein": protein, "DBtype": np.where(curated, "SwissProt", "Unreviewed"),
    }).unique("RecordId", keep="first", maintain_order=True).with_columns(
        *(pl.lit(v).alias(c) for c, v in (("AC", "P1"), ("OC", "Bacteria"), ("EmblCdsId", "X"), ("Organism", "B")))
    )  # fmt: skip
    shared = [p for p in dict.fromkeys(protein) if p]
    pairs = rng.choice(len(shared), (n // 10, 2))
    near = pl.DataFrame({"Protein": [shared[a] for a, _ in pairs], "Near": [shared[b] for _, b in pairs]})
    return df, near


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([SplitRules(valid2_share=0.5), PAPER]))
def test_coded_split_equals_the_string_split(seed: int, rules: SplitRules) -> None:
    """The same rows in every split, the same removed rows and the same balanced draw, from codes as from strings."""
    records, near = _adversarial_pool(seed)
    keyed = near.select(protein_key(pl.col("Protein")).alias("Protein"), protein_key(pl.col("Near")).alias("Near"))
    with tempfile.TemporaryDirectory() as tmp:
        store = stage_records(records.lazy(), Path(tmp), part_rows=60, file_rows=25)
        by_strings = split_benchmarks(records, seed, replace(rules, near=near if rules.strict else None))
        coded = split_benchmarks(store.slim, seed, replace(rules, near=keyed if rules.strict else None))
        by_codes = store.decoded(coded)
        assert by_codes.removed.equals(by_strings.removed) and by_codes.untested == by_strings.untested
        columns = ["RecordId", "EC", "Split", "SplitLevel"]
        for strings, codes in ((by_strings.curated, coded.curated), (by_strings.full, coded.full)):
            assert store.labels(codes).select(columns).equals(strings.select(columns))
        train = (pl.col("Split") == "train")
        drawn = balance(by_strings.full.filter(train), 5, np.random.default_rng(seed))
        coded_draw = store.labels(balance(coded.full.filter(train), 5, np.random.default_rng(seed)))
        assert coded_draw.select("RecordId", "IsDuplicate").equals(drawn.select("RecordId", "IsDuplicate"))
