"""The homology hybrid of a saved CLIP model: MMseqs2 transfer from a hit at least ``t`` identical, else the model.

    python scripts/hybrid.py --config configs/clip/hybrid_mini.yaml [model=runs/clip-mini/final grid=[0.5,1.01]]

Two phases, in this order: (1) Train, Valid and valid2 only (the test files are not opened): the model's tau
and the hybrid's ``t`` with its fallback tau are chosen there (for Test-I on Valid, for Test-II on valid2);
(2) the test splits scored once with those choices. Rows per split: homology alone, the model alone, the hybrid,
with hF per stratum of identity to training. Writes ``OUT/hybrid.json`` and ``OUT/hybrid.md``.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))  # table4.py beside this file

from table4 import HomologyConfig  # noqa: E402  (the homology baseline's settings, as in Table 4)

from biotalk.cli import run  # noqa: E402
from biotalk.clip_eval import ClipEvalConfig, tau_source, zero_shot_candidates
from biotalk.config import to_dict
from biotalk.data.identity import gene_ids, identity_to_train, proteins
from biotalk.data.loader import load_tables
from biotalk.data.schema import TEST_SPLITS, ZERO_SHOT_VALID, Benchmark, benchmark_enzyme
from biotalk.hybrid import (
    DEFAULT_GRID,
    Homology,
    ModelPredictor,
    SplitData,
    best_hit_homology,
    choose_threshold,
    combine,
)
from biotalk.io import write_json, write_text
from biotalk.metrics import score_genes
from biotalk.models.clip import BioTalkClipModel
from biotalk.reports import IDENTITY_HEAD, fmt, identity_cells

log = logging.getLogger("hybrid")
VALIDATION = ("valid", ZERO_SHOT_VALID)
NAMES = {"valid": "Valid", ZERO_SHOT_VALID: "valid2", "test1": "Test-I", "test2": "Test-II"}


@dataclass
class HybridConfig:
    model: Path = Path("runs/clip-mini/final")  # a saved BioTalk-CLIP directory
    data: Path = Path("out/mini-benchmark")
    benchmark: Benchmark = "I"
    decode: Literal["hierarchical", "nearest"] = "hierarchical"  # the model's prediction
    grid: list[float] = field(default_factory=lambda: list(DEFAULT_GRID))  # t values; > 1: the model alone
    eval: ClipEvalConfig = field(default_factory=ClipEvalConfig)  # templates, tau grid, batch size
    homology: HomologyConfig = field(default_factory=HomologyConfig)
    cache_dir: str = "cache/clip"  # candidate text features ('' = none)
    out: Path = Path("runs/hybrid/mini")


def split_data(rows: pl.DataFrame) -> SplitData:
    return SplitData(gene_ids(rows), rows["EC"].to_list(), rows["Sequence"].to_list(), proteins(rows))


def predict(cfg: HybridConfig, predictor: ModelPredictor, train: SplitData, splits: dict[str, SplitData],
            names: list[str]) -> dict[str, dict]:
    """Homology (one MMseqs2 search for all ``splits``) and the model's predictions of each split."""
    queries = [p for split in splits.values() for p in split.proteins]
    h = cfg.homology
    found = best_hit_homology(queries, train.proteins, train.ecs, h.max_evalue, h.threads, h.sensitivity)
    out, start = {}, 0
    for name, split in splits.items():
        end = start + len(split.proteins)
        homology = Homology(found.ecs[start:end], found.identity[start:end])
        model, fallbacks = predictor.predict(name, split, names)
        out[name] = {"homology": homology, "model": model, "fallbacks": fallbacks}
        start = end
    return out


def score_rows(name: str, split: SplitData, parts: dict, t: float, tau: float | None, identity: list | None
               ) -> list[dict]:
    """Homology alone, the model alone and the hybrid at (``t``, fallback ``tau``) on one split."""
    label = f"hybrid (t = {t:g}" + (f", fallback tau = {tau:g})" if tau is not None else ")")
    methods = {"homology transfer (MMseqs2)": parts["homology"].ecs, "CLIP model": parts["model"],
               label: combine(parts["homology"], parts["fallbacks"][tau], t)}
    return [{"split": name, "method": method, **score_genes(split.genes, split.ecs, preds, identity)}
            for method, preds in methods.items()]


