"""The configuration and output of BioTalk-CLIP (the transformers ``configuration_*`` seam): every option of the
two towers, the heads, the temperature and the text cache, checked when the config is made."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PretrainedConfig
from transformers.utils import ModelOutput

HEADS = ("linear", "mlp")
TEXT_DTYPES = {"float32": None, "bfloat16": torch.bfloat16}


class BioTalkClipConfig(PretrainedConfig):
    """Towers (local paths), heads, shared-space size, pooling, temperature and which towers are frozen.

    ``head_dropout``: dropout on each head's input, a regulariser against memorising the training pairs.
    ``learn_logit_scale=False`` fixes the temperature at ``logit_scale_init``. ``logit_bias`` adds a learnable
    scalar bias (SigLIP; initially ``logit_bias_init``). ``unfreeze_text_layers``: top text layers trained
    even with ``freeze_text`` (0 = none).
    ``text_embed_dtype``: ``bfloat16`` runs ``embed_texts`` (the frozen text tower) under bf16 autocast,
    about twice as fast on CPUs with AMX/AVX512-BF16 and on GPUs; the weights stay float32.
    """

    model_type = "biotalk_clip"

    def __init__(
        self,
        dna_encoder: str = "",
        text_encoder: str = "",
        projection_dim: int = 256,
        dna_pooling: str = "mean",
        logit_scale_init: float = 1 / 0.07,
        logit_scale_max: float = 100.0,
        freeze_dna: bool = False,
        freeze_text: bool = True,
        dna_head: str = "linear",
        text_head: str = "linear",
        head_hidden: int = 512,
        text_embed_dtype: str = "float32",
        window_nt: int = 0,
        head_dropout: float = 0.0,
        learn_logit_scale: bool = True,
        logit_bias: bool = False,
        logit_bias_init: float = -10.0,
        unfreeze_text_layers: int = 0,
        **kwargs,
    ) -> None:
        for name, value in (("dna_head", dna_head), ("text_head", text_head)):
            if value not in HEADS:
                raise ValueError(f"{name} must be one of {HEADS}, got {value!r}")
        if text_embed_dtype not in TEXT_DTYPES:
            raise ValueError(f"text_embed_dtype must be one of {tuple(TEXT_DTYPES)}, got {text_embed_dtype!r}")
        self.dna_encoder = dna_encoder
        self.text_encoder = text_encoder
        self.projection_dim = projection_dim
        self.dna_pooling = dna_pooling
        self.logit_scale_init = logit_scale_init
        self.logit_scale_max = logit_scale_max
        self.freeze_dna = freeze_dna
        self.freeze_text = freeze_text
        self.dna_head = dna_head
        self.text_head = text_head
        self.head_hidden = head_hidden
        self.text_embed_dtype = text_embed_dtype
        self.window_nt = window_nt  # DNA window the model was trained on (0 = whole gene); retrieval embeds the same
        self.head_dropout = head_dropout
        self.learn_logit_scale = learn_logit_scale
        self.logit_bias = logit_bias
        self.logit_bias_init = logit_bias_init
        self.unfreeze_text_layers = unfreeze_text_layers
        super().__init__(**kwargs)


@dataclass
class ClipOutput(ModelOutput):
    """L2-normalised embeddings in the shared space, the (clamped) logit scale and the bias (None without)."""

    dna_embeds: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    logit_scale: torch.Tensor | None = None
    logit_bias: torch.Tensor | None = None
