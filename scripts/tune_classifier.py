"""Choose the MLP classifier's settings on Valid: a small grid, scored on the Valid split alone.

    python scripts/tune_classifier.py --config configs/classifier/tune_mini.yaml [benchmark=I encoder=kmer:6 out=DIR]

Trains ``train_classifier.py``'s MLP (its own functions: features, fitting, scoring) for every combination
of ``grid`` (``mlp`` holds the settings the grid leaves alone) on one benchmark and encoder, decodes the
argmax class (tau 0) and scores Valid per gene, beside the majority training class (a constant predictor's
score). Only ``Train`` and ``Valid`` of the benchmark are opened: no test split is read, so no test number
can steer the choice. The winner has the best Valid hF (ties: the earlier grid row; the grid lists the
paper's settings first) among the grid points that answer at least ``min_distinct`` different ECs on
Valid: a model that predicts one EC for every gene is the majority baseline, not a classifier; when every
point is constant, the best one wins. Writes ``out/tune.md`` (the table, Valid columns only, and the
winner) and ``out/tune.json``.
"""

from __future__ import annotations

import itertools
import logging
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from biotalk.baselines import majority_class
from biotalk.cli import run
from biotalk.config import to_dict
from biotalk.data.loader import load_tables
from biotalk.data.schema import Benchmark
from biotalk.hierarchy import decode_hierarchical
from biotalk.io import write_json, write_text
from biotalk.models.classifier import MLPConfig, fit_classifier, predict_proba
from biotalk.training import resolve_device

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # train_classifier.py lives at the repository root
from train_classifier import score_split, split_features  # noqa: E402

TUNED_SPLITS = ("train", "valid")  # the only splits this script opens


@dataclass
class GridConfig:
    """Values tried for each MLPConfig field; every combination is trained (order: the table's)."""

    standardize: list[bool] = field(default_factory=lambda: [False, True])
    lr: list[float] = field(default_factory=lambda: [1e-3, 3e-3])
    epochs: list[int] = field(default_factory=lambda: [10, 30, 100])
    hidden_size: list[int] = field(default_factory=lambda: [256])


@dataclass
class TuneConfig:
    data: Path = Path("out/mini-benchmark")
    benchmark: Benchmark = "III"
    encoder: str = "kmer:6"
    pooling: str = "cls"
    cache_dir: Path = Path("cache/embeddings")
    embed_batch_size: int = 64
    device: str = "auto"
    threads: int = 1  # torch CPU threads (the MLP is small; a busy machine runs it as fast on one)
    mlp: MLPConfig = field(default_factory=MLPConfig)  # the settings outside the grid (batch size, seed)
    grid: GridConfig = field(default_factory=GridConfig)
    min_distinct: int = 2  # a winner answers at least this many different ECs on Valid (1: no such rule)
    out: Path = Path("runs/classifier/tune-mini")


def grid_settings(grid: GridConfig) -> list[dict]:
    """Every combination of the grid's values, as MLPConfig overrides (the first field varies slowest)."""
    values = to_dict(grid)
    return [dict(zip(values, combo, strict=True)) for combo in itertools.product(*values.values())]


def kept_epoch(history: list[dict]) -> int:
    """The epoch fit_classifier keeps (best valid accuracy, then lower valid loss, then earlier)."""
    return max(history, key=lambda r: (r["valid_accuracy"], -r["valid_loss"], -r["epoch"]))["epoch"]


def pick_winner(rows: list[dict], min_distinct: int) -> dict:
    """Best Valid hF (the first of equals) among rows with ``min_distinct`` distinct predictions, else of all."""
    eligible = [r for r in rows if r["distinct_predictions"] >= min_distinct] or rows
    return min(eligible, key=lambda r: -r["hF"])


def _cell(value: bool | float) -> str:
    return str(value).lower() if isinstance(value, bool) else f"{value:g}"


def tune_table(rows: list[dict], winner: dict, majority: dict, cfg: TuneConfig) -> str:
    """Markdown: one line per grid point, Valid columns only, then the constant reference and the winner."""
    keys = list(to_dict(cfg.grid))
    lines = [f"Benchmark-{cfg.benchmark}, encoder {cfg.encoder}, Valid only ({rows[0]['n_genes']} genes), "
             "argmax decoding (tau 0)", "",
             "| " + " | ".join([*keys, "kept epoch", "Valid hP", "Valid hR", "Valid hF", "distinct predictions"]) + " |",
             "|" + "---|" * (len(keys) + 5)]
    for row in rows:
        mark = " **(winner)**" if row is winner else ""
        lines.append("| " + " | ".join([*(_cell(row[k]) for k in keys), str(row["kept_epoch"]), *(f"{row[m]:.4f}" for m in ("hP", "hR", "hF")),
                                         f"{row['distinct_predictions']}{mark}"]) + " |")
    chosen = ", ".join(f"{k}={_cell(winner[k])}" for k in keys)
    lines += ["", f"Winner rule: best Valid hF among rows with at least {cfg.min_distinct} distinct predictions "
                  "(ties: the earlier row; when none has, the best of all).",
              "", f"Reference: the majority training class ({majority['ec']}) for every gene scores Valid hF "
                  f"{majority['hF']:.4f}.",
              "", f"Winner: {chosen}; Valid hF {winner['hF']:.4f}, "
                  f"{winner['distinct_predictions']} distinct predictions."]
    return "\n".join(lines) + "\n"


def main(cfg: TuneConfig) -> dict:
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    splits = load_tables(cfg.data, cfg.benchmark, TUNED_SPLITS)  # the test files are never opened
    features = split_features(splits, cfg.encoder, cfg.pooling, cfg.cache_dir, cfg.benchmark,
                              cfg.embed_batch_size, device)
    rows = []
    for settings in grid_settings(cfg.grid):
        model, history = fit_classifier(features["train"], splits["train"]["EC"], features["valid"],
                                        splits["valid"]["EC"], replace(cfg.mlp, **settings), device)
        preds, _ = decode_hierarchical(predict_proba(model, features["valid"]), model.labels, 0.0)
        block = score_split(splits["valid"], preds)
        rows.append({**settings, "kept_epoch": kept_epoch(history), **block})
        logging.info("%s: Valid hF %.4f, %d distinct", settings, block["hF"], block["distinct_predictions"])
    winner = pick_winner(rows, cfg.min_distinct)
    constant = majority_class(splits["train"]["EC"], splits["train"]["IsDuplicate"])
    majority = {"ec": constant, **score_split(splits["valid"], [constant] * len(splits["valid"]))}
    table = tune_table(rows, winner, majority, cfg)
    result = {"config": to_dict(cfg), "split": "valid", "rows": rows, "majority": majority,
              "winner": {k: winner[k] for k in to_dict(cfg.grid)}}
    write_json(cfg.out / "tune.json", result)
    write_text(cfg.out / "tune.md", table)
    print(table)
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(main, TuneConfig, __doc__)
