"""Train the paper's EC classifier (Table 4): a two-layer MLP on frozen DNA embeddings.

    python train_classifier.py --config configs/classifier/mini.yaml [benchmark=III encoder=kmer:6 pooling=cls out=DIR]

Features of every split are computed once under no_grad and cached (the reference code re-embedded
the data every epoch); the label map comes from the training split alone and is saved with the model;
the epoch with the best validation accuracy is kept. Outputs in ``out`` (written all at once):
``model/`` (safetensors + config with the label map), ``history.json``, ``predictions.tsv``
(split, id, true EC, predicted EC, score), ``metrics.json`` (layout in docs/classifier.md),
``tradeoff.json`` + ``tradeoff.png`` (hierarchy-aware decoding over a grid of thresholds).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import polars as pl
import yaml

from biotalk.cli import run
from biotalk.config import to_dict
from biotalk.data import load_benchmark
from biotalk.data.identity import gene_ids, identity_to_train
from biotalk.data.schema import TEST_SPLITS, Benchmark
from biotalk.embeddings import embed_cached, usable_poolings
from biotalk.hierarchy import decode_hierarchical, tradeoff
from biotalk.io import atomic_dir, write_json, write_text
from biotalk.metrics import score_genes
from biotalk.models.classifier import MLPConfig, fit_classifier, predict_proba
from biotalk.models.encoders import load_dna_encoder
from biotalk.reports import block_line
from biotalk.training import resolve_device

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@dataclass
class ClassifierConfig:
    data: Path = Path("out/mini-benchmark")  # output of scripts/build_benchmarks.py (or the published files)
    benchmark: Benchmark = "III"
    encoder: str = "kmer:6"  # anything load_dna_encoder takes: a LOLBERT directory, kmer:K, ...
    pooling: str = "cls"
    cache_dir: Path = Path("cache/embeddings")
    embed_batch_size: int = 64
    device: str = "auto"  # auto: cuda when available
    mlp: MLPConfig = field(default_factory=MLPConfig)
    tau: float = 0.0  # hierarchy-aware decoding threshold for predictions.tsv; 0 = the argmax class
    tau_grid: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99])
    out: Path = Path("runs/classifier/mini")


def split_features(cfg: ClassifierConfig, splits, device: str) -> dict[str, np.ndarray]:
    """Pooled embeddings of every split, computed once under no_grad and cached on disk by content."""
    encoder = load_dna_encoder(cfg.encoder).to(device).eval()
    pooling = usable_poolings(encoder, [cfg.pooling])[0]  # the k-mer spectrum has its own single pooling
    return {
        name: embed_cached(encoder, list(ds["Sequence"]), [pooling], cfg.cache_dir, tag=f"{cfg.benchmark}-{name}",
                           batch_size=cfg.embed_batch_size)[pooling]
        for name, ds in splits.items()
    }


def plot_tradeoff(curves: dict[str, list[dict]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 4))
    for split, rows in curves.items():
        ax.plot([r["hR"] for r in rows], [r["hP"] for r in rows], marker="o", label=split)
        for r in rows[:: max(1, len(rows) // 4)]:
            ax.annotate(f"{r['tau']:g}", (r["hR"], r["hP"]), fontsize=7, textcoords="offset points", xytext=(3, 3))
    ax.set(xlabel="hierarchical recall (micro)", ylabel="hierarchical precision (micro)",
           title="decoding threshold tau", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(cfg: ClassifierConfig) -> dict:
    device = resolve_device(cfg.device)
    splits = load_benchmark(cfg.data, benchmark=cfg.benchmark)
    features = split_features(cfg, splits, device)

    model, history = fit_classifier(
        features["train"], splits["train"]["EC"], features["valid"], splits["valid"]["EC"], cfg.mlp, device
    )

    metrics, curves, tables = {}, {}, []
    identity = identity_to_train(cfg.data, cfg.benchmark, splits, cache_dir=cfg.cache_dir)
    for split in TEST_SPLITS:
        true = list(splits[split]["EC"])
        probs = predict_proba(model, features[split])
        preds, scores = decode_hierarchical(probs, model.labels, cfg.tau)
        genes = gene_ids(splits[split])
        metrics[split] = score_genes(genes, true, preds, identity.get(split))
        curves[split] = tradeoff(probs, model.labels, true, cfg.tau_grid, genes)
        tables.append(pl.DataFrame({"split": split, "id": list(splits[split]["RecordId"]), "true_ec": true,
                                    "predicted_ec": preds,
                                    "score": [None if np.isnan(v) else float(v) for v in scores]},
                                   schema_overrides={"predicted_ec": pl.String, "score": pl.Float64}))

    with atomic_dir(cfg.out) as out:
        model.save_pretrained(out / "model")
        write_text(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        write_json(out / "history.json", history)
        pl.concat(tables).write_csv(out / "predictions.tsv", separator="\t", float_precision=6, null_value="")
        write_json(out / "metrics.json", metrics)
        write_json(out / "tradeoff.json", curves)
        plot_tradeoff(curves, out / "tradeoff.png")
    for split in TEST_SPLITS:
        print(f"{split}: {block_line(metrics[split])}")
    print(f"wrote {cfg.out}")
    return metrics


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(main, ClassifierConfig, __doc__)
