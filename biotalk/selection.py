"""Keeping the best epoch on validation, shared by the trainers: every process learns the main process's score,
the weights of a better epoch are saved once per output folder, and early stopping counts epochs since the best
(also after a resume, from the saved history)."""

from __future__ import annotations

from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import broadcast_object_list
from safetensors.torch import save_model

from biotalk.clip_eval import selection_score
from biotalk.io import atomic_path


def epoch_score(accelerator: Accelerator, result: dict | None) -> float:
    """This epoch's validation ``selection_score``: the main process scored it, every process learns it."""
    return broadcast_object_list([selection_score(result) if accelerator.is_main_process else None])[0]


def epochs_since_best(history: list[dict]) -> int:
    """Epochs run after the first best one (0 before any): what early stopping counts, also after a resume."""
    scores = [h["selection_score"] for h in history]
    return len(scores) - 1 - scores.index(max(scores)) if scores else 0


def keep_if_best(accelerator: Accelerator, model, score: float, best: float, path: Path, writer: bool) -> float:
    """Save the weights to ``path`` (by each output folder's ``writer``) when this epoch's validation
    ``score`` beats ``best``; returns the best score so far."""
    if score > best and writer:
        with atomic_path(path) as tmp:
            save_model(accelerator.unwrap_model(model), str(tmp))
    accelerator.wait_for_everyone()
    return max(score, best)
