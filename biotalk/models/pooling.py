"""Pool per-token hidden states into one vector per sequence, under the attention mask.

- ``cls``: the hidden state of the first attended token (the tokenizer's CLS/BOS token), so left
  or right padding give the same vector.
- ``min`` / ``max`` / ``mean``: over the *sequence* tokens only. Padding is never pooled (the
  reference code pooled it, so an embedding depended on its batch), and special tokens (CLS, SEP,
  EOS) are left out when ``special_tokens_mask`` is given: they carry no nucleotides, and the CLS
  vector already has its own pooling.

The checks that a row has something to pool raise at once on the CPU; on an accelerator they are
asynchronous device asserts, so pooling never waits for the device to answer a Python ``if``.
"""

from __future__ import annotations

import torch

POOLINGS = ("cls", "min", "max", "mean")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, method: str,
         special_tokens_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(batch, tokens, dim) -> (batch, dim) in float32; raises if a row has no token to pool."""
    if method not in POOLINGS:
        raise ValueError(f"unknown pooling {method!r}; choose one of {POOLINGS}")
    hidden = hidden.float()
    attended = attention_mask.bool()
    if method == "cls":
        _check(attended.any(1), "cls pooling: a sequence has no attended token")
        first = attended.int().argmax(1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]
    keep = attended if special_tokens_mask is None else attended & ~special_tokens_mask.bool()
    counts = keep.sum(1, keepdim=True)
    _check(counts > 0, f"{method} pooling: a sequence has no non-special token (empty sequence?)")
    keep3 = keep.unsqueeze(-1)
    if method == "mean":
        return (hidden * keep3).sum(1) / counts
    if method == "max":
        return hidden.masked_fill(~keep3, float("-inf")).amax(1)
    return hidden.masked_fill(~keep3, float("inf")).amin(1)


def _check(ok: torch.Tensor, message: str) -> None:
    """ValueError unless ``ok`` holds everywhere: a host check on the CPU, a device assert elsewhere."""
    if ok.device.type == "cpu":
        if not bool(ok.all()):
            raise ValueError(message)
    else:
        torch._assert_async(ok.all(), message)
