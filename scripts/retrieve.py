"""Find genes by what they do: a free-text query against a gene collection, with a trained BioTalk-CLIP.

    python scripts/retrieve.py --config configs/clip/retrieve_mini.yaml model=runs/clip-mini/final \\
        query="breaks down hydrogen peroxide into water and oxygen" k=5

The collection (by default every split of a built benchmark, balancing duplicates left out) is embedded
once with the model's DNA tower and cached in ``cache_dir``; later queries embed only their text.
Prints the top ``k`` genes (score, EC, the EC's ENZYME name, organism, record id); ``out`` also writes
them as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from biotalk.cli import UsageError, run
from biotalk.data import load_benchmark
from biotalk.data.schema import Benchmark, benchmark_enzyme
from biotalk.io import write_json
from biotalk.models.clip import BioTalkClipModel
from biotalk.retrieval import load_gene_index, search


@dataclass
class Config:
    model: Path = Path("runs/clip-mini/final")  # a BioTalkClipModel.save_pretrained directory
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


def gene_table(cfg: Config) -> pl.DataFrame:
    """The genes of the chosen splits, each record once (balancing duplicates dropped)."""
    bench = load_benchmark(cfg.data, benchmark=cfg.benchmark)
    missing = [s for s in cfg.splits if s not in bench]
    if missing:
        raise UsageError(f"splits: {cfg.data} has no split(s) {missing}; it has {list(bench)}")
    frames = []
    for name in cfg.splits:
        df = bench[name].to_polars()
        if "IsDuplicate" in df.columns:
            df = df.filter(~pl.col("IsDuplicate"))
        frames.append(df.select("RecordId", "EC", "Organism", "Sequence").with_columns(pl.lit(name).alias("Split")))
    return pl.concat(frames).unique("RecordId", keep="first", maintain_order=True)


def main(cfg: Config) -> None:
    if not cfg.query.strip():
        raise UsageError('query: empty; give one, e.g. query="transfers a phosphate group from ATP to glucose"')
    if not (cfg.model / "config.json").is_file():
        raise UsageError(f"model: no trained BioTalk-CLIP in {cfg.model} (train_clip.py writes one to OUT/final)")
    model = BioTalkClipModel.from_pretrained(cfg.model)
    genes = gene_table(cfg)
    index = load_gene_index(model, cfg.model, genes, cfg.cache_dir or None, cfg.batch_size)
    hits = search(model, index, cfg.query, cfg.k, columns=("RecordId", "EC", "Organism", "Split"))
    db = benchmark_enzyme(cfg.data, cfg.enzyme_dat, cfg.enzclass)
    for hit in hits:
        entry = db.entry(hit["EC"])
        hit["Product"] = entry.name if entry else ""
    print(f"query: {cfg.query!r} ({len(genes)} genes)")
    print(f"{'rank':>4} {'score':>6}  {'EC':<12} {'product':<40} {'organism':<34} record")
    for h in hits:
        print(f"{h['rank']:>4} {h['score']:6.3f}  {h['EC']:<12} {h['Product'][:40]:<40} {h['Organism'][:34]:<34} {h['RecordId']}")
    if cfg.out:
        write_json(cfg.out, {"query": cfg.query, "model": str(cfg.model), "results": hits})


if __name__ == "__main__":
    run(main, Config, __doc__)
