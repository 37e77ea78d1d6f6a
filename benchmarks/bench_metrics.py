"""Hierarchical P/R/F: biotalk.metrics against hiclass.metrics on the same (true, predicted) pairs.

    python benchmarks/bench_metrics.py [sizes=[100000,1000000] seed=0 out=FILE]

Pairs are drawn from a pool of real-looking ECs with a third of the predictions partial. hiclass
is timed on its input already built (prefix rows), ours from the raw EC strings; the script
asserts that both give identical numbers and prints them.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from hiclass import metrics as hm
from sklearn.exceptions import UndefinedMetricWarning

from biotalk.cli import run
from biotalk.ec import ec_prefixes
from biotalk.io import write_json
from biotalk.metrics import hierarchical_prf
from biotalk.rng import stream


@dataclass
class BenchConfig:
    sizes: list[int] = field(default_factory=lambda: [100_000, 1_000_000])
    n_ecs: int = 3000
    seed: int = 0
    out: str = ""  # optional JSON with the timings


def make_pairs(n: int, n_ecs: int, seed: int) -> tuple[list[str], list[str]]:
    rng = stream(seed)
    levels = rng.integers(1, [8, 12, 20, 200], size=(n_ecs, 4))
    pool = np.array([".".join(map(str, row)) for row in levels], dtype=object)
    true = pool[rng.zipf(1.5, n) % n_ecs]
    pred = np.where(rng.random(n) < 0.6, true, pool[rng.integers(0, n_ecs, n)])  # 60% copy the truth
    depth = rng.choice([1, 2, 3, 4], size=n, p=[0.1, 0.1, 0.13, 0.67])
    partial = {(ec, d): ".".join(ec.split(".")[:d] + ["-"] * (4 - d)) for ec in pool for d in range(1, 5)}
    pred = [partial[ec, d] for ec, d in zip(pred, depth, strict=True)]
    return true.tolist(), pred


def hiclass_rows(values: list[str]) -> list[list[str]]:
    rows = {v: list(ec_prefixes(v)) + [""] * (4 - len(ec_prefixes(v))) for v in set(values)}
    return [rows[v] for v in values]


def hiclass_prf(true_rows, pred_rows, average: str) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return {
            "hP": hm.precision(true_rows, pred_rows, average),
            "hR": hm.recall(true_rows, pred_rows, average),
            "hF": hm.f1(true_rows, pred_rows, average),
        }


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main(cfg: BenchConfig) -> None:
    results = []
    for n in cfg.sizes:
        y_true, y_pred = make_pairs(n, cfg.n_ecs, cfg.seed)
        true_rows, pred_rows = hiclass_rows(y_true), hiclass_rows(y_pred)
        for average in ("micro", "macro"):
            ours, t_ours = timed(hierarchical_prf, y_true, y_pred, average)
            theirs, t_theirs = timed(hiclass_prf, true_rows, pred_rows, average)
            assert ours == theirs, f"n={n} {average}: ours {ours} != hiclass {theirs}"
            row = {
                "n": n,
                "average": average,
                "ours_s": t_ours,
                "hiclass_s": t_theirs,
                "ratio": t_theirs / t_ours,
                **ours,
            }
            results.append(row)
            print(
                f"n={n:>9,} {average}: ours {t_ours:7.3f} s  hiclass {t_theirs:8.2f} s  x{t_theirs / t_ours:6.1f}  "
                f"identical: hP={ours['hP']:.6f} hR={ours['hR']:.6f} hF={ours['hF']:.6f}",
                flush=True,
            )
    if cfg.out:
        write_json(cfg.out, results)


if __name__ == "__main__":
    run(main, BenchConfig, __doc__)
