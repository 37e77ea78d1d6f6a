"""biotalk.training: the accelerator on this CPU, the one weight-decay rule, checkpoints (save, rotation,
completeness marker, resume) and the train log, with a real Accelerator and a real LOLBERT-sized module."""

import json

import pytest
import torch
from transformers import RobertaForMaskedLM

from biotalk.models.clip import build_clip_model
from biotalk.models.lolbert import LolbertArch, roberta_config
from biotalk.training import (
    LOG_FILE,
    STATE_FILE,
    CheckpointManager,
    TrainLog,
    adamw,
    make_accelerator,
    resolve_device,
)


@pytest.fixture
def accelerator():
    """A fresh Accelerator per test: each keeps its own list of prepared models, which checkpoints hold."""
    return make_accelerator("bf16")  # asked for bf16: the CPU runs in float32 all the same


def _prepared(accelerator, seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    optimizer = adamw(model, lr=0.1, weight_decay=0.01)
    return accelerator.prepare(model, optimizer)


def _step(model, optimizer) -> None:
    model(torch.ones(3, 4)).pow(2).sum().backward()
    optimizer.step()
    optimizer.zero_grad()


def test_cpu_accelerator_and_device(accelerator):
    assert accelerator.device.type == "cpu" and accelerator.num_processes == 1
    assert accelerator.mixed_precision == "no"
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")


def test_adamw_decays_matrices_only():
    model = RobertaForMaskedLM(roberta_config(LolbertArch(num_hidden_layers=1, hidden_size=16, num_attention_heads=2,
                                                          intermediate_size=32)))
    decay, no_decay = adamw(model, 1e-3, 0.1).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"])
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert "lm_head.layer_norm.weight" in skipped and "roberta.embeddings.LayerNorm.weight" in skipped
    assert all(n.endswith(("bias", "weight")) for n in skipped)


def test_adamw_skips_the_temperature_and_frozen_towers():
    model = build_clip_model("kmer:3", projection_dim=8, dna_head="mlp", head_hidden=16)
    decay, no_decay = adamw(model, 1e-3, 0.1).param_groups
    assert any(p is model.logit_scale for p in no_decay["params"])
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(decay["params"]) + len(no_decay["params"]) == len(trainable)
    assert not any(p is q for p in decay["params"] + no_decay["params"] for q in model.text_encoder.parameters())


def test_checkpoints_rotate_and_only_complete_ones_count(accelerator, tmp_path):
    model, optimizer = _prepared(accelerator)
    checkpoints = CheckpointManager(accelerator, tmp_path / "checkpoints", keep=2)
    for step in (1, 2, 3):
        _step(model, optimizer)
        checkpoints.save(step, {"history": [step]})
    assert [p.name for p in checkpoints.complete()] == ["step_2", "step_3"]
    assert json.loads((tmp_path / "checkpoints" / "step_3" / STATE_FILE).read_text()) == {"history": [3], "step": 3}
    assert not list((tmp_path / "checkpoints").glob(".*"))  # no temporary directory left behind
    (tmp_path / "checkpoints" / "step_9").mkdir()  # a run killed while saving: no state.json
    assert checkpoints.find("latest").name == "step_3"
    with pytest.raises(FileNotFoundError, match="resume=.*step_9.*state.json"):
        checkpoints.find(str(tmp_path / "checkpoints" / "step_9"))
    assert checkpoints.find("") is None and checkpoints.load(None) == {"step": 0}
    assert CheckpointManager(accelerator, tmp_path / "none", keep=2).find("latest") is None


def test_resume_restores_weights_and_optimizer(accelerator, tmp_path):
    model, optimizer = _prepared(accelerator)
    checkpoints = CheckpointManager(accelerator, tmp_path / "checkpoints", keep=1)
    _step(model, optimizer)
    checkpoints.save(1)
    _step(model, optimizer)  # the uninterrupted run's second step
    expected = [p.detach().clone() for p in model.parameters()]
    fresh = make_accelerator()  # a new process: its own accelerator and other initial weights
    other, other_opt = _prepared(fresh, seed=1)
    state = CheckpointManager(fresh, tmp_path / "checkpoints", keep=1).load(checkpoints.find("latest"))
    assert state == {"step": 1}
    _step(other, other_opt)  # the same second step, from the restored weights and Adam moments
    assert all(torch.allclose(a, b) for a, b in zip(expected, other.parameters(), strict=True))


def test_train_log_starts_fresh_or_keeps_lines_up_to_the_checkpoint(tmp_path):
    log = TrainLog(tmp_path, step=0, main_process=True)
    for step in range(1, 6):
        log.write({"step": step, "loss": 1.0 / step})
    assert [r["step"] for r in TrainLog(tmp_path, step=3, main_process=True).records()] == [1, 2, 3]
    assert TrainLog(tmp_path, step=0, main_process=True).records() == []
    TrainLog(tmp_path / "other", step=0, main_process=False).write({"step": 1})  # not the main process: no file
    assert not (tmp_path / "other" / LOG_FILE).exists() and (tmp_path / LOG_FILE).is_file()


def test_train_log_reads_device_values_once_per_flush(tmp_path):
    """Issue 14 item 10: a step's loss stays a tensor until ``flush``; the lines are what ``.item()`` gave."""
    log = TrainLog(tmp_path, step=0, main_process=True)
    losses = torch.rand(4, dtype=torch.float32)
    for step in range(1, 5):
        log.add({"step": step, "loss": losses[step - 1] * 1.0, "lr": 0.5 / step, "logit_scale": torch.tensor(14.0)})
    assert log.records() == []  # nothing read or written before the flush
    flushed = log.flush()
    expected = [{"step": s, "loss": losses[s - 1].item(), "lr": 0.5 / s, "logit_scale": 14.0} for s in range(1, 5)]
    assert flushed == log.records() == expected
    assert log.flush() == [] and len(log.records()) == 4
    quiet = TrainLog(tmp_path / "other", step=0, main_process=False)
    quiet.add({"step": 1, "loss": torch.tensor(1.0)})
    assert quiet.flush() == [] and not (tmp_path / "other" / LOG_FILE).exists()


def test_process_group_timeout_is_set_on_every_backend():
    """Issue 14 item 7: the timeout reaches Accelerate's process-group set-up, not only under DeepSpeed on the CPU
    (two real processes check the group itself: tests/test_distributed.py)."""
    handler = make_accelerator(timeout_s=123).init_handler
    assert handler is not None and handler.timeout.total_seconds() == 123
