"""train_clip.py end to end on a small benchmark written in the real file layout: metrics, resume, and
two real processes (accelerate launch, gloo) training exactly like one process with the same global batch.

Towers: a seeded random tiny LOLBERT without dropout (so runs can be compared step by step) and the real
all-MiniLM-L6-v2, frozen with cached embeddings. ENZYME is a subset of the real 2018 release.
"""

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from transformers import RobertaForMaskedLM

from biotalk.clip_eval import (
    ClipEvalConfig,
    candidate_vectors,
    epoch_subset,
    evaluate,
    knn_scores,
    nodes_tradeoff,
    zero_shot_candidates,
    zero_shot_decode,
    zero_shot_probs,
)
from biotalk.data import load_benchmark
from biotalk.data.clip_data import clip_split
from biotalk.data.describe import describe_ec
from biotalk.data.enzyme import load_enzyme
from biotalk.hierarchy import hierarchy_scores, tradeoff
from biotalk.models.clip import BioTalkClipModel
from biotalk.models.lolbert import LolbertArch, build_lolbert_tokenizer, roberta_config

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw" / "expasy_enzyme"
ENZYME_DAT, ENZCLASS = RAW / "enzyme_2018-09-12.dat.gz", RAW / "enzclass_2018-09-12.txt.gz"
SEEN = ["1.1.1.1", "2.7.1.1", "3.4.21.4", "4.2.1.1", "5.3.1.9", "6.3.2.4", "1.11.1.6", "2.3.1.9"]
UNSEEN = ["3.1.1.3", "1.2.1.12", "4.1.1.49", "2.7.7.7"]
ZERO_SHOT_VALID = ["1.1.1.37", "2.7.4.3"]  # valid2: in no training set and not in Test-II
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def _enzyme_subset(path: Path, ecs: list[str]) -> None:
    """The real ENZYME entries of ``ecs`` in the release's own format (a small candidate set)."""
    blocks = gzip.open(ENZYME_DAT, "rt").read().split("//\n")
    keep = [b for b in blocks if any(f"ID   {ec}\n" in b for ec in ecs)]
    assert len(keep) == len(ecs)
    path.write_text("".join(b + "//\n" for b in keep))


