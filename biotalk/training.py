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
import uuid
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration, InitProcessGroupKwargs
from accelerate.utils import broadcast_object_list, gather_object

from biotalk.config import ConfigError
from biotalk.io import write_json, write_text

LOG_FILE = "train_log.jsonl"  # one JSON object per line, each with a "step"
STATE_FILE = "state.json"  # written last into a checkpoint: its presence marks the checkpoint complete
RUN_TOKEN = ".run_token"  # this run's random token, written by the writer of each output folder
DIST_TIMEOUT_S = 3600  # process-group timeout: how long a rank waits at a collective before it fails
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
    timeout_s: float = DIST_TIMEOUT_S,
    non_blocking: bool = False,
) -> Accelerator:
    """An Accelerator that works under every launcher: one process, ``accelerate launch`` with N CPU
    processes (gloo), GPUs (DDP) or DeepSpeed.

    Without CUDA, Accelerate 1.15 forms a multi-process (gloo) group only when told to use the CPU; that
    switch would also silently turn DeepSpeed off, so a DeepSpeed launch on CPU names the gloo backend
    instead (without it Accelerate counts one process while DeepSpeed runs N). Mixed precision is used on
    CUDA only (``''``: what ``accelerate launch`` says); the CPU runs in float32.

    ``timeout_s`` is the process group's timeout on every backend (NCCL's own default is 10 minutes): the
    longest a rank may wait at a collective, e.g. while the main process scores an evaluation.
    ``non_blocking``: batches are copied to the device asynchronously (with a pinned-memory DataLoader).
    """
    cuda = torch.cuda.is_available()
    deepspeed_on_cpu = not cuda and os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
    group = {"timeout": timedelta(seconds=timeout_s), **({"backend": "gloo"} if deepspeed_on_cpu else {})}
    return Accelerator(
        cpu=not cuda and not deepspeed_on_cpu,
        kwargs_handlers=[InitProcessGroupKwargs(**group)],
        mixed_precision=(mixed_precision or None) if cuda else "no",
        gradient_accumulation_steps=grad_accum,
        dataloader_config=DataLoaderConfiguration(split_batches=split_batches, non_blocking=non_blocking),
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
    """Save, find, rotate and resume the checkpoints in ``root`` (``step_N`` directories). ``writer``: this
    process marks, renames and rotates the checkpoints of its folder (default: the main process;
    ``output_folder`` says which processes write with node-local folders)."""

    def __init__(self, accelerator: Accelerator, root: Path, keep: int, writer: bool | None = None) -> None:
        self.accelerator, self.root, self.keep = accelerator, Path(root), keep
        self.writer = accelerator.is_main_process if writer is None else writer

    def complete(self) -> list[Path]:
        """Complete checkpoints (with ``state.json``), oldest first."""
        found = [p for p in self.root.glob("step_*") if _STEP_DIR.fullmatch(p.name) and (p / STATE_FILE).is_file()]
        return sorted(found, key=lambda p: int(p.name.split("_")[1]))

    def find(self, resume: str) -> Path | None:
        """The checkpoint ``resume`` names: none for ``''``, the newest complete one for ``latest`` (none
        before the first), else that directory, which must be a complete checkpoint. The main process
        decides and every process gets its decision: with node-local output folders each machine would
        otherwise pick its own newest (or none, and start over). Every process must then see that
        checkpoint in its own ``root``, else every process stops. Call it before writing anything, so a
        wrong path stops the run cleanly."""
        if not resume:
            return None
        acc = self.accelerator
        chosen, error = self._choose(resume) if acc.is_main_process else (None, None)
        chosen, error = broadcast_object_list([chosen, error])
        if error:
            raise FileNotFoundError(error)
        if chosen is None:
            acc.print(f"resume=latest: no checkpoint in {self.root} yet, starting fresh")
            return None
        path = self.root / chosen if resume == "latest" else Path(chosen)
        missing = [rank for rank, ok in gather_object([(acc.process_index, (path / STATE_FILE).is_file())]) if not ok]
        if missing:
            raise FileNotFoundError(
                f"resume={resume}: the main process resumes from {chosen}; processes {missing} have no complete "
                f"copy of it in their {self.root} (node-local output folders: every machine needs that checkpoint)"
            )
        return path

    def _choose(self, resume: str) -> tuple[str | None, str | None]:
        """The main process's choice (a name under ``root`` for ``latest``, else the path) or an error."""
        if resume == "latest":
            found = self.complete()
            return (found[-1].name if found else None), None
        if not (Path(resume) / STATE_FILE).is_file():
            return None, (f"resume={resume}: not a complete checkpoint (no {STATE_FILE}); "
                          f"pass resume=latest or a {self.root}/step_N directory")
        return resume, None

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
        """Every process writes into a temporary directory; the writer of each folder marks it complete
        (``state.json`` = ``{"step": step, **state}``), renames it and drops all but the newest ``keep``."""
        acc, final = self.accelerator, self.root / f"step_{step}"
        tmp = final.with_name(f".{final.name}.tmp")
        if self.writer:
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if self.writer:
            write_json(tmp / STATE_FILE, {**(state or {}), "step": step})
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in self.complete()[: -self.keep]:
                shutil.rmtree(old)
        acc.wait_for_everyone()
        return final


def output_folder(accelerator: Accelerator, out: Path) -> bool:
    """Create the run's output folder ``out`` and return whether this process writes it (checkpoint marks,
    the train log, the best epoch's weights); fails on every process at once if a process cannot see it.

    One folder that every process sees (one machine, or a filesystem shared by all machines): the main
    process writes. A node-local folder on each machine (the same ``out`` on every machine's own disk):
    each machine's local main process writes its copy, Accelerate saves model and optimiser state on every
    machine (``save_on_each_node``; DeepSpeed ``use_node_local_storage``), so every machine can resume. A
    process that sees neither the main process's folder nor its machine's, or a folder shared by some
    machines but not all, stops the run here instead of hanging or silently starting over later.
    """
    acc, out = accelerator, Path(out)
    token = broadcast_object_list([uuid.uuid4().hex if acc.is_main_process else None])[0]
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / RUN_TOKEN, token)
    acc.wait_for_everyone()
    shared = _has_token(out, token)
    if not shared and acc.is_local_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / RUN_TOKEN, token)
    acc.wait_for_everyone()
    seen = gather_object([(acc.process_index, acc.is_local_main_process, shared, _has_token(out, token))])
    blind = [rank for rank, _, _, sees in seen if not sees]
    if blind:
        raise RuntimeError(f"processes {blind} cannot see the output folder {out} (neither the main process's "
                           "nor their machine's): give every process the same out on a disk it can reach")
    node_local = not all(s for _, _, s, _ in seen)
    if node_local and any(s for rank, local_main, s, _ in seen if local_main and rank != 0):
        raise RuntimeError(f"{out} is shared by some machines but not all: use one shared folder or one per machine")
    acc.project_configuration.save_on_each_node = node_local
    plugin = acc.state.deepspeed_plugin
    if node_local and plugin is not None:
        plugin.deepspeed_config.setdefault("checkpoint", {})["use_node_local_storage"] = True
    return acc.is_local_main_process if node_local else acc.is_main_process


