"""One table of BioTalk-CLIP options, chosen on validation splits only, then the winner scored on the tests once.

    python scripts/ablate_clip.py --config configs/clip/ablation_mini.yaml [rows_only=[siglip,aakmer]]

Every row is a ``train_clip.py`` run of ``base`` plus the row's overrides with ``eval.tests=false``: it trains,
keeps the epoch with the best Valid+valid2 score and scores Valid and valid2, never a test split. The table
shows validation columns only. The row with the best ``selection_score`` (mean hierarchical hF on Valid and
valid2) is then trained again with the test splits scored, once (``final/``). Rows already run with the same
overrides are read back, so a killed ablation resumes where it stopped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from biotalk.cli import UsageError, run
from biotalk.data.schema import build_command
from biotalk.io import write_json, write_text

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    name: str
    overrides: list[str] = field(default_factory=list)  # train_clip.py key=value overrides on top of ``base``
    note: str = ""


@dataclass
class Config:
    base: Path = Path("configs/clip/mini.yaml")
    data: Path = Path("out/mini-benchmark")
    rows: list[Row] = field(default_factory=list)
    rows_only: list[str] = field(default_factory=list)  # run just these rows (by name); empty = all
    final: bool = True  # train the validation winner once more with the tests scored
    seed: int = 0
    out: Path = Path("runs/ablation/mini")


def train(cfg: Config, out: Path, overrides: list[str], tests: bool) -> dict:
    """One ``train_clip.py`` run (read back when ``out`` already holds a run of the same overrides)."""
    args = [f"data.path={cfg.data}", f"seed={cfg.seed}", *overrides, f"eval.tests={str(tests).lower()}", f"out={out}"]
    done = out / "ablation_row.json"
    if done.is_file() and json.loads(done.read_text())["args"] == args:
        return json.loads(done.read_text())
    start = time.monotonic()
    done_run = subprocess.run([sys.executable, "train_clip.py", "--config", str(cfg.base), *args], cwd=ROOT)
    if done_run.returncode != 0:
        raise SystemExit(f"error: train_clip.py failed for {out} (exit {done_run.returncode}); its messages are above")
    metrics = json.loads((out / "metrics.json").read_text())
    record = {"args": args, "wall_s": round(time.monotonic() - start, 1), "metrics": metrics}
    write_json(done, record)
    return record


def validation_cells(metrics: dict) -> dict[str, float]:
    """The validation numbers of a run: hF of both decodings on Valid and valid2, and kNN / retrieval on Valid."""
    cells = {"score": metrics["selected"]["selection_score"], "epoch": metrics["selected"]["epoch"]}
    for split in ("valid", "valid2"):
        cells[f"{split}_nearest"] = metrics["zero_shot"][split]["hF"]
        cells[f"{split}_hier"] = metrics["zero_shot_hierarchical"][split]["hF"]
    retrieval = metrics["retrieval"]  # on Valid when the tests are not scored
    cells["valid_r10"] = retrieval["text_to_dna"]["R@10"] if retrieval.get("split") == "valid" else float("nan")
    return cells


def markdown(rows: list[dict]) -> str:
    lines = ["| option | Valid hF (nearest) | Valid hF (hier.) | valid2 hF (nearest) | valid2 hF (hier.) "
             "| Valid R@10 text→DNA | score | epoch | wall s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        c = r["cells"]
        nums = " | ".join(f"{c[k]:.4f}" for k in ("valid_nearest", "valid_hier", "valid2_nearest", "valid2_hier",
                                                    "valid_r10", "score"))
        lines.append(f"| {r['name']} | {nums} | {c['epoch']} | {r['wall_s']:.0f} |")
    return "\n".join(lines)


def main(cfg: Config) -> dict:
    if not cfg.rows:
        raise UsageError("rows: the config lists no options to compare")
    names = [r.name for r in cfg.rows]
    unknown = sorted(set(cfg.rows_only) - set(names))
    if unknown or len(set(names)) != len(names):
        raise UsageError(f"rows_only names {unknown} not among the rows {names}" if unknown
                         else f"rows: names must be unique, got {names}")
    if not cfg.data.is_dir():
        raise FileNotFoundError(f"benchmark folder not found: {cfg.data}; build it with: {build_command(cfg.data)}")
    results = []
    for row in cfg.rows:
        if cfg.rows_only and row.name not in cfg.rows_only:
            continue
        record = train(cfg, cfg.out / "rows" / row.name, row.overrides, tests=False)
        results.append({"name": row.name, "overrides": row.overrides, "note": row.note, "wall_s": record["wall_s"],
                        "cells": validation_cells(record["metrics"])})
    winner = max(results, key=lambda r: r["cells"]["score"])
    report = {"rows": results, "chosen": winner["name"], "rule": "best selection_score (mean hier. hF Valid+valid2)"}
    text = ["## Options compared on validation splits only", "", markdown(results), "",
            f"Chosen on validation: **{winner['name']}** (`{' '.join(winner['overrides']) or 'base config'}`)."]
    if cfg.final and not cfg.rows_only:
        final = train(cfg, cfg.out / "final", winner["overrides"], tests=True)
        report["final"] = {"wall_s": final["wall_s"], "metrics_json": str(cfg.out / "final" / "metrics.json")}
        text += ["", f"The chosen option trained once more with the tests scored: `{cfg.out / 'final' / 'metrics.json'}`."]
    write_json(cfg.out / "ablation.json", report)
    write_text(cfg.out / "ablation.md", "\n".join(text) + "\n")
    print("\n".join(text))
    return report


if __name__ == "__main__":
    run(main, Config, __doc__)
