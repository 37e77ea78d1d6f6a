"""Contrastive losses for the DNA-text dual encoder.

The loss runs over the *global* batch: features from every process are gathered with gradients
(``torch.distributed.nn.functional.all_gather``), so N processes with batch b compute the same loss
as one process with batch N*b. Every process computes the full N*b x N*b loss; the gather's backward
sums the N identical gradients and data-parallel averaging divides them by N again, so parameter
gradients equal the single-process ones.

Two losses share that scheme: ``ClipLoss`` (symmetric InfoNCE, softmax over the batch) and ``SigLipLoss``
(a sigmoid per pair with a learnable bias; no normalisation over the batch, so small batches lose less).
Both treat every pair that shares an EC as a positive and take ``label_smoothing``: a training set the model
can fit to zero loss otherwise drives the temperature up and memorises.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn  # noqa: F401  (all_gather with gradients; not loaded by torch.distributed alone)
import torch.nn.functional as F
from torch import nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every process in rank order; gradients flow back to each process."""
    if not _distributed():
        return x
    return torch.cat(torch.distributed.nn.functional.all_gather(x.contiguous()), dim=0)


def gather_labels(x: torch.Tensor) -> torch.Tensor:
    """Concatenate integer labels from every process in rank order (no gradients)."""
    if not _distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def ec_targets(labels: torch.Tensor) -> torch.Tensor:
    """Soft targets: row i spreads probability 1 evenly over the items sharing label i (itself included).

    With all labels distinct this is the identity matrix, i.e. plain InfoNCE targets.
    """
    same = (labels[:, None] == labels[None, :]).float()
    return same / same.sum(dim=1, keepdim=True)


def smooth(targets: torch.Tensor, eps: float, floor: float) -> torch.Tensor:
    """``(1 - eps) * targets + eps * floor``: targets pulled towards ``floor`` (uniform or 1/2)."""
    return targets if eps == 0 else (1 - eps) * targets + eps * floor


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the cross-entropy between ``targets`` (rows sum to 1) and softmax(logits)."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


class ClipLoss(nn.Module):
    """Symmetric InfoNCE over the global batch.

    ``ec_aware=True`` treats every pair that shares an EC as a positive (soft multi-positive targets);
    ``False`` uses the diagonal only (plain CLIP). With an EC-unique batch sampler both are the same.
    ``label_smoothing`` mixes each target row with the uniform distribution over the batch.
    Inputs are L2-normalised features; ``labels`` are integer EC ids of the local batch.
    """

    def __init__(self, ec_aware: bool = True, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.ec_aware, self.label_smoothing = ec_aware, label_smoothing

    def forward(
        self,
        dna: torch.Tensor,
        text: torch.Tensor,
        logit_scale: torch.Tensor,
        labels: torch.Tensor | None = None,
        logit_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``logit_bias`` is accepted and ignored: a constant shift cancels in the softmax."""
        dna, text = gather_with_grad(dna.float()), gather_with_grad(text.float())
        logits = logit_scale.float() * dna @ text.t()
        if self.ec_aware:
            if labels is None:
                raise ValueError("ClipLoss(ec_aware=True) needs the batch's EC labels")
            targets = ec_targets(gather_labels(labels))
        else:
            targets = torch.eye(len(dna), device=dna.device)
        targets = smooth(targets, self.label_smoothing, 1.0 / len(dna))
        return 0.5 * (soft_cross_entropy(logits, targets) + soft_cross_entropy(logits.t(), targets))


class SigLipLoss(nn.Module):
    """Sigmoid pairwise loss (SigLIP) over the global batch, multi-positive by EC.

    Every (DNA, text) pair is a binary problem: positive when both carry the same EC, negative otherwise;
    logit = scale * cosine + bias. The summed binary cross-entropy is divided by the number of rows, as in
    SigLIP. ``label_smoothing`` pulls the 0/1 targets towards 1/2. The bias (the model's ``logit_bias``,
    initially -10) offsets the prior that almost every pair is a negative.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(
        self,
        dna: torch.Tensor,
        text: torch.Tensor,
        logit_scale: torch.Tensor,
        labels: torch.Tensor | None = None,
        logit_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if labels is None or logit_bias is None:
            raise ValueError("SigLipLoss needs the batch's EC labels and the model's logit_bias")
        dna, text = gather_with_grad(dna.float()), gather_with_grad(text.float())
        logits = logit_scale.float() * dna @ text.t() + logit_bias.float()
        all_labels = gather_labels(labels)
        targets = smooth((all_labels[:, None] == all_labels[None, :]).float(), self.label_smoothing, 0.5)
        return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / len(dna)


LOSSES = {"infonce": ClipLoss, "siglip": SigLipLoss}


def contrastive_loss(name: str, label_smoothing: float = 0.0) -> nn.Module:
    """The loss ``optim.loss`` names: ``infonce`` (EC-aware ``ClipLoss``) or ``siglip``."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}, got {name!r}")
    return LOSSES[name](label_smoothing=label_smoothing)
