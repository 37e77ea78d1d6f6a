"""Choose the zero-shot description templates of a trained BioTalk-CLIP model on validation splits only.

    python scripts/tune_zero_shot.py model=runs/clip-mini/final [data=out/mini-benchmark benchmark=I ...]

Each candidate EC is described by the masked ENZYME text of one template, or by the mean of several
(``biotalk.clip_eval``). Every template set of ``template_sets`` is scored on Valid (seen ECs) and valid2
(unseen ECs) with the model's own decoding rules, and ranked by ``selection_score`` (mean hierarchical hF
of the two); Test-I and Test-II are never scored. Writes ``out/zero_shot_templates.{md,json}``; pass the
winner to ``train_clip.py`` as ``eval.zero_shot_templates``.
"""

from __future__ import annotations

import biotalk  # noqa: F401  (first: sets the offline Hugging Face environment before any HF import)

# isort: split
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm

from biotalk.cli import UsageError, run
from biotalk.clip_eval import ClipEvalConfig, evaluate, selection_score, zero_shot_candidates
from biotalk.data import load_benchmark
from biotalk.data.clip_data import clip_split
from biotalk.data.identity import gene_ids
from biotalk.data.schema import ZERO_SHOT_VALID, Benchmark, benchmark_enzyme
from biotalk.io import write_json, write_text
from biotalk.models.clip import BioTalkClipModel

VALIDATION = ("valid", ZERO_SHOT_VALID)


@dataclass
class Config:
    model: Path = Path("runs/clip-mini/final")  # a train_clip.py final/ (save_pretrained) directory
    data: Path = Path("out/mini-benchmark")
    benchmark: Benchmark = "I"
    text_column: str = "DescriptionMasked"
    enzyme_dat: Path | None = None  # candidates' ENZYME release; None: the one in data/build.json
    enzclass: list[Path] | None = None
    template_sets: list[list[int]] = field(
        default_factory=lambda: [[t] for t in range(10)] + [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]
    )
    eval: ClipEvalConfig = field(default_factory=ClipEvalConfig)
    cache_dir: str = "cache/clip"
    out: Path = Path("runs/tune-zero-shot")


def markdown(rows: list[dict]) -> str:
    lines = ["| templates | Valid hF (nearest) | Valid hF (hier.) | valid2 hF (nearest) | valid2 hF (hier.) | score |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        cells = [f"{r[k]:.4f}" for k in ("valid_nearest", "valid_hier", "valid2_nearest", "valid2_hier", "score")]
        lines.append(f"| {r['templates']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(cfg: Config) -> dict:
    if not (cfg.model / "config.json").is_file():
        raise UsageError(f"model: no trained CLIP model in {cfg.model} (run train_clip.py first)")
    bench = load_benchmark(cfg.data, benchmark=cfg.benchmark, splits=("train", *VALIDATION))  # tests: never read
    if ZERO_SHOT_VALID not in bench:
        raise UsageError(f"data: {cfg.data} has no valid2 split (strict builds only): nothing to choose on")
    splits = {name: clip_split(bench[name], f"{cfg.data}:{name}", cfg.text_column) for name in bench}
    model = BioTalkClipModel.from_pretrained(cfg.model)
    db = benchmark_enzyme(cfg.data, cfg.enzyme_dat, cfg.enzclass)
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else None
    genes = {name: gene_ids(bench[name]) for name in bench}
    rows = []
    for templates in tqdm(cfg.template_sets, desc="template sets"):
        result = evaluate(model, splits, list(VALIDATION), None, splits["train"],
                          zero_shot_candidates(db, templates), replace(cfg.eval, zero_shot_templates=templates),
                          cache_dir=cache_dir, genes=genes, knn=False)  # fmt: skip
        zs, zh = result["zero_shot"], result["zero_shot_hierarchical"]
        rows.append({"templates": templates, "valid_nearest": zs["valid"]["hF"], "valid_hier": zh["valid"]["hF"],
                     "valid2_nearest": zs[ZERO_SHOT_VALID]["hF"], "valid2_hier": zh[ZERO_SHOT_VALID]["hF"],
                     "tau": zh["tau"], "score": selection_score(result)})
    best = max(rows, key=lambda r: r["score"])  # the first listed among equals
    table = markdown(rows)
    write_text(cfg.out / "zero_shot_templates.md", f"{table}\n\nChosen on validation: templates {best['templates']}\n")
    write_json(cfg.out / "zero_shot_templates.json", {"rows": rows, "chosen": best["templates"], "model": str(cfg.model)})
    print(f"{table}\n\nchosen on Valid/valid2: eval.zero_shot_templates={best['templates']}")
    return best


if __name__ == "__main__":
    run(main, Config, __doc__)
