"""Training plumbing shared by every trainer (``train_clip.py``, ``scripts/pretrain_lolbert.py``,
``scripts/finetune_lolbert.py``): one way to set up Accelerate on CPU, gloo, GPUs or DeepSpeed, one
weight-decay rule, one checkpoint layout with one completeness marker, one log file.

Checkpoints live in ``out/checkpoints/step_N``. Every process writes Accelerate's state into a temporary
directory; the main process then writes ``state.json`` (the step and whatever the trainer needs to carry
on) and renames the directory. A directory without ``state.json`` is incomplete and never resumed from.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration, InitProcessGroupKwargs

from biotalk.config import ConfigError
from biotalk.io import write_json, write_text

LOG_FILE = "train_log.jsonl"  # one JSON object per line, each with a "step"
STATE_FILE = "state.json"  # written last into a checkpoint: its presence marks the checkpoint complete
_STEP_DIR = re.compile(r"step_(\d+)")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else the CPU; any other name as torch reads it (``cpu``, ``cuda:1``)."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def make_accelerator(
    mixed_precision: str = "",
    grad_accum: int = 1,
    split_batches: bool = False,
    log_with: list[str] | None = None,
    project_dir: Path | None = None,
) -> Accelerator:
    """An Accelerator that works under every launcher: one process, ``accelerate launch`` with N CPU
    processes (gloo), GPUs (DDP) or DeepSpeed.

    Without CUDA, Accelerate 1.15 forms a multi-process (gloo) group only when told to use the CPU; that
    switch would also silently turn DeepSpeed off, so a DeepSpeed launch on CPU names the gloo backend
    instead (without it Accelerate counts one process while DeepSpeed runs N). Mixed precision is used on
    CUDA only (``''``: what ``accelerate launch`` says); the CPU runs in float32.
    """
    cuda = torch.cuda.is_available()
    deepspeed_on_cpu = not cuda and os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
    return Accelerator(
        cpu=not cuda and not deepspeed_on_cpu,
        kwargs_handlers=[InitProcessGroupKwargs(backend="gloo")] if deepspeed_on_cpu else None,
        mixed_precision=(mixed_precision or None) if cuda else "no",
        gradient_accumulation_steps=grad_accum,
        dataloader_config=DataLoaderConfiguration(split_batches=split_batches),
        log_with=log_with,
        project_dir=str(project_dir) if project_dir is not None else None,
    )


def fill_deepspeed_config(accelerator: Accelerator, micro_batch: int, grad_accum: int = 1,
                          max_grad_norm: float = 0.0) -> None:
    """Fill the DeepSpeed config from the trainer's own settings; nothing without DeepSpeed. Call before
    ``prepare``.

    DeepSpeed cannot read the batch size off a batch sampler or a loop without a DataLoader (``prepare``
    stops on "auto"), and it clips gradients itself: Accelerate's ``clip_grad_norm_`` is a no-op there and
    "auto" clipping means 1.0 whatever the trainer says. So ``micro_batch`` (per process and step),
    ``grad_accum`` and ``max_grad_norm`` (0: no clipping) are written into the config. A number the config
    file states itself must agree with the trainer's: a mismatch stops the run instead of winning silently.
    """
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return
    wanted = {
        "train_micro_batch_size_per_gpu": micro_batch,
        "train_batch_size": micro_batch * accelerator.num_processes * grad_accum,
        "gradient_clipping": float(max_grad_norm),
    }
    config = plugin.deepspeed_config
    clash = [f"{k}: {config[k]} in the DeepSpeed config, {v} from the trainer" for k, v in wanted.items()
             if config.get(k, "auto") != "auto" and config[k] != v]
    if clash:
        raise ConfigError("the DeepSpeed config disagrees with the trainer (set these to \"auto\"): " + "; ".join(clash))
    config.update(wanted)


def seed_per_process(accelerator: Accelerator, seed: int) -> None:
    """Seed torch's global RNG (dropout, on CPU and every GPU) with ``seed + process_index``. Call after the
    model is built (from one seed, so every rank starts from the same weights) and before a checkpoint is
    loaded (which restores each rank's own RNG state): without it every rank draws the same dropout masks.
    Rank 0 draws what a one-process run draws."""
    torch.manual_seed(seed + accelerator.process_index)


def adamw(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; no weight decay on vectors (biases, norms) or the temperature."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or name.endswith("logit_scale") else decay).append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )


class CheckpointManager:
    """Save, find, rotate and resume the checkpoints in ``root`` (``step_N`` directories)."""

    def __init__(self, accelerator: Accelerator, root: Path, keep: int) -> None:
        self.accelerator, self.root, self.keep = accelerator, Path(root), keep

    def complete(self) -> list[Path]:
        """Complete checkpoints (with ``state.json``), oldest first."""
        found = [p for p in self.root.glob("step_*") if _STEP_DIR.fullmatch(p.name) and (p / STATE_FILE).is_file()]
        return sorted(found, key=lambda p: int(p.name.split("_")[1]))

    def find(self, resume: str) -> Path | None:
        """The checkpoint ``resume`` names: none for ``''``, the newest complete one for ``latest`` (none
        before the first), else that directory, which must be a complete checkpoint. Call it before
        writing anything, so a wrong path stops the run cleanly."""
        if not resume:
            return None
        if resume == "latest":
            found = self.complete()
            if not found:
                self.accelerator.print(f"resume=latest: no checkpoint in {self.root} yet, starting fresh")
            return found[-1] if found else None
        path = Path(resume)
        if not (path / STATE_FILE).is_file():
            raise FileNotFoundError(
                f"resume={resume}: not a complete checkpoint (no {STATE_FILE}); "
                f"pass resume=latest or a {self.root}/step_N directory"
            )
        return path

    def load(self, path: Path | None) -> dict:
        """Restore the checkpoint ``path`` (from ``find``) into the accelerator and return its saved state;
        ``{"step": 0}`` for none (a fresh start). Call it after ``prepare``."""
        if path is None:
            return {"step": 0}
        self.accelerator.load_state(str(path))
        state = json.loads((path / STATE_FILE).read_text())
        self.accelerator.print(f"resumed from {path} at step {state['step']}")
        return state

    def save(self, step: int, state: dict | None = None) -> Path:
        """Every process writes into a temporary directory; the main process marks it complete
        (``state.json`` = ``{"step": step, **state}``), renames it and drops all but the newest ``keep``."""
        acc, final = self.accelerator, self.root / f"step_{step}"
        tmp = final.with_name(f".{final.name}.tmp")
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            write_json(tmp / STATE_FILE, {**(state or {}), "step": step})
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in self.complete()[: -self.keep]:
                shutil.rmtree(old)
        acc.wait_for_everyone()
        return final


class TrainLog:
    """``out/train_log.jsonl``, written by the main process. A fresh run starts it empty; a resumed run keeps
    the lines up to its checkpoint's step (later ones were written before the interruption)."""

    def __init__(self, out: Path, step: int, main_process: bool) -> None:
        self.path, self.enabled = Path(out) / LOG_FILE, main_process
        if main_process:
            kept = [r for r in self.records() if r["step"] <= step] if step else []
            write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
