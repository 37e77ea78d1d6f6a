"""scripts/embed.py and scripts/eval_embeddings.py end to end on the mini benchmark (k-mer spectrum and a tiny
random LOLBERT: code paths, not reported numbers)."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from biotalk.data import load_benchmark
from biotalk.embeddings import embed_sequences
from biotalk.metrics import IDENTITY_BINS, identity_bins, knn_hierarchical_precision
from biotalk.models import load_dna_encoder

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def shared_prefix(a: str, b: str) -> int:
    """EC levels two ECs share from the root down (1.2.3.4 vs 1.5.3.4 share 1)."""
    depth = 0
    for x, y in zip(a.split("."), b.split("."), strict=True):
        if x != y:
            break
        depth += 1
    return depth


@pytest.mark.slow
def test_eval_tables(mini_benchmark, tiny_lolbert, tmp_path):
    out, cache = tmp_path / "eval", tmp_path / "cache"
    common = [f"data={mini_benchmark}", "benchmarks=[III,IV]", f"cache_dir={cache}", "poolings=[cls,mean]",
              "truncate=true", "window=40", f"encoders=[kmer:3,{tiny_lolbert},{tmp_path / 'missing'}]"]
    done = run("eval_embeddings.py", "--config", "configs/eval/mini.yaml", *common, f"out={out}")
    result = json.loads((out / "tables.json").read_text())
    rows = {(r["benchmark"], r["encoder"], r["pooling"]): r for r in result["rows"]}
    assert set(rows) == {(b, e, p) for b in ("III", "IV") for e, p in
                         [("kmer:3", "spectrum"), (str(tiny_lolbert), "cls"), (str(tiny_lolbert), "mean")]}
    assert [s["encoder"] for s in result["skipped"]] == [str(tmp_path / "missing")]
    assert "skipping encoder" in done.stderr
    splits = load_benchmark(mini_benchmark, "III")
    for row in rows.values():
        hp = [row["hP"][k] for k in ("1", "3", "5")]
        assert 0 <= hp[0] <= hp[1] <= hp[2] <= 1  # more neighbours can only find a better match
        assert row["n_queries"] == len(splits["test1"])
    assert rows[("III", "kmer:3", "spectrum")]["n_index"] == int(np.sum(~np.asarray(splits["train"]["IsDuplicate"])))
    table = (out / "tables.md").read_text()
    assert "paper (different data, not comparable)" in table and "| III | 1 | 0.1332 |" in table

    # the k-mer row, recomputed by hand: cosine 1-NN over the non-duplicate train rows
    enc = load_dna_encoder("kmer:3")
    train, test = splits["train"], splits["test1"]
    keep = ~np.asarray(train["IsDuplicate"])
    index = embed_sequences(enc, list(train["Sequence"]), ["spectrum"], progress=False)["spectrum"][keep]
    query = embed_sequences(enc, list(test["Sequence"]), ["spectrum"], progress=False)["spectrum"]
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    sims = unit(query) @ unit(index).T
    train_ecs = np.asarray(train["EC"])[keep]
    scores = []
    for q, ec in enumerate(test["EC"]):
        best = np.flatnonzero(sims[q] >= sims[q].max() - 1e-6)  # ties: any tied neighbour may be returned
        scores.append({shared_prefix(ec, train_ecs[j]) for j in best})
    low = np.mean([min(s) for s in scores]) / 4
    high = np.mean([max(s) for s in scores]) / 4
    assert low - 1e-9 <= rows[("III", "kmer:3", "spectrum")]["hP"]["1"] <= high + 1e-9

    # a second run with the raw-L2 search reuses every cached embedding
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")}
    run("eval_embeddings.py", "--config", "configs/eval/mini.yaml", *common, "metric=l2", f"out={tmp_path / 'l2'}")
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.npy")} == stamps
    assert json.loads((tmp_path / "l2" / "tables.json").read_text())["config"]["metric"] == "l2"


def test_embed_script(mini_benchmark, tmp_path):
    out = tmp_path / "emb"
    run("embed.py", "encoder=kmer:3", f"data={mini_benchmark}", "benchmark=IV", "split=test1",
        "poolings=cls,mean", f"out={out}", f"cache_dir={tmp_path / 'cache'}")
    test = load_benchmark(mini_benchmark, "IV")["test1"]
    spectra = np.load(out / "spectrum.npy")
    assert spectra.shape == (len(test), 64)
    assert (out / "record_ids.txt").read_text().splitlines() == list(test["RecordId"])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["poolings"] == ["spectrum"] and meta["rows"] == len(test)


def test_eval_baselines_and_identity_strata(mini_benchmark, tmp_path):
    """Every Table 2 number on the real mini data comes with its identity strata and the majority and homology
    baselines scored on the same queries."""
    out = tmp_path / "eval"
    run("eval_embeddings.py", "--config", "configs/eval/mini.yaml", f"data={mini_benchmark}", "benchmarks=[III]",
        "encoders=[kmer:3]", f"cache_dir={tmp_path / 'cache'}", f"out={out}")
    result = json.loads((out / "tables.json").read_text())
    splits = load_benchmark(mini_benchmark, "III")
    train, queries = splits["train"], splits["test1"]
    n = len(queries)
    base = {r["method"]: r for r in result["baselines"]}
    assert set(base) == {"majority class (EC)", "homology transfer (MMseqs2 best hit)"}
    for row in base.values():
        assert row["benchmark"] == "III" and row["n_queries"] == n and row["neighbours"] == 1
        assert len(set(row["hP"].values())) == 1 and 0 <= row["hP"]["1"] <= 1  # one neighbour: one value at every k
    counts = Counter(ec for ec, dup in zip(train["EC"], train["IsDuplicate"], strict=True) if not dup)
    majority = min(counts, key=lambda ec: (-counts[ec], ec))
    assert base["majority class (EC)"]["ec"] == majority
    assert base["majority class (EC)"]["hP"]["1"] == knn_hierarchical_precision(list(queries["EC"]), [[majority]] * n)
    homology = base["homology transfer (MMseqs2 best hit)"]
    assert 0 < homology["coverage"] < 1  # the mini test set has queries with and without a hit
    assert homology["hP"]["1"] <= homology["coverage"]  # a query without a hit counts, as precision 0

    # identity strata: the builder's identity.parquet, binned here independently of the script
    stored = pl.read_parquet(mini_benchmark / "identity.parquet").filter(pl.col("Benchmark") == "III")
    known = dict(zip(stored["RecordId"], stored["MaxIdentity"], strict=True))
    expected = Counter(identity_bins([known[rid] for rid in queries["RecordId"]]))
    (knn,) = result["rows"]
    assert "silhouette" in knn and set(knn["hP"]) == {"1", "3", "5"}  # the old layout is kept
    for row in [knn, *base.values()]:
        strata = row["hP_by_identity"]
        assert set(strata) == set(IDENTITY_BINS)
        assert {b: s["n"] for b, s in strata.items() if s["n"]} == dict(expected)
        assert sum(s["n"] for s in strata.values()) == n
        weighted = sum(s["hP"] * s["n"] for s in strata.values() if s["n"]) / n
        assert weighted == pytest.approx(row["hP"]["1"], abs=1e-12)
    table = (out / "tables.md").read_text()
    assert f"| III | majority class (EC) = {majority} | single neighbour |" in table
    assert "| III | homology transfer (MMseqs2 best hit), e <= 1e-05" in table
    assert "### Table 2 by identity to training (k=1)" in table
