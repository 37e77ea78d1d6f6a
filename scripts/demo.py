"""The main job on the embedded mini data: build the benchmark, train BioTalk-CLIP, print its scores beside
the majority-class and MMseqs2 homology baselines on the same test splits.

    python scripts/demo.py [--config configs/demo.yaml] [key=value ...]

Each step runs the project's own command line, so the demo exercises exactly what a user runs. LOLBERT is
not the default DNA tower of the mini CLIP config: on the mini data a 6-mer spectrum tower learns far better
(docs/clip.md). ``pretrain_steps=N`` runs a short LOLBERT pretraining and trains CLIP on it instead
(``configs/clip/mini_lolbert.yaml``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from biotalk import cli
from biotalk.reports import clip_summary


@dataclass
class Config:
    benchmark_out: Path = Path("out/mini-benchmark")
    clip_config: Path = Path("configs/clip/mini.yaml")
    clip_out: Path = Path("runs/demo/clip")
    pretrain_steps: int = 0  # > 0: pretrain a LOLBERT-mini for this many steps and use it as the DNA tower
    seed: int = 0


def run(step: str, args: list[str]) -> None:
    """Run one project command; stop the demo with its exit code if it fails."""
    print(f"\n=== {step}: {' '.join(args)}", flush=True)
    start = time.time()
    result = subprocess.run([sys.executable, *args])
    if result.returncode != 0:
        print(f"error: step '{step}' failed with exit code {result.returncode}", file=sys.stderr)
        raise SystemExit(result.returncode)
    print(f"=== {step} done in {time.time() - start:.0f} s", flush=True)


def main(cfg: Config) -> None:
    if not cfg.clip_config.is_file():
        raise cli.UsageError(f"clip_config: file not found: {cfg.clip_config} (see configs/clip/)")
    start = time.time()
    run("build the mini benchmark", ["scripts/build_benchmarks.py", "--config", "configs/data/mini.yaml",
                                     f"out={cfg.benchmark_out}", f"seed={cfg.seed}"])
    clip_args = ["--config", str(cfg.clip_config)]
    if cfg.pretrain_steps > 0:
        pretrain_out = cfg.clip_out.parent / "lolbert"
        run("pretrain LOLBERT-mini", ["scripts/pretrain_lolbert.py", "--config", "configs/lolbert/mini.yaml",
                                      f"steps={cfg.pretrain_steps}", f"out={pretrain_out}", f"seed={cfg.seed}",
                                      f"heldout_benchmark={cfg.benchmark_out}"])
        clip_args = ["--config", "configs/clip/mini_lolbert.yaml", f"model.dna_encoder={pretrain_out / 'final'}"]
    run("train BioTalk-CLIP", ["train_clip.py", *clip_args, f"data.path={cfg.benchmark_out}",
                               f"out={cfg.clip_out}", f"seed={cfg.seed}"])
    metrics = json.loads((cfg.clip_out / "metrics.json").read_text())
    benchmark = metrics["config"]["data"]["benchmark"]
    baselines_out = cfg.clip_out.parent / "baselines"
    run("baselines on the same splits", ["scripts/table4.py", "--config", "configs/classifier/table4_mini.yaml",
                                         f"data={cfg.benchmark_out}", f"benchmarks=[{benchmark}]", "encoders=[]",
                                         f"out={baselines_out}"])
    baselines = json.loads((baselines_out / "table4.json").read_text())["rows"]
    print(f"\nBioTalk-CLIP on the mini benchmark (Benchmark-{benchmark}, epoch {metrics['selected']['epoch']} chosen "
          f"on Valid/valid2), {time.time() - start:.0f} s in all:\n")
    print(clip_summary(metrics, baselines))
    model = cfg.clip_out / "final"
    run("one text query", ["scripts/retrieve.py", "--config", "configs/clip/retrieve_mini.yaml", f"model={model}",
                           f"data={cfg.benchmark_out}", "query=breaks down hydrogen peroxide into water and oxygen"])
    index = cfg.clip_out.parent / "gene_index"
    print(f"\nThe gene search app (index once, a few minutes on a laptop CPU, then serve on 127.0.0.1:8000):\n"
          f"  python scripts/index_genes.py --config configs/app/index_mini.yaml model={model} "
          f"data={cfg.benchmark_out} out={index}\n"
          f"  python scripts/app.py --config configs/app/mini.yaml model={model} index={index}")


if __name__ == "__main__":
    cli.run(main, Config, __doc__)