def report(tuning: dict[str, list[dict]], rows: list[dict]) -> str:
    """Markdown: the threshold grid on the validation splits, then every split's rows with identity strata."""
    names = list(tuning)
    head = ["t", *(f"{NAMES[n]} hF (tau; from hits)" for n in names)]
    lines = ["Choice of t (validation splits only):", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, row in enumerate(tuning[names[0]]):
        cells = [f"{r['hF']:.4f} ({r['tau']}; {r['homology_share']:.2f})" for r in (tuning[n][i] for n in names)]
        lines.append(f"| {row['t']:g} | " + " | ".join(cells) + " |")
    head = ["split", "method", "hP", "hR", "hF", "coverage", *IDENTITY_HEAD]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([NAMES[r["split"]], r["method"], fmt(r["hP"]), fmt(r["hR"]), fmt(r["hF"]),
                                 f"{r['coverage']:.3f}", *identity_cells(r)]) + " |" for r in rows]
    return "\n".join(lines) + "\n"


@dataclass
class Chosen:
    """What phase 1 leaves for the tests: the splits read, their predictions, the grid rows and each split's t."""

    tables: dict[str, pl.DataFrame]
    splits: dict[str, SplitData]
    parts: dict[str, dict]
    tuning: dict[str, list[dict]]
    t: dict[str, float]
    tau: dict[str, float | None]  # the fallback's decoding threshold


def choose(cfg: HybridConfig, predictor: ModelPredictor) -> Chosen:
    """Phase 1 (Train, Valid, valid2; no test file is opened): the model's tau and each split's t."""
    tables = load_tables(cfg.data, cfg.benchmark, ["train", *VALIDATION])
    splits = {name: split_data(rows) for name, rows in tables.items()}
    valid = {name: splits[name] for name in VALIDATION if name in splits}
    names = [*valid, *TEST_SPLITS]
    parts = predict(cfg, predictor, splits["train"], valid, names)
    tuning, chosen, taus = {}, {}, {}
    for name, split in valid.items():
        chosen[name], taus[name], tuning[name] = choose_threshold(split, parts[name]["homology"],
                                                                  parts[name]["fallbacks"], cfg.grid)
    for test in TEST_SPLITS:
        chosen[test], taus[test] = chosen[tau_source(test, names)], taus[tau_source(test, names)]
    log.info("t chosen on validation: %s; fallback tau: %s", chosen, taus)
    return Chosen(tables, splits, parts, tuning, chosen, taus)


def main(cfg: HybridConfig) -> dict:
    model = BioTalkClipModel.from_pretrained(cfg.model)
    candidates = zero_shot_candidates(benchmark_enzyme(cfg.data), cfg.eval.zero_shot_templates)
    predictor = ModelPredictor(model, candidates, cfg.eval, cfg.decode == "hierarchical",
                               Path(cfg.cache_dir) if cfg.cache_dir else None)
    chosen = choose(cfg, predictor)
    # -- phase 2: the test splits, scored once with the choices of phase 1 ------------------------------------
    tables = chosen.tables | load_tables(cfg.data, cfg.benchmark, list(TEST_SPLITS))
    splits = chosen.splits | {name: split_data(tables[name]) for name in TEST_SPLITS}
    names = [name for name in splits if name != "train"]
    parts = chosen.parts | predict(cfg, predictor, splits["train"], {t: splits[t] for t in TEST_SPLITS}, names)
    identity = identity_to_train(cfg.data, cfg.benchmark, tables, cfg.homology.threads)
    rows = [row for name in names for row in score_rows(name, splits[name], parts[name], chosen.t[name],
                                                        chosen.tau[name], identity.get(name))]
    result = {"config": to_dict(cfg), "chosen_t": chosen.t, "fallback_tau": chosen.tau, "model_tau": predictor.taus,
              "tuning": chosen.tuning, "rows": rows}
    write_json(cfg.out / "hybrid.json", result)
    write_text(cfg.out / "hybrid.md", report(chosen.tuning, rows))
    print(report(chosen.tuning, rows))
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(main, HybridConfig, __doc__)
