"""One command for every table of the paper, on the embedded mini data (or your own built benchmark).

    python scripts/reproduce.py [--config FILE] [key=value ...]      # or: make reproduce

Table 1 (benchmark sizes), Tables 2-3 (kNN hierarchical precision, silhouette), Table 4 (MLP and
baselines), Table 5 (LLM prompting), plus the CLIP model the paper did not have. Each step runs the
project's own command line and writes into ``out/<step>``; ``REPORT.md`` collects the tables. Steps are
skipped when their output exists (delete it or pass ``force=true``), so a killed run resumes where it stopped.
The paper's numbers stand in separate columns: they come from different (full-scale) data and are not comparable.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from biotalk import cli
from biotalk.io import write_text
from biotalk.reports import clip_summary, table1


@dataclass
class Config:
    out: Path = Path("runs/reproduce")
    benchmark: Path = Path("out/mini-benchmark")  # strict split rules (the default build): every table uses it
    paper_benchmark: Path = Path("out/mini-paper")  # the paper's split rules, built for Table 1's comparison only
    seed: int = 0
    pretrain: bool = True  # false: use the shipped models/lolbert-mini instead of pretraining anew (~30 min)
    shipped_lolbert: Path = Path("models/lolbert-mini")
    llm_limit: int = 40  # records per test set in each Table 5 cell; 0 = all
    force: bool = False
    steps: list[Literal["table1", "lolbert", "finetune", "tables23", "table4", "clip", "hybrid", "table5"]] = field(
        default_factory=lambda: ["table1", "lolbert", "finetune", "tables23", "table4", "clip", "hybrid", "table5"]
    )


def run(name: str, done: Path, args: list[str], force: bool) -> None:
    """Run one step unless its ``done`` marker output exists."""
    if done.exists() and not force:
        print(f"=== {name}: already done ({done})", flush=True)
        return
    print(f"\n=== {name}: {' '.join(args)}", flush=True)
    start = time.time()
    if subprocess.run([sys.executable, *args]).returncode != 0:
        print(f"error: step '{name}' failed; rerun to resume from it", file=sys.stderr)
        raise SystemExit(1)
    print(f"=== {name} done in {time.time() - start:.0f} s", flush=True)


def main(cfg: Config) -> None:
    if not cfg.pretrain and not (cfg.shipped_lolbert / "config.json").is_file():
        raise cli.UsageError(f"shipped_lolbert: no LOLBERT model in {cfg.shipped_lolbert} (or set pretrain=true)")
    out, force = cfg.out, cfg.force
    lolbert = out / "lolbert" / "final" if cfg.pretrain else cfg.shipped_lolbert
    finetuned = out / "lolbert-finetuned" / "model"
    encoders = f"[kmer:4,kmer:6,{lolbert},{finetuned}]"
    report = ["# BioTalk tables on the mini benchmark", ""]

    if "table1" in cfg.steps:
        run("Table 1: build the benchmark", cfg.benchmark / "stats.json",
            ["scripts/build_benchmarks.py", "--config", "configs/data/mini.yaml", f"out={cfg.benchmark}", f"seed={cfg.seed}"], force)
        run("Table 1: the paper-rule build, for comparison", cfg.paper_benchmark / "stats.json",
            ["scripts/build_benchmarks.py", "--config", "configs/data/mini_paper.yaml", f"out={cfg.paper_benchmark}",
             f"seed={cfg.seed}"], force)
        stats, paper = (json.loads((d / "stats.json").read_text()) for d in (cfg.benchmark, cfg.paper_benchmark))
        report += ["## Table 1 (records / classes), strict rules: every other table uses this build", "", table1(stats),
                   "", f"Dataset card: `{cfg.benchmark}/README.md`.", "",
                   "## Table 1, the paper's split rules (for comparison only)", "", table1(paper), ""]
    if "lolbert" in cfg.steps and cfg.pretrain:
        run("LOLBERT pretraining", lolbert / "config.json",
            ["scripts/pretrain_lolbert.py", "--config", "configs/lolbert/mini.yaml", f"out={out / 'lolbert'}",
             f"heldout_benchmark={cfg.benchmark}", "resume=latest", f"seed={cfg.seed}"], force)
    if "finetune" in cfg.steps:
        run("LOLBERT fine-tuning", finetuned / "config.json",
            ["scripts/finetune_lolbert.py", "--config", "configs/lolbert/finetune_mini.yaml", f"model={lolbert}",
             f"data={cfg.benchmark}", f"out={out / 'lolbert-finetuned'}", f"seed={cfg.seed}"], force)
    if "tables23" in cfg.steps:
        run("Tables 2-3", out / "tables23" / "tables.md",
            ["scripts/eval_embeddings.py", "--config", "configs/eval/mini.yaml", f"data={cfg.benchmark}",
             f"encoders={encoders}", f"out={out / 'tables23'}"], force)
        report += ["## Tables 2 and 3", "", (out / "tables23" / "tables.md").read_text(), ""]
    if "table4" in cfg.steps:
        run("Table 4", out / "table4" / "table4.md",
            ["scripts/table4.py", "--config", "configs/classifier/table4_mini.yaml", f"data={cfg.benchmark}",
             f"encoders=[kmer:6,{lolbert},{finetuned}]", f"out={out / 'table4'}"], force)
        report += ["## Table 4", "", (out / "table4" / "table4.md").read_text(), ""]
    if "clip" in cfg.steps:
        run("BioTalk-CLIP", out / "clip" / "metrics.json",
            ["train_clip.py", "--config", "configs/clip/mini.yaml", f"data.path={cfg.benchmark}", f"out={out / 'clip'}",
             f"seed={cfg.seed}"], force)
        metrics = json.loads((out / "clip" / "metrics.json").read_text())
        table4_json = out / "table4" / "table4.json"
        rows = json.loads(table4_json.read_text())["rows"] if table4_json.is_file() else []
        same = [r for r in rows if r["benchmark"] == metrics["config"]["data"]["benchmark"] and r["encoder"] is None]
        report += ["## BioTalk-CLIP (zero-shot over every ENZYME EC), beside the Table 4 baselines of its benchmark", "",
                   f"Epoch {metrics['selected']['epoch']} chosen on Valid/valid2 (`eval.select: best`).", "",
                   clip_summary(metrics, same), ""]
    if "hybrid" in cfg.steps:
        run("Homology hybrid", out / "hybrid" / "hybrid.md",
            ["scripts/hybrid.py", "--config", "configs/clip/hybrid_mini.yaml", f"model={out / 'clip' / 'final'}",
             f"data={cfg.benchmark}", f"out={out / 'hybrid'}"], force)
        report += ["## Homology hybrid (MMseqs2 hit at least t identical, else BioTalk-CLIP; t chosen on Valid/valid2)",
                   "", (out / "hybrid" / "hybrid.md").read_text(), ""]
    if "table5" in cfg.steps:
        run("Table 5", out / "table5" / "table5.md",
            ["scripts/table5.py", "--config", "configs/llm/table5_mini.yaml", f"llm.data={cfg.benchmark}",
             f"llm.seed={cfg.seed}", f"limits.test1={cfg.llm_limit}", f"limits.test2={cfg.llm_limit}",
             f"out={out / 'table5'}"], force)
        report += ["## Table 5 (LLM prompting, per-gene hierarchical metrics, baselines on the same records)", "",
                   (out / "table5" / "table5.md").read_text(), ""]

    write_text(out / "REPORT.md", "\n".join(report))
    print(f"\nwrote {out / 'REPORT.md'}")


if __name__ == "__main__":
    cli.run(main, Config, __doc__)
