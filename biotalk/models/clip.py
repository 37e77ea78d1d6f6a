"""BioTalk-CLIP: a DNA tower and a text tower projected into one space, trained contrastively.

The DNA tower is any encoder of ``load_dna_encoder`` (LOLBERT by default), masked-pooled; the text tower
is a sentence-transformers model (all-MiniLM-L6-v2 by default). Heads (``linear``, or ``mlp``:
LayerNorm -> Linear -> GELU -> Linear, for towers whose features are not on a trainable scale, such as the
k-mer spectrum; ``head_dropout`` on their input) map both to a shared space; a temperature (logit scale,
initial 1/0.07, clamped at ``logit_scale_max``; learnt unless ``learn_logit_scale=False``) sharpens the
similarities. ``logit_bias=True`` adds SigLIP's learnable bias (``biotalk.losses.SigLipLoss``).

A frozen text tower never needs to run during training: its sentence embeddings are computed once per
unique text (``sentence_embeddings``, cached on disk) and fed as ``text_features``; only the text head trains.
``unfreeze_text_layers=N`` trains the top N transformer layers of a frozen text tower: its features then
change with training, so they are never cached (``text_cached``) and training runs the tower live.

``get_dna_features(seqs)`` / ``get_text_features(texts)`` (the transformers ``CLIPModel`` habit) give the
shared-space vectors of raw genes and texts: the one path from a sequence or a text to the space that
evaluation, zero-shot naming and retrieval search in.

``save_pretrained`` writes a self-contained directory: ``config.json``, ``model.safetensors`` (heads and
temperature) and the towers in ``dna_encoder/`` and ``text_encoder/``, so ``from_pretrained`` needs no hub.
Weights are saved and loaded in float32 whatever the live model holds: DeepSpeed bf16 casts every weight
(towers, heads, the temperature) to bf16, and transformers 5 would reload a bf16 file as bf16.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from biotalk.data.clip_data import cached_text_features, crop
from biotalk.embeddings import usable_poolings
from biotalk.io import atomic_dir
from biotalk.models.clip_config import TEXT_DTYPES, BioTalkClipConfig, ClipOutput
from biotalk.models.clip_towers import (
    DNA_DIR,
    as_float32,
    default_text_encoder,
    freeze_unused_pooler,
    is_tower_key,
    load_text_encoder,
    projection_head,
    save_dna_tower,
    unfreeze_top_layers,
    upcast_saved_weights,
    weights_dtype,
)
from biotalk.models.encoders import load_dna_encoder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

TEXT_DIR, HEADS_FILE = "text_encoder", "model.safetensors"
class BioTalkClipModel(PreTrainedModel):
    config_class = BioTalkClipConfig
    base_model_prefix = "clip"

    def __init__(
        self,
        config: BioTalkClipConfig,
        dna_encoder: nn.Module | None = None,
        text_encoder: SentenceTransformer | None = None,
    ) -> None:
        super().__init__(config)
        dna = dna_encoder if dna_encoder is not None else load_dna_encoder(config.dna_encoder, dtype=torch.float32)
        text = text_encoder if text_encoder is not None else load_text_encoder(config.text_encoder)
        text_dim = text.get_embedding_dimension()
        dims, dropout = (config.head_hidden, config.projection_dim), config.head_dropout
        self.dna_projection = projection_head(config.dna_head, dna.hidden_size, *dims, dropout)
        self.text_projection = projection_head(config.text_head, text_dim, *dims, dropout)
        # Shape (1,), not a scalar: DeepSpeed's parameter broadcast cannot view a 0-d tensor as bytes.
        self.logit_scale = nn.Parameter(torch.full((1,), math.log(config.logit_scale_init)),
                                        requires_grad=config.learn_logit_scale)
        if config.logit_bias:  # only with SigLIP: under InfoNCE it would get no gradient (and stop DDP)
            self.logit_bias = nn.Parameter(torch.full((1,), float(config.logit_bias_init)))
        self.post_init()
        # The towers join after post_init so Hugging Face weight init never touches their pretrained weights.
        self.dna_encoder = dna
        self.text_encoder = text
        self.dna_encoder.requires_grad_(not config.freeze_dna)
        self.text_encoder.requires_grad_(not config.freeze_text)
        if config.freeze_text and config.unfreeze_text_layers:
            unfreeze_top_layers(self.text_encoder, config.unfreeze_text_layers)
        freeze_unused_pooler(self.text_encoder)

    @property
    def text_cached(self) -> bool:
        """The text tower is wholly frozen: its sentence embeddings depend on the texts alone."""
        return self.config.freeze_text and not self.config.unfreeze_text_layers

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):  # CLIP's projection init: std = fan_in ** -0.5
            nn.init.normal_(module.weight, std=module.in_features**-0.5)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def train(self, mode: bool = True) -> BioTalkClipModel:
        """Frozen towers stay in eval mode (no dropout), so cached text features match a live tower; so does a
        partly unfrozen text tower (its frozen layers must give the same features in training and evaluation)."""
        super().train(mode)
        if self.config.freeze_dna:
            self.dna_encoder.eval()
        if self.config.freeze_text:
            self.text_encoder.eval()
        return self

    # -- towers -----------------------------------------------------------------------------------
    def dna_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, special_tokens_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Masked-pooled DNA tower output (before the head): the embedding kNN evaluation uses.
        Padding is never pooled; special tokens are left out of mean/min/max when their mask is given.
        A tower with one fixed pooling (the k-mer spectrum) uses it, as in ``biotalk.embeddings``."""
        (pooling,) = usable_poolings(self.dna_encoder, [self.config.dna_pooling])
        return self.dna_encoder.embed_batch(input_ids, attention_mask, special_tokens_mask, [pooling])[pooling]

    def text_features(self, text_inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sentence embedding of tokenised texts (``text_encoder.preprocess`` output)."""
        return self.text_encoder(dict(text_inputs))["sentence_embedding"]

    @torch.no_grad()
    def embed_texts(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        """Sentence embeddings of raw texts on the model's device, as fed to ``text_features=``."""
        was_training = self.text_encoder.training
        self.text_encoder.eval()
        dtype = TEXT_DTYPES[self.config.text_embed_dtype]
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            out = self.text_encoder.encode(
                texts, batch_size=batch_size, convert_to_tensor=True, device=str(self.device),
                show_progress_bar=len(texts) > 1000,
            )
        self.text_encoder.train(was_training)
        return out.float().clone()  # encode() runs in inference mode; a clone can enter autograd

    def sentence_embeddings(self, texts: list[str], cache_dir: Path | None = None, batch_size: int = 64) -> torch.Tensor:
        """Text-tower sentence embeddings (before the head) on the CPU. A frozen tower's depend on the texts
        alone, so with ``cache_dir`` they are computed once and kept on disk (``text_cache_key``)."""
        if cache_dir is None or not self.text_cached:
            return self.embed_texts(texts, batch_size).cpu()
        return cached_text_features(lambda t: self.embed_texts(t, batch_size), texts, self.text_cache_key(),
                                    Path(cache_dir))

    def text_cache_key(self) -> str:
        """A digest of the text tower's weights, the autocast dtype and, when not float32, the dtype the weights
        really have (DeepSpeed bf16 casts them): every saved model with the same frozen tower shares one cache
        entry, and features of a bf16 tower are never read as a float32 tower's, nor the reverse."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.text_encoder.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        key = f"text-weights={digest.hexdigest()[:20]}|{self.config.text_embed_dtype}"
        weights = weights_dtype(self.text_encoder)
        return key if weights == torch.float32 else f"{key}|weights={str(weights).removeprefix('torch.')}"

    # -- shared space: what evaluation, zero-shot and retrieval use ----------------------------------
    @torch.no_grad()
    def get_text_features(self, texts: list[str], batch_size: int = 64, cache_dir: Path | None = None) -> torch.Tensor:
        """Shared-space vectors (projected, L2-normalised) of raw texts, float32 on the CPU."""
        features = self.sentence_embeddings(texts, cache_dir, batch_size)
        return self.project_text(features.to(self.device)).float().cpu()

    @torch.no_grad()
    def get_dna_features(self, seqs: list[str], batch_size: int = 64) -> torch.Tensor:
        """Shared-space vectors (projected, L2-normalised) of genes, in input order, float32 on the CPU.

        Each gene is read as in evaluation: its first ``config.window_nt`` bases (the window the model
        trained on; 0 = the whole gene). Batches hold genes of similar length, so little padding is computed.
        """
        windows = [crop(s, self.config.window_nt, None) for s in seqs]
        order = np.argsort([len(w) for w in windows], kind="stable")
        out = torch.zeros(len(windows), self.config.projection_dim)
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc="embed DNA", leave=False, disable=len(starts) < 10):
            rows = order[start : start + batch_size]
            enc = self.dna_encoder.tokenize([windows[i] for i in rows])
            feats = self.dna_features(*(enc[k].to(self.device) for k in ("input_ids", "attention_mask", "special_tokens_mask")))
            out[torch.from_numpy(rows)] = self.project_dna(feats).float().cpu()
        return out

    # -- heads --------------------------------------------------------------------------------------
    def project_dna(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.dna_projection(features.to(weights_dtype(self.dna_projection))), dim=-1)

    def project_text(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_projection(features.to(weights_dtype(self.text_projection))), dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=math.log(self.config.logit_scale_max)).exp().squeeze(0)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        special_tokens_mask: torch.Tensor | None = None,
        text_inputs: dict[str, torch.Tensor] | None = None,
        text_features: torch.Tensor | None = None,
    ) -> ClipOutput:
        """Embed a batch of DNA and text pairs; text comes tokenised or as cached sentence embeddings."""
        if (text_inputs is None) == (text_features is None):
            raise ValueError("pass exactly one of text_inputs (live text tower) or text_features (cached)")
        if text_features is None:
            text_features = self.text_features(text_inputs)
        return ClipOutput(
            dna_embeds=self.project_dna(self.dna_features(input_ids, attention_mask, special_tokens_mask)),
            text_embeds=self.project_text(text_features),
            logit_scale=self.scale(),
            logit_bias=self.logit_bias.squeeze(0) if self.config.logit_bias else None,
        )

    # -- persistence ------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:
        """Write a self-contained directory (config, heads, both towers), every weight in float32 (bf16
        weights are upcast: the values evaluated, at full width); atomic: all or nothing."""
        heads = {k: as_float32(v.detach()).contiguous().cpu() for k, v in self.state_dict().items() if not is_tower_key(k)}
        with atomic_dir(save_directory) as tmp:
            config = BioTalkClipConfig.from_dict(self.config.to_dict())
            config.dna_encoder, config.text_encoder = save_dna_tower(self.dna_encoder, tmp / DNA_DIR), TEXT_DIR
            config.save_pretrained(tmp)
            save_file(heads, str(tmp / HEADS_FILE), metadata={"format": "pt"})
            self.text_encoder.save(str(tmp / TEXT_DIR))
            upcast_saved_weights(tmp)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs) -> BioTalkClipModel:
        """Load a directory written by ``save_pretrained``; local paths only."""
        path = Path(pretrained_model_name_or_path)
        if not (path / HEADS_FILE).is_file():
            raise FileNotFoundError(f"{path}: not a BioTalk-CLIP directory (no {HEADS_FILE})")
        config = BioTalkClipConfig.from_pretrained(path)
        if config.dna_encoder == DNA_DIR:
            config.dna_encoder = str(path / DNA_DIR)
        config.text_encoder = str(path / TEXT_DIR)
        model = cls(config)
        missing, unexpected = model.load_state_dict(load_file(str(path / HEADS_FILE)), strict=False)
        missing = [k for k in missing if not is_tower_key(k)]
        if missing or unexpected:
            raise ValueError(f"{path / HEADS_FILE}: missing {missing}, unexpected {unexpected}")
        return model.eval()


def build_clip_model(
    dna_encoder: str,
    text_encoder: str = "",
    **options,
) -> BioTalkClipModel:
    """A fresh model (random heads) from tower paths; ``options`` are BioTalkClipConfig fields."""
    config = BioTalkClipConfig(dna_encoder=str(dna_encoder), text_encoder=text_encoder or default_text_encoder(), **options)
    return BioTalkClipModel(config)
