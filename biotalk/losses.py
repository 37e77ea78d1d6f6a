"""Contrastive losses for the DNA-text dual encoder.

The loss runs over the *global* batch: features from every process are gathered with gradients
(``torch.distributed.nn.functional.all_gather``), so N processes with batch b compute the same loss
as one process with batch N*b. Every process computes the full N*b x N*b loss; the gather's backward
sums the N identical gradients and data-parallel averaging divides them by N again, so parameter
gradients equal the single-process ones.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
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


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the cross-entropy between ``targets`` (rows sum to 1) and softmax(logits)."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


class ClipLoss(nn.Module):
    """Symmetric InfoNCE over the global batch.

    ``ec_aware=True`` treats every pair that shares an EC as a positive (soft multi-positive targets);
    ``False`` uses the diagonal only (plain CLIP). With an EC-unique batch sampler both are the same.
    Inputs are L2-normalised features; ``labels`` are integer EC ids of the local batch.
    """

    def __init__(self, ec_aware: bool = True) -> None:
        super().__init__()
        self.ec_aware = ec_aware

    def forward(
        self,
        dna: torch.Tensor,
        text: torch.Tensor,
        logit_scale: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        dna, text = gather_with_grad(dna.float()), gather_with_grad(text.float())
        logits = logit_scale.float() * dna @ text.t()
        if self.ec_aware:
            if labels is None:
                raise ValueError("ClipLoss(ec_aware=True) needs the batch's EC labels")
            targets = ec_targets(gather_labels(labels))
        else:
            targets = torch.eye(len(dna), device=dna.device)
        return 0.5 * (soft_cross_entropy(logits, targets) + soft_cross_entropy(logits.t(), targets))