def _records(ecs: list[str], per_ec: int, db, rng, tag: str) -> pl.DataFrame:
    rows = []
    for ec in ecs:
        for i in range(per_ec):
            seq = "ATG" + "".join(rng.choice(list("ACGT"), int(rng.integers(150, 300))))
            text = describe_ec(ec, db, template_id=i % 10, masked=True)
            rows.append({"EmblCdsId": f"{tag}{ec}-{i}", "EC": ec, "Sequence": seq, "Description": text,
                         "DescriptionMasked": text})
    return pl.DataFrame(rows)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("clip")
    db = load_enzyme(ENZYME_DAT, ENZCLASS)
    rng = np.random.default_rng(0)
    bench = root / "bench"
    (bench / "Benchmark-III").mkdir(parents=True)
    (bench / "Test").mkdir()
    _records(SEEN, 6, db, rng, "tr").write_parquet(bench / "Benchmark-III" / "Train.parquet")
    _records(SEEN, 1, db, rng, "va").write_parquet(bench / "Benchmark-III" / "Valid.parquet")
    _records(SEEN, 2, db, rng, "t1").write_parquet(bench / "Test" / "test1.parquet")
    _records(UNSEEN, 2, db, rng, "t2").write_parquet(bench / "Test" / "test2.parquet")
    _records(ZERO_SHOT_VALID, 2, db, rng, "v2").write_parquet(bench / "Test" / "valid2.parquet")
    _enzyme_subset(root / "enzyme.dat", SEEN + UNSEEN + ZERO_SHOT_VALID)
    torch.manual_seed(0)
    arch = LolbertArch(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    RobertaForMaskedLM(roberta_config(arch)).save_pretrained(root / "lolbert")
    build_lolbert_tokenizer().save_pretrained(root / "lolbert")
    return {"root": root, "bench": bench, "args": [
        f"data.path={bench}", "data.benchmark=III", f"data.enzyme_dat={root / 'enzyme.dat'}",
        f"data.enzclass=[{ENZCLASS}]", f"model.dna_encoder={root / 'lolbert'}", f"cache_dir={root / 'cache'}",
        "model.projection_dim=16", "model.window_nt=60", "optim.batch_size=8", "optim.epochs=2", "optim.lr=0.001",
        "optim.warmup_steps=2", "trackers=[]", "eval.batch_size=16", "eval.knn_k=[1,3]",
    ]}


def _run(setup, out: str, *extra: str, launcher: list[str] | None = None) -> Path:
    out_dir = setup["root"] / out
    cmd = [*(launcher or [sys.executable]), str(ROOT / "train_clip.py"), f"out={out_dir}", *setup["args"], *extra]
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return out_dir


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def single(setup) -> Path:
    return _run(setup, "single", "checkpoint_every=3", "keep_checkpoints=5")


def test_metrics_layout_and_ranges(single):
    metrics = json.loads((single / "metrics.json").read_text())
    for direction in ("dna_to_text", "text_to_dna"):
        r = metrics["retrieval"][direction]
        assert 0 <= r["R@1"] <= r["R@5"] <= r["R@10"] <= 1
    for split in ("test1", "test2"):
        zs = metrics["zero_shot"][split]
        assert {"hP", "hR", "hF"} <= set(zs) and all(0 <= zs[k] <= 1 for k in ("hP", "hR", "hF"))
        assert set(metrics["knn"][split]) == {"k=1", "k=3"}
        assert metrics["knn"][split]["k=1"] <= metrics["knn"][split]["k=3"]  # more neighbours, best overlap
    # Hierarchical zero-shot: each split's tau is the best of the grid on its validation analogue (Valid for
    # seen ECs, valid2 for unseen ones); tau = 0 is the nearest EC.
    zh, curves = metrics["zero_shot_hierarchical"], metrics["zero_shot_tradeoff"]
    assert zh["tau_from"] == {"valid": "valid", "valid2": "valid2", "test1": "valid", "test2": "valid2"}
    for name in ("valid", "valid2"):
        assert zh[name]["hF"] == pytest.approx(max(r["hF"] for r in curves[name]))
    assert zh["tau"]["test1"] == zh["tau"]["valid"] and zh["tau"]["test2"] == zh["tau"]["valid2"]
    for split in ("valid", "valid2", "test1", "test2"):
        by_tau = {r["tau"]: r for r in curves[split]}
        assert by_tau[0.0]["hF"] == pytest.approx(metrics["zero_shot"][split]["hF"]) and by_tau[0.0]["mean_depth"] == 4
        assert zh[split]["hF"] == pytest.approx(by_tau[zh["tau"][split]]["hF"])
    # The epoch with the best validation score is the one evaluated and saved: its Valid blocks recur exactly.
    chosen = next(h for h in metrics["history"] if h["epoch"] == metrics["selected"]["epoch"])
    assert metrics["selected"]["selection_score"] == max(h["selection_score"] for h in metrics["history"])
    assert chosen["selection_score"] == pytest.approx((chosen["zero_shot_hierarchical"]["valid"]["hF"]
                                                       + chosen["zero_shot_hierarchical"]["valid2"]["hF"]) / 2)
    for name in ("valid", "valid2"):
        assert metrics["zero_shot"][name] == chosen["zero_shot"][name]
    # Test-II ECs never occur in training: zero-shot still names them from their ENZYME descriptions.
    assert metrics["zero_shot"]["test2"]["unseen_ec_records"] == len(UNSEEN) * 2
    assert [h["epoch"] for h in metrics["history"]] == [0, 1]
    log = _log(single)
    assert [r["step"] for r in log] == list(range(1, 13))  # 48 records / 8 = 6 steps, 2 epochs
    assert log[-1]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine schedule ends at zero
    assert BioTalkClipModel.from_pretrained(single / "final").config.projection_dim == 16


def test_knn_row_uses_the_learned_shared_space(setup, single):
    """The kNN row is the saved model's shared-space DNA vectors (train genes as the index), not the raw tower's."""
    metrics = json.loads((single / "metrics.json").read_text())
    model = BioTalkClipModel.from_pretrained(single / "final")
    bench = load_benchmark(setup["bench"], benchmark="III")
    train, test1 = (clip_split(bench[name], name) for name in ("train", "test1"))
    learned = knn_scores(model.get_dna_features(train.sequences).numpy(), train.ecs,
                         model.get_dna_features(test1.sequences).numpy(), test1.ecs, [1, 3])
    assert learned == pytest.approx(metrics["knn"]["test1"], abs=1e-9)
    assert model.get_dna_features(train.sequences).shape == (len(train), 16)  # the head's space, not the tower's 32


def _evaluation_inputs(setup, single) -> dict:
    model = BioTalkClipModel.from_pretrained(single / "final")
    bench = load_benchmark(setup["bench"], benchmark="III")
    splits = {name: clip_split(bench[name], name) for name in bench}
    candidates = zero_shot_candidates(load_enzyme(setup["root"] / "enzyme.dat", ENZCLASS), [0])
    return {"model": model, "splits": splits, "candidates": candidates}


def test_zero_shot_in_row_chunks_equals_the_whole_probability_matrix(setup, single, mini_benchmark):
    """Issue 14 item 7: zero-shot decoded in chunks gives exactly what the genes x candidates matrix gave (the
    path before the change, rebuilt here with biotalk.hierarchy), on the real mini Valid genes (447: chunks
    of 89-90, 63-64, one of 447); evaluate's result does not depend on the chunk size."""
    inputs = _evaluation_inputs(setup, single)
    model, splits, candidates = inputs["model"], inputs["splits"], inputs["candidates"]
    cand, scale, grid = candidate_vectors(model, candidates, None), model.scale().float().item(), ClipEvalConfig().tau_grid
    mini = clip_split(load_benchmark(mini_benchmark, benchmark="I")["valid"], "valid")
    for split, rows in ((mini, 100), (mini, 64), (mini, 1000)):
        dna = model.get_dna_features(split.sequences).numpy()
        probs = zero_shot_probs(dna, cand, scale)  # the whole matrix, as evaluated before
        nearest, nodes, mass = zero_shot_decode(dna, cand, scale, candidates.ecs, rows=rows)
        whole_nodes, whole_mass = hierarchy_scores(probs, candidates.ecs)
        assert np.array_equal(nearest, probs.argmax(1)) and np.array_equal(nodes, whole_nodes)
        assert np.array_equal(mass, whole_mass), split.name
        assert nodes_tradeoff(nodes, mass, split.ecs, grid, split.record_ids) == tradeoff(
            probs, candidates.ecs, split.ecs, grid, split.record_ids)
    args = {"splits": {**splits, "mini": mini}, "names": ["valid", "valid2", "test1", "test2", "mini"],
            "retrieval_split": "test1", "train": splits["train"], "candidates": candidates,
            "cfg": ClipEvalConfig(knn_k=[1, 3])}
    assert evaluate(model, **args, rows=150) == evaluate(model, **args)


def test_epoch_subset_draws_whole_genes_with_their_identity():
    rows = {"RecordId": [f"r{i}" for i in range(9)], "Sequence": ["ACGT" * 5] * 9,
            "EC": ["1.1.1.1", "2.7.1.1", "1.1.1.1"] * 3, "DescriptionMasked": ["a", "b", "a"] * 3}
    split = clip_split(rows, "valid")
    genes = {"valid": ["g0", "g0", "g1", "g2", "g3", "g3", "g4", "g5", "g6"]}  # g0, g3: two ECs each
    identity = {"valid": [float(i) for i in range(9)]}
    sub, sub_genes, sub_identity = epoch_subset({"valid": split}, ["valid"], genes, identity, 3, seed=0)
    kept = sub["valid"].record_ids
    assert len(set(sub_genes["valid"])) == 3 and sub_identity["valid"] == [float(r[1:]) for r in kept]
    for gene in set(sub_genes["valid"]):  # every record of a drawn gene
        assert sub_genes["valid"].count(gene) == genes["valid"].count(gene)
    again = epoch_subset({"valid": split}, ["valid"], genes, identity, 3, seed=0)[0]["valid"].record_ids
    assert again == kept  # the same sample every epoch
    assert epoch_subset({"valid": split}, ["valid"], genes, identity, 0, seed=0)[0]["valid"] is split


def test_loader_workers_and_pinned_memory_change_no_number(setup, single):
    """Issue 14 item 10: crops depend on (seed, epoch, record) only, so worker processes give the same run."""
    workers = _run(setup, "workers", "checkpoint_every=3", "keep_checkpoints=5", "data.num_workers=2",
                   "data.pin_memory=true")
    assert _log(workers) == _log(single)
    ours, theirs = (json.loads((d / "metrics.json").read_text()) for d in (workers, single))
    assert {k: v for k, v in ours.items() if k != "config"} == {k: v for k, v in theirs.items() if k != "config"}


def test_train_streamed_from_memory_mapped_arrow_is_the_same_run(setup, single):
    """Issue 11: Train read from its Arrow copy (no split in Python lists) gives the in-memory run exactly."""
    streamed = _run(setup, "streamed", "checkpoint_every=3", "keep_checkpoints=5",
                    f"data.stream_dir={setup['root'] / 'arrow'}")
    assert (setup["root"] / "arrow" / "records.arrow").is_file()
    assert _log(streamed) == _log(single)
    ours, theirs = (json.loads((d / "metrics.json").read_text()) for d in (streamed, single))
    assert {k: v for k, v in ours.items() if k != "config"} == {k: v for k, v in theirs.items() if k != "config"}


def test_zero_shot_templates_are_chosen_on_validation_only(setup, single, tmp_path):
    bench = tmp_path / "bench"
    shutil.copytree(setup["bench"], bench)
    for name in ("test1", "test2"):
        (bench / "Test" / f"{name}.parquet").unlink()  # a validation-only tool must not need them
    out = tmp_path / "tune"
    args = [a for a in setup["args"] if a.startswith(("data.enzyme_dat", "data.enzclass", "cache_dir"))]
    cmd = [sys.executable, str(ROOT / "scripts" / "tune_zero_shot.py"), f"model={single / 'final'}", f"data={bench}",
           "benchmark=III", "template_sets=[[0],[1],[0,1]]", "eval.knn_k=[1]", f"out={out}",
           *(a.removeprefix("data.") for a in args)]
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "zero_shot_templates.json").read_text())
    assert [r["templates"] for r in report["rows"]] == [[0], [1], [0, 1]]
    assert report["chosen"] == max(report["rows"], key=lambda r: r["score"])["templates"]
    # Template 0 is what train_clip scored with the same (selected) model: the same Valid numbers.
    metrics = json.loads((single / "metrics.json").read_text())
    assert report["rows"][0]["valid_nearest"] == pytest.approx(metrics["zero_shot"]["valid"]["hF"])
    assert report["rows"][0]["valid2_hier"] == pytest.approx(metrics["zero_shot_hierarchical"]["valid2"]["hF"])


