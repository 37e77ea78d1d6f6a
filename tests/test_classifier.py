"""The EC classifier: label map, training, hierarchy-aware decoding, train_classifier.py end to end, and the
Valid-only tuning of scripts/tune_classifier.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml
from fixtures.scripts import load_script

from biotalk.config import load_config
from biotalk.data import load_benchmark
from biotalk.data.identity import gene_ids
from biotalk.ec import LabelMap
from biotalk.hierarchy import best_tau, decode_hierarchical, tradeoff
from biotalk.metrics import score_genes, score_predictions
from biotalk.models.classifier import ECClassifier, MLPConfig, fit_classifier, predict_proba

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/classifier/mini.yaml"
TUNE_CONFIG = ROOT / "configs/classifier/tune_mini.yaml"
CLASSES = ["1.2.3.4", "1.2.3.10", "1.2.4.1", "1.10.1.1", "2.7.7.7"]


def _separable(ecs: list[str], n_per_class: int, seed: int, dim: int = 16) -> tuple[np.ndarray, list[str]]:
    """Features where each class owns one axis: a correct model predicts every record right."""
    rng = np.random.default_rng(seed)
    labels = [ec for ec in ecs for _ in range(n_per_class)]
    x = rng.normal(scale=0.3, size=(len(labels), dim)).astype(np.float32)
    for row, ec in enumerate(labels):
        x[row, CLASSES.index(ec) if ec in CLASSES else 0] += 3.0
    return x, labels


def test_the_model_classes_are_the_label_map_of_its_training_split():
    ecs = ["3.5.1.n10", "1.10.1.1", " 1.2.3.10", "EC 1.2.3.4", "2.7.7.7", "3.5.1.n3"]
    x = np.eye(len(ecs), dtype=np.float32).repeat(3, axis=0)
    y = [ec for ec in ecs for _ in range(3)]
    model, _ = fit_classifier(x, y, x, y, MLPConfig(epochs=1, batch_size=4))
    assert model.labels == list(LabelMap.from_ecs(y).labels)
    assert model.labels == ["1.2.3.4", "1.2.3.10", "1.10.1.1", "2.7.7.7", "3.5.1.n3", "3.5.1.n10"]


def test_test_labels_align_with_training_map_and_unseen_classes_score_wrong():
    """The reference code rebuilt label indices per CSV: a test set holding only some classes, in another
    order, got other indices, and an unseen class could take a seen class's index and count as correct."""
    x_train, y_train = _separable(CLASSES, 30, seed=0)
    x_valid, y_valid = _separable(CLASSES, 5, seed=1)
    model, _ = fit_classifier(x_train, y_train, x_valid, y_valid, MLPConfig(epochs=15, batch_size=16))
    # test split: two seen classes in reverse order, then an unseen class whose features mimic class index 0
    x_seen, y_seen = _separable(["2.7.7.7", "1.2.4.1"], 10, seed=2)
    x_unseen, _ = _separable(["1.2.3.4"], 10, seed=3)
    y_unseen = ["3.1.1.1"] * 10
    preds, _ = decode_hierarchical(predict_proba(model, np.vstack([x_seen, x_unseen])), model.labels, tau=0.0)
    assert preds[:20] == y_seen  # indices decoded through the training map, not a per-split one
    assert all(p == "1.2.3.4" for p in preds[20:])  # the model's real answer for the look-alikes...
    scores = score_predictions(y_unseen, preds[20:])
    assert scores["accuracy"] == 0.0 and scores["hP"] == 0.0  # ...is wrong for a class it never saw


def test_fit_is_deterministic_under_the_seed_and_keeps_the_label_map(tmp_path):
    x, y = _separable(CLASSES, 20, seed=0)
    xv, yv = _separable(CLASSES, 4, seed=1)
    cfg = MLPConfig(epochs=3, batch_size=8, seed=7, standardize=True)
    a, hist_a = fit_classifier(x, y, xv, yv, cfg)
    b, hist_b = fit_classifier(x, y, xv, yv, cfg)
    c, _ = fit_classifier(x, y, xv, yv, MLPConfig(epochs=3, batch_size=8, seed=8))
    assert hist_a == hist_b
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.net[0].weight, c.net[0].weight)
    a.save_pretrained(tmp_path)
    loaded = ECClassifier.from_pretrained(tmp_path)
    assert loaded.labels == list(LabelMap.from_ecs(y).labels)
    np.testing.assert_array_equal(predict_proba(loaded, xv), predict_proba(a, xv))


