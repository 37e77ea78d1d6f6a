"""Train the paper's EC classifier (Table 4): a two-layer MLP on frozen DNA embeddings.

    python train_classifier.py --config configs/classifier/mini.yaml [benchmark=III encoder=kmer:6 pooling=cls out=DIR]

Features of every split are computed once under no_grad and cached (the reference code re-embedded
the data every epoch); the label map comes from the training split alone and is saved with the model;
the epoch with the best validation accuracy is kept. Valid is scored beside the test splits (the
settings are chosen there: scripts/tune_classifier.py), and every block counts its distinct predictions,
so a model that answers one EC for every gene shows. ``tau: -1`` takes the decoding threshold with the
best Valid hF. Outputs in ``out`` (written all at once): ``model/`` (safetensors + config with the label
map), ``history.json``, ``predictions.tsv`` (split, id, true EC, predicted EC, score), ``metrics.json``
(layout in docs/classifier.md), ``tradeoff.json`` + ``tradeoff.png`` (hierarchy-aware decoding over a grid
of thresholds).

``stream_dir=DIR`` trains without Train in memory (docs/scale.md): its EC and DNA columns are copied once to
a memory-mapped Arrow file, its features go to a sharded embedding store (resumable; under ``accelerate
launch`` each process embeds its own shards and the main process trains), labels are class ids read from the
mapped column, and every minibatch is gathered from the mapped store: the same model as in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import polars as pl
import yaml

from biotalk.cache import cache_key
from biotalk.cli import run
from biotalk.config import to_dict
from biotalk.data import load_benchmark
from biotalk.data.identity import gene_ids, identity_to_train
from biotalk.data.loader import split_file
from biotalk.data.schema import SPLITS, TEST_SPLITS, Benchmark
from biotalk.data.stream import folder_key
from biotalk.data.stream_features import MappedRows, ensure_rows
from biotalk.embed_store import StoredVectors, open_store, write_store
from biotalk.embeddings import embed_cached, embed_sequences, usable_poolings
from biotalk.hierarchy import best_tau, hierarchy_scores, threshold, tradeoff
from biotalk.io import atomic_dir, write_json, write_text
from biotalk.metrics import score_genes
from biotalk.models.classifier import MLPConfig, fit_classifier, fit_encoded, predict_proba
from biotalk.models.encoders import load_dna_encoder
from biotalk.reports import block_line
from biotalk.training import make_accelerator, resolve_device

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

EVAL_SPLITS = ("valid", *TEST_SPLITS)  # scored by every run; settings are chosen on "valid" alone


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
    tau: float = 0.0  # hierarchy-aware decoding threshold; 0 = the argmax class; < 0: the tau_grid value best on Valid
    tau_grid: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99])
    stream_dir: Path | None = None  # set: Train's rows and features stay on disk there, memory-mapped (docs/scale.md)
    shard_size: int = 65_536  # rows per shard of the streamed features
    out: Path = Path("runs/classifier/mini")


def split_features(splits: Mapping[str, object], encoder: str, pooling: str, cache_dir: Path, tag: str,
                   batch_size: int, device: str) -> dict[str, np.ndarray]:  # fmt: skip
    """Pooled embeddings of every split of ``splits`` (tables with a ``Sequence`` column), computed once
    under no_grad and cached on disk by content (cache names ``{tag}-{split}``)."""
    model = load_dna_encoder(encoder).to(device).eval()
    pooling = usable_poolings(model, [pooling])[0]  # the k-mer spectrum has its own single pooling
    return {
        name: embed_cached(model, list(rows["Sequence"]), [pooling], cache_dir, tag=f"{tag}-{name}",
                           batch_size=batch_size)[pooling]
        for name, rows in splits.items()
    }


def streamed_train(cfg: ClassifierConfig, device: str) -> tuple[StoredVectors, MappedRows] | None:
    """Train's features as a sharded store and its rows memory-mapped, both under ``cfg.stream_dir`` and
    reused while the data and encoder stay the same; None on a process other than the main one."""
    state = make_accelerator()  # one process, or the ones accelerate launch started (each embeds its shards)
    source = folder_key(cfg.data, cfg.benchmark)
    with state.main_process_first():
        rows = MappedRows(ensure_rows(split_file(cfg.data, cfg.benchmark, "train"), cfg.stream_dir / "train", source))
    model = load_dna_encoder(cfg.encoder).to(state.device if state.num_processes > 1 else device).eval()
    pooling = usable_poolings(model, [cfg.pooling])[0]
    key = cache_key(rows=source, encoder=model.fingerprint, max_tokens=model.max_tokens, pooling=pooling)
    root = cfg.stream_dir / f"features-{key[:16]}"
    write_store(root, rows.sequences, lambda seqs: embed_sequences(
        model, seqs, [pooling], cfg.embed_batch_size, progress=False)[pooling], key, cfg.shard_size)
    return (open_store(root, key), rows) if state.is_main_process else None


class TrainOnDemand(dict):
    """Loaded splits that read Train only if asked for it: identity bins search it when the build stored none."""

    def __init__(self, splits: Mapping[str, object], cfg: ClassifierConfig) -> None:
        super().__init__(splits)
        self.cfg = cfg

    def __missing__(self, name: str) -> object:
        return load_benchmark(self.cfg.data, self.cfg.benchmark, splits=[name])[name]


def distinct_predictions(preds: Sequence[str | None]) -> int:
    """How many different ECs (or partial EC nodes) a model answers: 1 is a constant predictor."""
    return len({p for p in preds if p is not None})


def score_split(rows, preds: Sequence[str | None], identity: Sequence[float | None] | None = None) -> dict:
    """The metric block of one split (genes as samples, ``score_genes``) plus ``distinct_predictions``."""
    block = score_genes(gene_ids(rows), list(rows["EC"]), preds, identity)
    return {**block, "distinct_predictions": distinct_predictions(preds)}


def choose_tau(tau: float, valid_curve: list[dict]) -> tuple[float, str]:
    """The decoding threshold and where it came from: the config's, or (``tau < 0``) the best Valid hF."""
    return (float(tau), "config") if tau >= 0 else (best_tau(valid_curve), "valid")


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
    streamed = cfg.stream_dir is not None
    if streamed and (train := streamed_train(cfg, device)) is None:
        return {}  # another process of accelerate launch: it embedded its shards, the main one goes on
    splits = load_benchmark(cfg.data, benchmark=cfg.benchmark, splits=EVAL_SPLITS if streamed else SPLITS)
    features = split_features(splits, cfg.encoder, cfg.pooling, cfg.cache_dir, cfg.benchmark,
                              cfg.embed_batch_size, device)

    if streamed:
        store, rows = train
        labels = rows.labels()
        model, history = fit_encoded(store, rows.class_ids(labels), labels, features["valid"],
                                     labels.encode(splits["valid"]["EC"]), cfg.mlp, device)
        splits = TrainOnDemand(splits, cfg)  # identity bins search Train only when the build did not store them
    else:
        model, history = fit_classifier(
            features["train"], splits["train"]["EC"], features["valid"], splits["valid"]["EC"], cfg.mlp, device
        )

    identity = identity_to_train(cfg.data, cfg.benchmark, splits, cache_dir=cfg.cache_dir)  # test splits only
    nodes, curves = {}, {}
    for split in EVAL_SPLITS:
        probs = predict_proba(model, features[split])
        nodes[split] = hierarchy_scores(probs, model.labels)
        curves[split] = tradeoff(probs, model.labels, list(splits[split]["EC"]), cfg.tau_grid, gene_ids(splits[split]))
    tau, tau_from = choose_tau(cfg.tau, curves["valid"])
    metrics, tables = {"tau": tau, "tau_from": tau_from}, []
    for split in EVAL_SPLITS:
        preds, scores = threshold(*nodes[split], tau)
        metrics[split] = score_split(splits[split], preds, identity.get(split))
        tables.append(pl.DataFrame({"split": split, "id": list(splits[split]["RecordId"]),
                                    "true_ec": list(splits[split]["EC"]), "predicted_ec": preds,
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
    print(f"tau {tau:g} (from {tau_from})")
    for split in EVAL_SPLITS:
        print(f"{split}: {block_line(metrics[split])}; {metrics[split]['distinct_predictions']} distinct predictions")
    print(f"wrote {cfg.out}")
    return metrics


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(main, ClassifierConfig, __doc__)
