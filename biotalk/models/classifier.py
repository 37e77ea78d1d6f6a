"""EC classifier on frozen DNA embeddings: the paper's two-layer MLP (decoding: biotalk.hierarchy).

The reference code rebuilt the label indices for every CSV, so test indices did not line up with the
training classes, and it scored EC strings character by character. Here the label map
(``biotalk.ec.LabelMap``) is built once from the training split and stored in the model config
(``id2label``); a class the model never saw has no index and can only be scored wrong. Every score goes
through ``biotalk.metrics`` on EC strings.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedConfig, PreTrainedModel

from biotalk.ec import LabelMap

log = logging.getLogger(__name__)


@dataclass
class MLPConfig:
    """Training settings; the defaults are the paper's (Section 4.3)."""

    hidden_size: int = 256
    lr: float = 1e-3
    batch_size: int = 64
    epochs: int = 10
    seed: int = 0
    standardize: bool = False  # z-score features with training statistics (stored in the model); not in the paper


@strict
class ECClassifierConfig(PreTrainedConfig):
    model_type = "biotalk-ec-mlp"
    input_size: int = 768
    hidden_size: int = 256


class ECClassifier(PreTrainedModel):
    """Linear(d, hidden) -> ReLU -> Linear(hidden, C) over pooled embeddings; ``config.id2label`` is the label map."""

    config_class = ECClassifierConfig

    def __init__(self, config: ECClassifierConfig):
        super().__init__(config)
        self.net = nn.Sequential(
            nn.Linear(config.input_size, config.hidden_size),
            nn.ReLU(),
            nn.Linear(config.hidden_size, config.num_labels),
        )
        # feature standardisation fitted on the training split; identity unless fit_classifier sets it
        self.register_buffer("feature_mean", torch.zeros(config.input_size))
        self.register_buffer("feature_scale", torch.ones(config.input_size))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # PyTorch's own Linear initialisation, as the paper's plain nn.Linear model had.
        if isinstance(module, nn.Linear):
            module.reset_parameters()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.feature_mean) / self.feature_scale)

    @property
    def labels(self) -> list[str]:
        """The label map's classes by id (``LabelMap.labels`` of the training split)."""
        return [self.config.id2label[i] for i in range(self.config.num_labels)]


def fit_classifier(
    x_train: np.ndarray,
    train_ecs: Sequence[str],
    x_valid: np.ndarray,
    valid_ecs: Sequence[str],
    cfg: MLPConfig,
    device: str | torch.device = "cpu",
) -> tuple[ECClassifier, list[dict]]:
    """Train the MLP on fixed features; return the epoch with the best validation accuracy and the history.

    Validation accuracy counts every validation record (an unseen class is simply wrong); ties go to
    the lower validation loss on seen classes, then to the earlier epoch. Deterministic under ``cfg.seed``.
    """
    label_map = LabelMap.from_ecs(train_ecs)
    return fit_encoded(x_train, label_map.encode(train_ecs), label_map, x_valid, label_map.encode(valid_ecs), cfg,
                       device)


def feature_stats(x, chunk_rows: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) standard deviation of every feature, accumulated in float64 chunk by chunk: the
    same numbers for an array and for a memory-mapped store of it, no float32 drift over 10^7 rows, and
    float64 temporaries of ``chunk_rows`` rows only (8,192 x 768: 50 MB)."""
    n = len(x)
    total = sum(np.sum(x[a : a + chunk_rows], axis=0, dtype=np.float64) for a in range(0, n, chunk_rows))
    mean = total / n
    squares = sum(np.sum((x[a : a + chunk_rows] - mean) ** 2, axis=0) for a in range(0, n, chunk_rows))
    return mean.astype(np.float32), np.sqrt(squares / n).astype(np.float32)


def fit_encoded(
    x_train,
    y_train: np.ndarray,
    label_map: LabelMap,
    x_valid,
    y_valid: np.ndarray,
    cfg: MLPConfig,
    device: str | torch.device = "cpu",
) -> tuple[ECClassifier, list[dict]]:
    """``fit_classifier`` on class ids of ``label_map``. ``x_train`` is an array or anything with ``shape`` and
    numpy row indexing (``biotalk.embed_store.StoredVectors``): every minibatch is gathered by index on the
    host, so a memory-mapped store trains the very model its in-memory copy does."""
    y_train, y_valid = torch.as_tensor(y_train, dtype=torch.long), torch.as_tensor(y_valid, dtype=torch.long)
    torch.manual_seed(cfg.seed)
    config = ECClassifierConfig(input_size=x_train.shape[1], hidden_size=cfg.hidden_size, id2label=label_map.id2label)
    model = ECClassifier(config)
    if cfg.standardize:
        mean, std = feature_stats(x_train)
        model.feature_mean.copy_(torch.as_tensor(mean))
        model.feature_scale.copy_(torch.as_tensor(std).clamp_min(1e-6))
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    yt = y_train.to(device)
    order = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    best_key, best_state = None, None
    for epoch in tqdm(range(1, cfg.epochs + 1), desc="mlp epochs", leave=False):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(yt), generator=order).split(cfg.batch_size):
            batch = torch.as_tensor(np.asarray(x_train[idx.numpy()]), dtype=torch.float32, device=device)
            loss = F.cross_entropy(model(batch), yt[idx.to(device)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        row = {"epoch": epoch, "train_loss": total / len(yt), **_validate(model, x_valid, y_valid, cfg.batch_size)}
        history.append(row)
        key = (row["valid_accuracy"], -row["valid_loss"]) if len(y_valid) else (epoch,)
        if best_key is None or key > best_key:
            best_key, best_state = key, copy.deepcopy(model.state_dict())
    if len(y_valid) == 0:
        log.warning("empty validation split: keeping the last epoch")
    model.load_state_dict(best_state)
    model.eval()
    return model, history


def _validate(model: ECClassifier, x: np.ndarray, y: torch.Tensor, batch_size: int) -> dict:
    if len(y) == 0:
        return {"valid_accuracy": 0.0, "valid_loss": 0.0}
    logits = torch.from_numpy(predict_logits(model, x, batch_size))
    seen = y >= 0
    loss = F.cross_entropy(logits[seen], y[seen]).item() if seen.any() else 0.0
    return {"valid_accuracy": (logits.argmax(1) == y).float().mean().item(), "valid_loss": loss}


@torch.no_grad()
def predict_logits(model: ECClassifier, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Logits of ``x`` (an array or a memory-mapped store), ``batch_size`` rows at a time."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        model(torch.from_numpy(np.array(x[i : i + batch_size], dtype=np.float32)).to(device)).float().cpu()
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, model.config.num_labels), np.float32)


def predict_proba(model: ECClassifier, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    return torch.softmax(torch.from_numpy(predict_logits(model, x, batch_size)).double(), dim=1).numpy()