def test_best_validation_epoch_is_kept():
    x, y = _separable(CLASSES, 20, seed=0)
    xv, yv = _separable(CLASSES, 4, seed=1)
    model, history = fit_classifier(x, y, xv, yv, MLPConfig(epochs=6, batch_size=8))
    best = max(history, key=lambda r: (r["valid_accuracy"], -r["valid_loss"]))
    preds, _ = decode_hierarchical(predict_proba(model, xv), model.labels, 0.0)
    assert score_predictions(yv, preds)["accuracy"] == pytest.approx(best["valid_accuracy"])


def test_decoding_extremes_and_partial_nodes():
    labels = CLASSES
    probs = np.array([[0.30, 0.30, 0.20, 0.10, 0.10],  # 1.2.3.* holds 0.6, 1.2.* 0.8, 1.* 0.9
                      [0.05, 0.05, 0.05, 0.05, 0.80]])
    full, score = decode_hierarchical(probs, labels, tau=0.0)
    assert full == ["1.2.3.4", "2.7.7.7"] and score.tolist() == [0.30, 0.80]
    assert decode_hierarchical(probs, labels, tau=0.5)[0] == ["1.2.3.-", "2.7.7.7"]
    assert decode_hierarchical(probs, labels, tau=0.75)[0] == ["1.2.-.-", "2.7.7.7"]
    assert decode_hierarchical(probs, labels, tau=0.85)[0] == ["1.-.-.-", None]
    none, none_score = decode_hierarchical(probs, labels, tau=1.01)
    assert none == [None, None] and np.isnan(none_score).all()


def test_decoding_on_random_probabilities_is_argmax_at_zero_and_monotone_in_tau():
    rng = np.random.default_rng(0)
    labels = ["1.1.1.1", "1.1.1.2", "1.1.2.1", "1.2.1.1", "2.1.1.1", "2.1.1.3", "3.5.1.n3"]
    probs = rng.dirichlet(np.full(len(labels), 0.5), size=200)
    preds, scores = decode_hierarchical(probs, labels, 0.0)
    assert preds == [labels[i] for i in probs.argmax(1)]
    np.testing.assert_allclose(scores, probs.max(1))
    rows = tradeoff(probs, labels, [labels[i] for i in rng.integers(0, len(labels), 200)], [0, 0.3, 0.6, 0.9, 1.5])
    depths = [r["mean_depth"] for r in rows]
    assert depths == sorted(depths, reverse=True) and depths[0] == 4 and depths[-1] == 0
    assert rows[-1]["coverage"] == 0 and rows[-1]["hR"] == 0
    for tau in (0.3, 0.6):
        preds, scores = decode_hierarchical(probs, labels, tau)
        for row, (pred, score) in enumerate(zip(preds, scores, strict=True)):
            if pred is None:
                continue
            prefix = pred.replace(".-", "")
            members = [i for i, ec in enumerate(labels) if (ec + ".").startswith(prefix + ".")]
            assert score == pytest.approx(probs[row, members].sum()) and score >= tau


def _run(mini_benchmark, tmp_path, name: str, *overrides: str, epochs: int | None = 3) -> Path:
    script = load_script("train_classifier.py")
    out = tmp_path / name
    short = [] if epochs is None else [f"mlp.epochs={epochs}"]  # None: the config's own settings
    cfg = load_config(script.ClassifierConfig, CONFIG, [f"data={mini_benchmark}", f"out={out}",
                                                 f"cache_dir={tmp_path / 'cache'}", *short, *overrides])
    script.main(cfg)
    return out