def _has_token(out: Path, token: str) -> bool:
    try:
        return (out / RUN_TOKEN).read_text() == token
    except OSError:
        return False


class TrainLog:
    """``out/train_log.jsonl``, written by the main process (or each folder's writer). A fresh run starts it
    empty; a resumed run keeps the lines up to its checkpoint's step (later ones were written before the
    interruption). ``add`` buffers a step whose values may be device tensors; ``flush`` reads them all in one
    transfer and writes them, so a trainer waits for the device once per ``flush``, not once per step."""

    def __init__(self, out: Path, step: int, main_process: bool) -> None:
        self.path, self.enabled, self.pending = Path(out) / LOG_FILE, main_process, []
        if main_process:
            kept = [r for r in self.records() if r["step"] <= step] if step else []
            write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def add(self, record: dict) -> None:
        """Buffer one step's record (nothing on a process that does not write the log)."""
        if self.enabled:
            self.pending.append(record)

    def flush(self) -> list[dict]:
        """Write the buffered records, their tensors as floats (one device-to-host copy), and return them."""
        records, self.pending = self.pending, []
        tensors = [v for r in records for v in r.values() if isinstance(v, torch.Tensor)]
        values = iter(torch.stack([t.detach().float().reshape(()) for t in tensors]).tolist() if tensors else [])
        records = [{k: next(values) if isinstance(v, torch.Tensor) else v for k, v in r.items()} for r in records]
        for record in records:
            self.write(record)
        return records

    def records(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
