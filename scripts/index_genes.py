"""Build the gene index the web app searches: a collection of genes embedded with a trained BioTalk-CLIP.

    python scripts/index_genes.py --config configs/app/index_mini.yaml
    python scripts/index_genes.py --config configs/app/index_mini.yaml genes=my_genome.gbff out=runs/my_index

The genes are the splits of a built benchmark (``data``, ``benchmark``, ``splits``) or, with ``genes=FILE``,
every gene of a FASTA file (ECs read from "EC 1.2.3.4" in the headers) or every CDS of a GenBank file.
One vector per gene (a multi-EC gene is one row with all its ECs), exact search below ``ivf_min`` genes,
IVF beyond. The zero-shot EC candidates (every active ENZYME EC, or only the genes' ECs) are embedded too,
so the app can name the function of a pasted gene. The ENZYME release is the benchmark's (build.json) unless
``enzyme_dat``/``enzclass`` are given. Running it again with the same model, genes and settings does
nothing; anything else rebuilds the folder, and the app refuses an index built from other inputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from biotalk.cli import UsageError, run
from biotalk.data.schema import Benchmark, benchmark_enzyme
from biotalk.retrieval import benchmark_genes


@dataclass
class Config:
    model: Path = Path("runs/demo/clip/final")  # a BioTalkClipModel.save_pretrained directory
    out: Path = Path("runs/demo/gene_index")
    data: Path = Path("out/mini-benchmark")  # a built benchmark: the genes (unless genes=...) and its ENZYME release
    benchmark: Benchmark = "I"
    splits: list[str] = field(default_factory=lambda: ["train", "valid", "test1", "test2"])
    genes: Path | None = None  # a FASTA or GenBank file (gzipped or not) instead of the benchmark's splits
    enzyme_dat: Path | None = None  # ENZYME release for names and candidates; None: the one in data/build.json
    enzclass: list[Path] | None = None
    candidates: Literal["all", "genes"] = "all"  # ECs a pasted gene can be named with
    templates: list[int] = field(default_factory=lambda: [0])  # description templates averaged per candidate EC
    ivf_min: int = 1_000_000  # genes from which the index is IVF instead of exact
    nlist: int = 0  # IVF lists; 0: 4 sqrt(n)
    nprobe: int = 32  # IVF lists searched per query (the app may override)
    batch_size: int = 64
    cache_dir: str = "cache/retrieval"  # gene vectors and candidate text embeddings; '' = none
    force: bool = False  # rebuild even when the index is up to date
    seed: int = 0


def load_genes(cfg: Config) -> tuple[pl.DataFrame, list[Path], str]:
    """(genes, their source files, a name for people): the benchmark's splits or the given file."""
    from biotalk.app.sources import benchmark_files, file_genes

    if cfg.genes is not None:
        return file_genes(cfg.genes), [cfg.genes], cfg.genes.name
    genes = benchmark_genes(cfg.data, cfg.benchmark, cfg.splits)
    return genes, benchmark_files(cfg.data, cfg.benchmark, cfg.splits), f"Benchmark-{cfg.benchmark} {'+'.join(cfg.splits)}"


def main(cfg: Config) -> None:
    if not (cfg.model / "config.json").is_file() or not (cfg.model / "model.safetensors").is_file():
        raise UsageError(f"model: no trained BioTalk-CLIP in {cfg.model} (make demo writes one to runs/demo/clip/final)")
    if not cfg.templates or any(not 0 <= t < 10 for t in cfg.templates):
        raise UsageError(f"templates: expected template ids 0..9, got {cfg.templates}")
    start = time.time()
    genes, files, name = load_genes(cfg)
    empty = genes.filter(pl.col("Sequence").str.len_chars() == 0)
    genes = genes.filter(pl.col("Sequence").str.len_chars() > 0)
    db = benchmark_enzyme(cfg.data, cfg.enzyme_dat, cfg.enzclass)

    from biotalk.app.index import model_key, read_meta, source_files, write_index
    from biotalk.app.sources import candidate_ecs, candidate_table, ec_names
    from biotalk.cache import cache_key, digest_strings

    ecs = candidate_ecs(db, genes, cfg.candidates)
    names = ec_names(db, ecs + [ec for row in genes["ECs"] for ec in row])
    source = {"kind": "file" if cfg.genes else "benchmark", "name": name, "files": source_files(files),
              "benchmark": None if cfg.genes else cfg.benchmark, "splits": None if cfg.genes else cfg.splits}
    key = cache_key(model=model_key(cfg.model), source=source, candidates=digest_strings(ecs), templates=cfg.templates,
                    names=names, ivf=[cfg.ivf_min, cfg.nlist, cfg.nprobe], seed=cfg.seed)
    if not cfg.force and (cfg.out / "index.json").is_file() and read_meta(cfg.out).get("key") == key:
        print(f"{cfg.out}: up to date ({len(genes):,} genes, same model, genes and settings); force=true rebuilds")
        return

    from biotalk.models.clip import BioTalkClipModel
    from biotalk.retrieval import load_gene_index

    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else None
    model = BioTalkClipModel.from_pretrained(cfg.model)
    vectors = load_gene_index(model, cfg.model, genes, cache_dir, cfg.batch_size).embeddings
    cand_table, cand_vectors = candidate_table(model, db, ecs, cfg.templates, cache_dir)
    meta = write_index(cfg.out, vectors, genes, cand_table, cand_vectors, names,
                       {"key": key, "model_key": model_key(cfg.model), "model": str(cfg.model), "source": source,
                        "templates": cfg.templates, "candidate_set": cfg.candidates},
                       cfg.ivf_min, cfg.nlist, cfg.nprobe, cfg.seed)  # fmt: skip
    skipped = f", {len(empty)} without sequence skipped" if len(empty) else ""
    print(f"{cfg.out}: {meta['n']:,} genes ({name}{skipped}), {meta['kind']} index, {meta['candidates']:,} candidate "
          f"ECs, {time.time() - start:.0f} s\nopen the app: python scripts/app.py --config configs/app/mini.yaml "
          f"model={cfg.model} index={cfg.out}")


if __name__ == "__main__":
    run(main, Config, __doc__)