def test_train_classifier_end_to_end_is_seeded_aligned_and_well_formed(mini_benchmark, tmp_path):
    first = _run(mini_benchmark, tmp_path, "a", "mlp.standardize=true")
    second = _run(mini_benchmark, tmp_path, "b", "mlp.standardize=true")
    assert (first / "predictions.tsv").read_bytes() == (second / "predictions.tsv").read_bytes()
    assert (first / "metrics.json").read_text() == (second / "metrics.json").read_text()

    metrics = json.loads((first / "metrics.json").read_text())
    assert set(metrics) == {"tau", "tau_from", "valid", "test1", "test2"}
    assert (metrics["tau"], metrics["tau_from"]) == (0.0, "config")
    block_keys = {"hP", "hR", "hF", "macro", "accuracy", "level_accuracy", "coverage", "n", "n_genes",
                  "distinct_predictions"}
    assert set(metrics["valid"]) == block_keys  # identity to train is stored for the test splits only
    for split in ("test1", "test2"):
        assert set(metrics[split]) == block_keys | {"by_identity"}
    for block in (metrics[s] for s in ("valid", "test1", "test2")):
        assert set(block["macro"]) == {"hP", "hR", "hF"} and len(block["level_accuracy"]) == 4
        assert all(0.0 <= block[k] <= 1.0 for k in ("hP", "hR", "hF", "accuracy", "coverage"))
    splits = load_benchmark(mini_benchmark, "III")
    model = ECClassifier.from_pretrained(first / "model")
    assert model.labels == list(LabelMap.from_ecs(splits["train"]["EC"]).labels)
    # Test-II ECs are absent from every training split: no index accident can make one right
    assert not set(splits["test2"]["EC"]) & set(model.labels)
    assert metrics["test2"]["accuracy"] == 0.0 and metrics["test2"]["level_accuracy"][3] == 0.0

    table = pl.read_csv(first / "predictions.tsv", separator="\t")
    assert table.columns == ["split", "id", "true_ec", "predicted_ec", "score"]
    assert table.height == len(splits["valid"]) + len(splits["test1"]) + len(splits["test2"])
    for split in ("valid", "test1", "test2"):  # the distinct count is the table's, split by split
        preds = table.filter(pl.col("split") == split)["predicted_ec"].drop_nulls()
        assert metrics[split]["distinct_predictions"] == preds.n_unique()
    valid = table.filter(pl.col("split") == "valid")
    assert valid["id"].to_list() == list(splits["valid"]["RecordId"])
    valid_genes = score_genes(gene_ids(splits["valid"]), valid["true_ec"].to_list(), valid["predicted_ec"].to_list())
    assert valid_genes["hF"] == pytest.approx(metrics["valid"]["hF"])
    test1 = table.filter(pl.col("split") == "test1")
    assert test1["id"].to_list() == list(splits["test1"]["RecordId"])
    assert set(test1["predicted_ec"]) <= set(model.labels)  # tau = 0: full training classes only
    per_gene = score_genes(gene_ids(splits["test1"]), test1["true_ec"].to_list(), test1["predicted_ec"].to_list())
    assert per_gene["accuracy"] == pytest.approx(metrics["test1"]["accuracy"])

    curves = json.loads((first / "tradeoff.json").read_text())
    assert [r["tau"] for r in curves["test1"]] == yaml.safe_load(CONFIG.read_text())["tau_grid"]
    assert curves["test1"][0]["hP"] == pytest.approx(metrics["test1"]["hP"])
    assert (first / "tradeoff.png").stat().st_size > 0


def test_a_threshold_above_one_predicts_nothing(mini_benchmark, tmp_path):
    out = _run(mini_benchmark, tmp_path, "abstain", "tau=1.5", "mlp.epochs=1")
    table = pl.read_csv(out / "predictions.tsv", separator="\t")
    assert table["predicted_ec"].null_count() == table.height and table["score"].null_count() == table.height
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test1"]["coverage"] == 0.0 and metrics["test1"]["hR"] == 0.0


