"""EC classifier on frozen DNA embeddings: the paper's two-layer MLP, its label map, hierarchy-aware decoding.

The reference code rebuilt the label indices for every CSV, so test indices did not line up with the
training classes, and it scored EC strings character by character. Here the label map is built once
from the training split and stored in the model config (``id2label``); a class the model never saw
has no index and can only be scored wrong. Every score goes through ``biotalk.metrics`` on EC strings.
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

from biotalk.ec import EC, LEVELS, ec_prefixes, normalize_ec, parse_ec
from biotalk.metrics import hierarchical_prf, level_accuracy

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
        return [self.config.id2label[i] for i in range(self.config.num_labels)]


def build_label_map(train_ecs: Sequence[str]) -> list[str]:
    """The classes of the training split in hierarchy order (1.2.3.4 < 1.2.3.10 < 1.10.1.1)."""
    unique = {normalize_ec(ec) for ec in train_ecs}
    return sorted(unique, key=_sort_key)


def _sort_key(ec: str) -> tuple:
    return tuple((0, int(x), "") if x.isdigit() else (1, 0, x) for x in parse_ec(ec).levels)


def encode_labels(ecs: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Class indices under the training label map; -1 for an EC the model has never seen."""
    index = {ec: i for i, ec in enumerate(labels)}
    return np.array([index.get(normalize_ec(ec), -1) for ec in ecs], dtype=np.int64)


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
    labels = build_label_map(train_ecs)
    y_train = torch.from_numpy(encode_labels(train_ecs, labels))
    y_valid = torch.from_numpy(encode_labels(valid_ecs, labels))
    torch.manual_seed(cfg.seed)
    config = ECClassifierConfig(
        input_size=x_train.shape[1], hidden_size=cfg.hidden_size, id2label=dict(enumerate(labels))
    )
    model = ECClassifier(config)
    if cfg.standardize:
        model.feature_mean.copy_(torch.as_tensor(x_train.mean(0)))
        model.feature_scale.copy_(torch.as_tensor(x_train.std(0)).clamp_min(1e-6))
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    xt = torch.as_tensor(x_train, dtype=torch.float32, device=device)
    yt = y_train.to(device)
    order = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    best_key, best_state = None, None
    for epoch in tqdm(range(1, cfg.epochs + 1), desc="mlp epochs", leave=False):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(yt), generator=order).split(cfg.batch_size):
            idx = idx.to(device)
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
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
    model.eval()
    device = next(model.parameters()).device
    out = [
        model(torch.as_tensor(x[i : i + batch_size], dtype=torch.float32, device=device)).float().cpu()
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, model.config.num_labels), np.float32)


def predict_proba(model: ECClassifier, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    return torch.softmax(torch.from_numpy(predict_logits(model, x, batch_size)).double(), dim=1).numpy()


def hierarchy_scores(probs: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Most probable node and its summed probability at each EC depth: two (N, 4) arrays.

    At depth d the probabilities of the classes sharing a d-level prefix are added; column d-1 holds
    the best such node (a partial EC string like ``1.2.-.-``) and its summed probability.
    """
    order = sorted(range(len(labels)), key=lambda i: _sort_key(labels[i]))
    ecs = [parse_ec(labels[i]) for i in order]
    p = np.asarray(probs, dtype=np.float64)[:, order]
    nodes = np.empty((len(p), LEVELS), dtype=object)
    best_p = np.zeros((len(p), LEVELS))
    for depth in range(1, LEVELS + 1):
        prefixes = [ec.levels[:depth] for ec in ecs]
        starts = [i for i in range(len(ecs)) if i == 0 or prefixes[i] != prefixes[i - 1]]
        names = np.array([str(EC(prefixes[i])) for i in starts], dtype=object)
        summed = np.add.reduceat(p, starts, axis=1) if len(p) else np.zeros((0, len(starts)))
        best = summed.argmax(1)
        nodes[:, depth - 1] = names[best]
        best_p[:, depth - 1] = summed[np.arange(len(p)), best]
    return nodes, best_p


def _threshold(nodes: np.ndarray, best_p: np.ndarray, tau: float) -> tuple[list[str | None], np.ndarray]:
    passed = best_p >= tau
    # deepest passing depth per row (summed probabilities never grow with depth, but do not rely on it)
    depth = np.where(passed.any(1), LEVELS - np.argmax(passed[:, ::-1], axis=1), 0)
    rows = np.arange(len(nodes))
    preds = [nodes[r, d - 1] if d else None for r, d in zip(rows, depth, strict=True)]
    scores = np.where(depth > 0, best_p[rows, np.maximum(depth, 1) - 1], np.nan)
    return preds, scores


def decode_hierarchical(
    probs: np.ndarray, labels: Sequence[str], tau: float
) -> tuple[list[str | None], np.ndarray]:
    """Per row, the deepest EC node whose summed class probability reaches ``tau``, and that probability.

    ``tau = 0`` gives the argmax class (a full EC); a ``tau`` above 1 gives no prediction
    (``None``, score NaN): an abstention costs recall, a shallower node costs less precision.
    """
    return _threshold(*hierarchy_scores(probs, labels), tau)


def score_predictions(y_true: Sequence[str], y_pred: Sequence[str | None]) -> dict:
    """The metrics.json block of one test split.

    ``hP``/``hR``/``hF``: micro-averaged HiClass scores over EC prefixes (``macro`` holds the per-record
    means); ``accuracy``: exact full-EC match; ``level_accuracy``: accuracy at EC levels 1-4;
    ``coverage``: share of records with any prediction; ``n``: records.
    """
    y_true = [normalize_ec(ec) for ec in y_true]
    y_pred = [normalize_ec(ec) if ec else None for ec in y_pred]
    micro = hierarchical_prf(y_true, y_pred, average="micro")
    return {
        **{k: float(v) for k, v in micro.items()},
        "macro": {k: float(v) for k, v in hierarchical_prf(y_true, y_pred, average="macro").items()},
        "accuracy": float(np.mean([t == p for t, p in zip(y_true, y_pred, strict=True)])) if y_true else 0.0,
        "level_accuracy": [float(v) for v in level_accuracy(y_true, y_pred)],
        "coverage": float(np.mean([p is not None for p in y_pred])) if y_pred else 0.0,
        "n": len(y_true),
    }


def tradeoff(probs: np.ndarray, labels: Sequence[str], y_true: Sequence[str], taus: Sequence[float]) -> list[dict]:
    """Micro hP/hR/hF and coverage of hierarchy-aware decoding over a grid of thresholds."""
    nodes, best_p = hierarchy_scores(probs, labels)
    rows = []
    for tau in taus:
        preds, _ = _threshold(nodes, best_p, tau)
        s = score_predictions(y_true, preds)
        depth = [len(ec_prefixes(p)) for p in preds]
        rows.append({"tau": float(tau), "hP": s["hP"], "hR": s["hR"], "hF": s["hF"],
                     "coverage": s["coverage"], "mean_depth": float(np.mean(depth)) if depth else 0.0})
    return rows
