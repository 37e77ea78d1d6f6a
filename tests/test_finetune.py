"""LOLBERT fine-tuning for EC classification on the real mini benchmark (tiny random LOLBERT)."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from fixtures.scripts import load_script
from transformers import AutoTokenizer, RobertaForSequenceClassification

from biotalk.config import load_config
from biotalk.data import load_benchmark
from biotalk.ec import LabelMap
from biotalk.models.encoders import load_dna_encoder

ROOT = Path(__file__).resolve().parents[1]


finetune = load_script("scripts/finetune_lolbert.py")


def test_eval_windows_tile_the_whole_gene():
    seq = "".join(np.random.default_rng(0).choice(list("ACGT"), 1234))
    wins = finetune.eval_windows(seq, 500, "mean")
    assert [len(w) for w in wins] == [500, 500, 500]
    assert wins[0] == seq[:500] and wins[1] == seq[500:1000] and wins[2] == seq[-500:]
    assert finetune.eval_windows(seq, 500, "first") == [seq[:500]]
    assert finetune.eval_windows("ACGT", 500, "mean") == ["ACGT"]
    rng = np.random.default_rng(1)
    for _ in range(20):
        w = finetune.random_window(seq, 100, rng)
        assert len(w) == 100 and w in seq
    with pytest.raises(ValueError, match="eval_windows"):
        finetune.eval_windows(seq, 500, "max")


@pytest.fixture(scope="module")
def finetuned(mini_benchmark, tiny_lolbert, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft")
    cfg = load_config(
        finetune.FinetuneConfig,
        ROOT / "configs/lolbert/finetune_mini.yaml",
        [f"model={tiny_lolbert}", f"data={mini_benchmark}", "benchmark=III", f"out={out}", "epochs=2",
         "max_steps_per_epoch=2", "batch_size=8", "max_nt=120", "eval_windows=mean", "threads=1",
         "keep_checkpoints=2"],
    )  # fmt: skip
    return cfg, finetune.main(cfg)


def test_label_map_comes_from_the_training_split(finetuned, mini_benchmark):
    cfg, metrics = finetuned
    data = load_benchmark(mini_benchmark, "III")
    train_ecs, valid_ecs = set(data["train"]["EC"]), list(data["valid"]["EC"])
    model = RobertaForSequenceClassification.from_pretrained(cfg.out / "model")
    assert model.config.num_labels == len(train_ecs) == metrics["n_labels"]
    # the MLP's label map: the same classes in the one EC order (biotalk.ec.LabelMap)
    assert [model.config.id2label[i] for i in range(model.config.num_labels)] == list(LabelMap.from_ecs(train_ecs).labels)
    assert all(model.config.id2label[i] == ec for ec, i in model.config.label2id.items())
    valid = metrics["history"][0]["valid"]
    assert valid["unseen_ec"] == sum(ec not in train_ecs for ec in valid_ecs)
    assert {"hP", "hR", "hF", "macro", "accuracy", "level_accuracy", "coverage", "n"} <= set(valid)
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    saved = json.loads((cfg.out / "metrics.json").read_text())
    assert saved["best_valid_accuracy"] == metrics["best_valid_accuracy"]


def test_saved_model_reproduces_its_validation_predictions(finetuned, mini_benchmark):
    cfg, metrics = finetuned
    valid = load_benchmark(mini_benchmark, "III")["valid"]
    model = RobertaForSequenceClassification.from_pretrained(cfg.out / "model")
    tok = AutoTokenizer.from_pretrained(cfg.out / "model")
    logits = finetune.predict_logits(model, tok, list(valid["Sequence"]), cfg.max_nt, cfg.eval_windows, 16)
    saved = pl.read_parquet(cfg.out / "valid_predictions.parquet")
    assert saved["RecordId"].to_list() == list(valid["RecordId"])
    predicted = [model.config.id2label[i] for i in logits.argmax(1)]
    assert saved["Predicted"].to_list() == predicted
    np.testing.assert_allclose(saved["Logit"].to_numpy(), logits.max(1), rtol=1e-5, atol=1e-6)
    accuracy = float(np.mean(np.array(predicted) == np.array(valid["EC"])))
    assert accuracy == metrics["best_valid_accuracy"]


def test_finetuned_dir_loads_as_an_encoder(finetuned):
    cfg, _ = finetuned
    encoder = load_dna_encoder(cfg.out / "model")
    classifier = RobertaForSequenceClassification.from_pretrained(cfg.out / "model").eval()
    batch = encoder.tokenize(["ACGTTGCAAGT", "acgtnn"])
    with torch.no_grad():
        hidden = encoder(batch["input_ids"], batch["attention_mask"])
        expected = classifier.roberta(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    torch.testing.assert_close(hidden, expected.last_hidden_state)


def test_resume_after_an_epoch_reproduces_the_uninterrupted_run(finetuned, tmp_path):
    cfg, metrics = finetuned
    assert sorted(p.name for p in (cfg.out / "checkpoints").iterdir()) == ["step_2", "step_4"]  # one per epoch
    log = [json.loads(line) for line in (cfg.out / "train_log.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["step"]) for r in log] == [(1, 2), (2, 4)]
    out = tmp_path / "resumed"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copytree(cfg.out / "checkpoints" / "step_2", out / "checkpoints" / "step_2")  # stopped after epoch 1
    resumed = finetune.main(replace(cfg, out=out, resume="latest"))
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert resumed["history"] == metrics["history"]