def test_a_resume_path_without_a_complete_checkpoint_fails_cleanly(setup, tmp_path):
    (tmp_path / "step_3").mkdir()  # Accelerate state without state.json: a run killed while saving
    cmd = [sys.executable, str(ROOT / "train_clip.py"), f"out={tmp_path / 'run'}", *setup["args"],
           f"resume={tmp_path / 'step_3'}"]
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "resume=" in done.stderr and "state.json" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "run").exists()


def test_training_lowers_the_loss(single):
    log = _log(single)
    assert np.mean([r["loss"] for r in log[-3:]]) < np.mean([r["loss"] for r in log[:3]])


def test_resume_latest_continues_exactly(setup, single):
    resumed = setup["root"] / "resumed"
    shutil.copytree(single, resumed)
    for path in ("final", "metrics.json"):
        shutil.rmtree(resumed / path) if (resumed / path).is_dir() else (resumed / path).unlink()
    for ckpt in (resumed / "checkpoints").iterdir():
        if int(ckpt.name.split("_")[1]) > 9:
            shutil.rmtree(ckpt)
    lines = (resumed / "train_log.jsonl").read_text().splitlines()[:9]
    (resumed / "train_log.jsonl").write_text("\n".join(lines) + "\n")
    _run(setup, "resumed", "checkpoint_every=3", "keep_checkpoints=5", "resume=latest")
    a, b = _log(single), _log(resumed)
    assert [r["step"] for r in b] == list(range(1, 13))
    assert np.allclose([r["loss"] for r in a], [r["loss"] for r in b], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(setup, single):
    launcher = [sys.executable, "-m", "accelerate.commands.launch",
                "--config_file", str(ROOT / "configs" / "accelerate" / "cpu_two_process.yaml"),
                "--main_process_port", "29533"]
    two = _run(setup, "two", "optim.epochs=2", launcher=launcher)
    one, two_log = _log(single), _log(two)
    assert len(two_log) == len(one) == 12
    # Same losses step after step: the gathered loss and the gradients equal the single-process ones.
    assert np.allclose([r["loss"] for r in one], [r["loss"] for r in two_log], rtol=1e-4, atol=1e-5)
    metrics, single_metrics = (json.loads((d / "metrics.json").read_text()) for d in (two, single))
    assert metrics["zero_shot"]["test2"]["n"] == len(UNSEEN) * 2
    # Both processes embedded their share of the genes (gathered by index): the scores of one process.
    for name in ("valid", "valid2", "test1", "test2"):
        assert metrics["knn"][name] == pytest.approx(single_metrics["knn"][name])
        assert metrics["zero_shot"][name]["hF"] == pytest.approx(single_metrics["zero_shot"][name]["hF"])
    # Both processes restored the epoch the main process chose on validation.
    assert metrics["selected"]["epoch"] == single_metrics["selected"]["epoch"]


@pytest.mark.slow
def test_deepspeed_two_cpu_processes_train_like_one(setup, single):
    pytest.importorskip("deepspeed")
    launcher = [sys.executable, "-m", "accelerate.commands.launch",
                "--config_file", str(ROOT / "configs" / "accelerate" / "deepspeed_zero2.yaml"),
                "--num_processes", "2", "--main_process_port", "29534"]
    two = _run(setup, "deepspeed", "optim.epochs=2", "eval.each_epoch=false", "eval.select=last", launcher=launcher)
    one, ds_log = _log(single), _log(two)
    assert len(ds_log) == len(one) == 12
    assert np.allclose([r["loss"] for r in one], [r["loss"] for r in ds_log], rtol=1e-4, atol=1e-5)
    assert (two / "final" / "model.safetensors").is_file()


def test_issue10_options_train_end_to_end(setup):
    """SigLIP, sibling batches, label smoothing, head dropout, the top text layer unfrozen, hierarchical label
    texts beside the templates, and early stopping, in one run scored on the validation splits only."""
    from safetensors.torch import load_file

    from biotalk.models.clip import default_text_encoder

    out = _run(setup, "options", "optim.loss=siglip", "optim.ec_batches=siblings", "optim.label_smoothing=0.1",
               "model.head_dropout=0.1", "model.unfreeze_text_layers=1", "eval.zero_shot_texts=both",
               "eval.patience=1", "optim.epochs=4", "eval.tests=false")
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["zero_shot"]) == {"valid", "valid2"} and metrics["retrieval"]["split"] == "valid"  # no test
    scores = [h["selection_score"] for h in metrics["history"]]
    assert metrics["selected"]["epochs_run"] == len(scores) <= 4
    best = scores.index(max(scores))
    assert len(scores) - 1 - best <= 1  # stops one epoch after the last improvement ...
    assert len(scores) == 4 or len(scores) - 1 - best == 1  # ... and only then
    assert metrics["selected"]["epoch"] == best
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["logit_bias"] and config["unfreeze_text_layers"] == 1 and config["head_dropout"] == 0.1
    trained = load_file(str(out / "final" / "text_encoder" / "model.safetensors"))
    original = load_file(str(Path(default_text_encoder()) / "model.safetensors"))
    changed = {k.split(".layer.")[1].split(".")[0] for k, v in trained.items()
               if ".layer." in k and not torch.equal(v, original[k])}
    assert changed == {"5"}  # the top layer trained, the frozen ones did not move