def test_tau_minus_one_is_chosen_on_valid_and_decodes_every_split(mini_benchmark, tmp_path):
    out = _run(mini_benchmark, tmp_path, "tau", "tau=-1", "mlp.standardize=true")
    metrics = json.loads((out / "metrics.json").read_text())
    curves = json.loads((out / "tradeoff.json").read_text())
    assert metrics["tau_from"] == "valid"
    assert metrics["tau"] == best_tau(curves["valid"])  # the Valid curve's best hF, whatever Test-I would pick
    chosen = next(r for r in curves["valid"] if r["tau"] == metrics["tau"])
    assert chosen["hF"] == max(r["hF"] for r in curves["valid"])
    assert metrics["valid"]["hF"] == pytest.approx(chosen["hF"])
    for split in ("test1", "test2"):  # the test splits are decoded at Valid's tau, not at their own best
        row = next(r for r in curves[split] if r["tau"] == metrics["tau"])
        assert metrics[split]["hF"] == pytest.approx(row["hF"])
        assert metrics[split]["coverage"] == pytest.approx(row["coverage"])


def test_the_default_config_does_not_predict_one_ec_for_every_valid_gene(mini_benchmark, tmp_path):
    """The paper's plain MLP on k-mer spectra answered one EC for everything; the default is the Valid winner."""
    out = _run(mini_benchmark, tmp_path, "default", epochs=None)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["valid"]["distinct_predictions"] > 1
    assert metrics["test1"]["distinct_predictions"] > 1


def _tune(data: Path, out: Path, tmp_path: Path, *overrides: str) -> dict:
    script = load_script("scripts/tune_classifier.py")
    cfg = load_config(script.TuneConfig, TUNE_CONFIG, [f"data={data}", f"out={out}", f"cache_dir={tmp_path / 'cache'}",
                                                       "grid.epochs=[2]", "grid.lr=[1.0e-3]", *overrides])
    return script.main(cfg)


def test_tuning_reads_train_and_valid_only(mini_benchmark, tmp_path):
    """A benchmark folder holding nothing but Benchmark-III Train and Valid: the tuner runs as on the full
    build, so it never opened a test split (the full loader fails on that folder)."""
    bare = tmp_path / "train-valid-only"
    (bare / "Benchmark-III").mkdir(parents=True)
    for name in ("Train.parquet", "Valid.parquet"):
        shutil.copy(mini_benchmark / "Benchmark-III" / name, bare / "Benchmark-III" / name)
    with pytest.raises(FileNotFoundError):
        load_benchmark(bare, "III")
    bare_result = _tune(bare, tmp_path / "bare", tmp_path)
    full_result = _tune(mini_benchmark, tmp_path / "full", tmp_path)
    assert bare_result["rows"] == full_result["rows"] and bare_result["winner"] == full_result["winner"]

    rows = bare_result["rows"]
    assert [(r["standardize"], r["lr"], r["epochs"]) for r in rows] == [(False, 1e-3, 2), (True, 1e-3, 2)]
    n_valid_genes = len(set(gene_ids(load_benchmark(mini_benchmark, "III")["valid"])))
    assert all(r["n_genes"] == n_valid_genes and r["distinct_predictions"] >= 1 for r in rows)
    table = (tmp_path / "bare" / "tune.md").read_text()
    assert "Valid hF" in table and "**(winner)**" in table
    assert not any(word in table.lower() for word in ("test", "test1", "test2"))  # Valid columns only
    saved = json.loads((tmp_path / "bare" / "tune.json").read_text())
    assert saved["split"] == "valid" and saved["winner"] == bare_result["winner"]


def test_a_model_answering_one_ec_cannot_win_the_tuning():
    script = load_script("scripts/tune_classifier.py")
    rows = [{"hF": 0.30, "distinct_predictions": 1}, {"hF": 0.20, "distinct_predictions": 5},
            {"hF": 0.20, "distinct_predictions": 9}]
    assert script.pick_winner(rows, min_distinct=2) is rows[1]  # the constant model is out; ties: the earlier
    assert script.pick_winner(rows, min_distinct=1) is rows[0]
    assert script.pick_winner(rows[:1], min_distinct=2) is rows[0]  # all constant: the best of them
