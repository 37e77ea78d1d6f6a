"""Find genes by what they do: a free-text query against a gene collection, with a trained BioTalk-CLIP.

    python scripts/retrieve.py --config configs/clip/retrieve_mini.yaml \\
        query="breaks down hydrogen peroxide into water and oxygen" k=5

The model defaults to where ``make demo`` writes it (runs/demo/clip/final). The collection (by default every
split of a built benchmark, balancing duplicates left out) is embedded once per gene with the model's DNA
tower and cached in ``cache_dir``; later queries embed only their text. Prints the top ``k`` genes, each
once with all its ECs (score, ECs, the first EC's ENZYME name, organism, gene id); ``out`` also writes them
as JSON. The web app (``scripts/app.py``, docs/app.md) answers the same queries in a browser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from biotalk.cli import UsageError, run
from biotalk.data.schema import Benchmark, benchmark_enzyme
from biotalk.io import write_json
from biotalk.retrieval import GENE_COLUMNS, benchmark_genes, load_gene_index, search

DEMO_MODEL = Path("runs/demo/clip/final")


@dataclass
class Config:
    model: Path = DEMO_MODEL  # a BioTalkClipModel.save_pretrained directory (make demo writes this one)
    data: Path = Path("out/mini-benchmark")  # a built benchmark (load_benchmark)
    benchmark: Benchmark = "I"
    splits: list[str] = field(default_factory=lambda: ["train", "valid", "test1", "test2"])
    query: str = ""
    k: int = 5
    cache_dir: str = "cache/retrieval"  # '' = no index cache
    batch_size: int = 64
    enzyme_dat: Path | None = None  # ENZYME release for the EC names; None: the one in data/build.json
    enzclass: list[Path] | None = None
    out: str = ""  # optional JSON file for the results


def check_model(model: Path) -> None:
    """A missing or incomplete model folder is one line naming it and the command that writes it."""
    if not (model / "config.json").is_file() or not (model / "model.safetensors").is_file():
        raise UsageError(f"model: no trained BioTalk-CLIP in {model} (make demo writes one to {DEMO_MODEL}; "
                         "train_clip.py writes OUT/final)")


def main(cfg: Config) -> None:
    if not cfg.query.strip():
        raise UsageError('query: empty; give one, e.g. query="transfers a phosphate group from ATP to glucose"')
    if cfg.k < 1:
        raise UsageError(f"k: must be at least 1, got {cfg.k}")
    check_model(cfg.model)
    genes = benchmark_genes(cfg.data, cfg.benchmark, cfg.splits)
    db = benchmark_enzyme(cfg.data, cfg.enzyme_dat, cfg.enzclass)
    from biotalk.models.clip import BioTalkClipModel  # lazy: a failing command never pays for torch & co

    model = BioTalkClipModel.from_pretrained(cfg.model)
    index = load_gene_index(model, cfg.model, genes, cfg.cache_dir or None, cfg.batch_size)
    hits = search(model, index, cfg.query, cfg.k, columns=GENE_COLUMNS)
    for hit in hits:
        entries = [db.entry(ec) for ec in hit["ECs"]]
        hit["Names"] = [e.name if e else "" for e in entries]
    print(f"query: {cfg.query!r} ({len(genes)} genes)")
    print(f"{'rank':>4} {'score':>6}  {'EC':<20} {'name':<40} {'organism':<34} gene")
    for h in hits:
        print(f"{h['rank']:>4} {h['score']:6.3f}  {', '.join(h['ECs'])[:20]:<20} {h['Names'][0][:40]:<40} "
              f"{h['Organism'][:34]:<34} {h['GeneId']}")
    if cfg.out:
        write_json(cfg.out, {"query": cfg.query, "model": str(cfg.model), "results": hits})


if __name__ == "__main__":
    run(main, Config, __doc__)
