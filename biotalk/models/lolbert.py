"""LOLBERT: a RoBERTa over single nucleotides (the paper's DNA encoder), its tokenizer and configs.

The vocabulary is the 9 tokens of the paper: ``S`` (cls/bos), ``P`` (pad), ``/S`` (sep/eos),
``N`` (unk), ``M`` (mask) and the bases ``G A C T``. ``S``, ``M`` and ``N`` are also IUPAC base codes,
so the tokenizer never reads special tokens out of the input text (``split_special_tokens``):
every letter other than ACGT in a sequence becomes ``N``, and special tokens are inserted by id only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast, RobertaConfig

VOCAB = ["S", "P", "/S", "N", "M", "G", "A", "C", "T"]
MAX_TOKENS = 512  # special tokens included; RoBERTa offsets positions by pad_id + 1, hence 514
MAX_POSITIONS = MAX_TOKENS + 2
MASK_ID = VOCAB.index("M")
BASE_IDS = torch.tensor([VOCAB.index(b) for b in "GACT"])
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "lolbert"


def build_lolbert_tokenizer() -> PreTrainedTokenizerFast:
    """The single-nucleotide LOLBERT tokenizer: upper-cases, maps non-ACGT to ``N``, adds ``S ... /S``."""
    ids = {tok: i for i, tok in enumerate(VOCAB)}
    core = Tokenizer(WordLevel(ids, unk_token="N"))
    core.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex(r"\s"), ""),
            *[normalizers.Replace(base.lower(), base) for base in "ACGT"],
            normalizers.Replace(Regex("[^ACGT]"), "N"),
        ]
    )
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.post_processor = processors.TemplateProcessing(
        single="S $A /S",
        pair="S $A /S /S $B /S",
        special_tokens=[("S", ids["S"]), ("/S", ids["/S"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="S",
        cls_token="S",
        eos_token="/S",
        sep_token="/S",
        unk_token="N",
        pad_token="P",
        mask_token="M",
        model_max_length=MAX_TOKENS,
        split_special_tokens=True,  # a raw S/M/N/P base in the input is a base, never a special token
    )


@dataclass
class LolbertArch:
    """RoBERTa sizes of a LOLBERT; the ``model:`` section of configs/lolbert/*.yaml."""

    num_hidden_layers: int = 12
    hidden_size: int = 768
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = MAX_POSITIONS


def roberta_config(arch: LolbertArch) -> RobertaConfig:
    """A RobertaConfig with the LOLBERT vocabulary and special-token ids."""
    tok = {t: i for i, t in enumerate(VOCAB)}
    return RobertaConfig(
        vocab_size=len(VOCAB),
        type_vocab_size=1,
        pad_token_id=tok["P"],
        bos_token_id=tok["S"],
        eos_token_id=tok["/S"],
        **dataclasses.asdict(arch),
    )


def lolbert_config(size: str | Path = "mini") -> RobertaConfig:
    """RobertaConfig from the ``model:`` section of ``configs/lolbert/{size}.yaml`` (or a YAML path)."""
    path = Path(size) if str(size).endswith((".yaml", ".yml")) else CONFIG_DIR / f"{size}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no LOLBERT config {path}")
    section = (yaml.safe_load(path.read_text()) or {}).get("model")
    if not isinstance(section, dict):
        raise ValueError(f"{path}: missing 'model:' section")
    try:
        arch = LolbertArch(**section)
    except TypeError as err:
        raise ValueError(f"{path}: model section: {err}") from None
    return roberta_config(arch)


def mask_tokens(
    input_ids: torch.Tensor,
    special_mask: torch.Tensor,
    probability: float,
    generator: torch.Generator,
    mask_all: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking (80 % mask, 10 % random base, 10 % kept) with an explicit generator.

    The generator makes a batch's masking a function of its seed alone, so a resumed run
    masks exactly as an uninterrupted one. ``mask_all`` puts the mask token on every target
    (for evaluation: a kept base would be copied, not predicted, inflating accuracy).
    Returns ``(masked_ids, labels)`` with -100 off-target.
    """
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & ~special_mask
    return apply_mask(input_ids, chosen, generator, mask_all)


def apply_mask(
    input_ids: torch.Tensor, chosen: torch.Tensor, generator: torch.Generator, mask_all: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's 80/10/10 replacement of the ``chosen`` positions (each position rolls on its own)."""
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    roll = torch.rand(input_ids.shape, generator=generator)
    if mask_all:
        roll = torch.zeros_like(roll)
    bases = BASE_IDS[torch.randint(len(BASE_IDS), input_ids.shape, generator=generator)]
    masked = torch.where(chosen & (roll < 0.8), torch.full_like(input_ids, MASK_ID), input_ids)
    masked = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), bases, masked)
    return masked, labels


def choose_spans(
    special_mask: torch.Tensor, probability: float, generator: torch.Generator, mean: float, max_len: int
) -> torch.Tensor:
    """SpanBERT-style targets: contiguous spans with geometric lengths (``mean``, clipped to ``max_len``)
    at uniform starts, drawn until each row has ``probability`` of its maskable positions chosen (rounded
    at random, so the expected rate is exact). Spans skip special positions and may run over a separator."""
    if mean < 1 or not 0 <= probability < 1:
        raise ValueError(f"span masking needs span_mean >= 1 and 0 <= probability < 1, got {mean}, {probability}")
    chosen = torch.zeros_like(special_mask)
    log_keep = math.log1p(-1.0 / mean) if mean > 1 else -math.inf  # geometric: P(L > k) = (1 - 1/mean)^k
    for row in range(special_mask.shape[0]):
        allowed = (~special_mask[row]).nonzero().squeeze(1)
        budget = int(probability * len(allowed) + torch.rand((), generator=generator).item())
        covered = 0
        while covered < budget:
            u = torch.rand((), generator=generator).item()
            length = min(1 + int(math.log1p(-u) / log_keep), max_len, budget - covered)
            start = int(allowed[torch.randint(len(allowed), (), generator=generator)])
            span = chosen[row, start : start + length]
            span |= ~special_mask[row, start : start + length]
            covered = int(chosen[row].sum())
    return chosen


def choose_codons(
    special_mask: torch.Tensor, positions: torch.Tensor, probability: float, generator: torch.Generator
) -> torch.Tensor:
    """Whole-codon targets: each triplet of ``positions`` (base index within its fragment; -1 on special
    tokens) 0-2, 3-5, ... is chosen with ``probability``, all its maskable bases together. Position 0 is
    a codon start for in-frame CDS windows; other fragments are framed from their first base."""
    steps = torch.arange(special_mask.shape[1]).expand_as(positions)
    first = torch.where(positions >= 0, steps - positions % 3, steps)  # token index of the codon's first base
    roll = torch.rand(special_mask.shape, generator=generator)
    return (roll.gather(1, first) < probability) & (positions >= 0) & ~special_mask
