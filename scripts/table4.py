"""Table 4: EC classification on every benchmark and test split, the MLP on each encoder beside the baselines.

    python scripts/table4.py --config configs/classifier/table4_mini.yaml [benchmarks=[III,IV] encoders=[kmer:6]]

Rows: Benchmarks I-IV x Test-I/II x {MLP on each encoder, 1-NN label transfer on each encoder, homology
transfer (MMseqs2), majority class}, all scored by the same metrics (micro hP/hR/hF, accuracy,
coverage). The paper's numbers (MLP on fine-tuned LOLBERT, computed with a broken metric on other data)
sit in their own column and are not comparable. An encoder that cannot be loaded (weights missing)
is skipped with a warning. Writes ``out/table4.md`` and ``out/table4.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biotalk.baselines import homology_transfer, majority_class, nearest_neighbour_transfer
from biotalk.cli import run
from biotalk.config import to_dict
from biotalk.data import load_benchmark
from biotalk.data.identity import gene_ids, identity_to_train, proteins
from biotalk.data.schema import TEST_SPLITS, Benchmark
from biotalk.embeddings import embed_cached, usable_poolings
from biotalk.hierarchy import decode_hierarchical
from biotalk.io import write_json, write_text
from biotalk.metrics import score_genes
from biotalk.models.classifier import MLPConfig, fit_classifier, predict_proba
from biotalk.models.encoders import DNAEncoder, load_dna_encoder
from biotalk.reports import PAPER_TABLE4, table4
from biotalk.training import resolve_device

log = logging.getLogger("table4")


@dataclass
class HomologyConfig:
    max_evalue: float = 1e-5
    sensitivity: float = 5.7
    threads: int = 2


@dataclass
class Table4Config:
    data: Path = Path("out/mini-benchmark")
    benchmarks: list[Benchmark] = field(default_factory=lambda: ["I", "II", "III", "IV"])
    encoders: list[str] = field(default_factory=lambda: ["kmer:6", "models/lolbert-mini"])
    pooling: str = "cls"  # encoders with a single pooling (the k-mer spectrum) use theirs
    cache_dir: Path = Path("cache/embeddings")
    embed_batch_size: int = 64
    device: str = "auto"
    mlp: MLPConfig = field(default_factory=MLPConfig)
    homology: HomologyConfig = field(default_factory=HomologyConfig)
    out: Path = Path("runs/table4/mini")


Scorer = Callable[[str, list], dict]


def gene_scorer(splits, identity: dict[str, list]) -> Scorer:
    """The metric block of one test split's predictions: genes as samples (multi-EC genes scored against all
    their ECs), binned by each gene's identity to the benchmark's training proteins."""
    return lambda split, preds: score_genes(gene_ids(splits[split]), splits[split]["EC"], preds, identity.get(split))


def baseline_rows(splits, cfg: Table4Config, score: Scorer) -> list[dict]:
    train = splits["train"]
    majority = majority_class(train["EC"], train["IsDuplicate"])
    queries = {split: proteins(splits[split]) for split in TEST_SPLITS}
    found, _ = homology_transfer(queries["test1"] + queries["test2"], proteins(train), train["EC"],
                                 cfg.homology.max_evalue, cfg.homology.threads, cfg.homology.sensitivity)
    homology = {"test1": found[: len(queries["test1"])], "test2": found[len(queries["test1"]) :]}
    rows = []
    for split in TEST_SPLITS:
        n = len(splits[split])
        rows.append({"split": split, "method": f"majority class ({majority})", "encoder": None,
                     **score(split, [majority] * n)})
        rows.append({"split": split, "method": f"homology transfer (MMseqs2, e <= {cfg.homology.max_evalue:g})",
                     "encoder": None, **score(split, homology[split])})
    return rows


def encoder_rows(splits, encoder: DNAEncoder, name: str, cfg: Table4Config, device: str, score: Scorer) -> list[dict]:
    pooling = usable_poolings(encoder, [cfg.pooling])[0]
    feats = {split: embed_cached(encoder, list(ds["Sequence"]), [pooling], cfg.cache_dir, tag=split,
                                 batch_size=cfg.embed_batch_size)[pooling]
             for split, ds in splits.items()}
    model, _ = fit_classifier(feats["train"], splits["train"]["EC"], feats["valid"], splits["valid"]["EC"],
                              cfg.mlp, device)
    rows = []
    for split in TEST_SPLITS:
        mlp_preds, _ = decode_hierarchical(predict_proba(model, feats[split]), model.labels, 0.0)
        nn_preds = nearest_neighbour_transfer(feats["train"], splits["train"]["EC"], feats[split])
        rows.append({"split": split, "method": "MLP (z-scored features)" if cfg.mlp.standardize else "MLP",
                     "encoder": f"{name} ({pooling})",
                     **score(split, mlp_preds)})
        rows.append({"split": split, "method": "1-NN label transfer", "encoder": f"{name} ({pooling})",
                     **score(split, nn_preds)})
    return rows


def main(cfg: Table4Config) -> dict:
    device = resolve_device(cfg.device)
    encoders, skipped = {}, []
    for name in cfg.encoders:
        try:
            encoders[name] = load_dna_encoder(name).to(device).eval()
        except (OSError, ValueError) as err:
            log.warning("skipping encoder %s: %s", name, err)
            skipped.append({"encoder": name, "reason": str(err)})
    rows = []
    for bench in cfg.benchmarks:
        splits = load_benchmark(cfg.data, benchmark=bench)
        score = gene_scorer(splits, identity_to_train(cfg.data, bench, splits, cfg.homology.threads, cfg.cache_dir))
        found = baseline_rows(splits, cfg, score)
        for name, encoder in encoders.items():
            found += encoder_rows(splits, encoder, name, cfg, device, score)
        found.sort(key=lambda r: r["split"])  # stable: within a split, baselines then encoders
        rows += [{"benchmark": bench, **r} for r in found]
        log.info("Benchmark-%s done", bench)
    paper = {f"{b}/{s}": dict(zip(("hP", "hR", "hF"), v, strict=True)) for (b, s), v in PAPER_TABLE4.items()}
    result = {"config": to_dict(cfg), "rows": rows, "skipped_encoders": skipped, "paper_mlp_finetuned_lolbert": paper}
    write_json(cfg.out / "table4.json", result)
    write_text(cfg.out / "table4.md", table4(rows))
    print(table4(rows))
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    np.seterr(all="ignore")
    run(main, Table4Config, __doc__)
