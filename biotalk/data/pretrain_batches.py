"""LOLBERT pretraining batches: where fragments come from, how they are masked, whether they are packed.

- **source** ``genome``: read-length fragments uniform over the training regions (every non-test CDS and the
  intergenic DNA), reverse-complemented with ``rc_prob``. ``cds``: in-frame windows of the training CDS (sense
  strand, first base on a codon boundary; ``biotalk.data.genomes.draw_cds_windows``) mixed with fragments of the
  intergenic DNA, at the CDS' genomic share of the bases or at ``cds_fraction``. A CDS is read only if it lies
  wholly in the training regions, so the held-out genome and every gene ``cut_out`` removed stay unread.
- **masking** ``token``: BERT's 15 % of bases. ``span``: SpanBERT's geometric spans. ``codon``: whole codons,
  framed from each fragment's first base (the reading frame for CDS windows). All three use 80/10/10 and never
  pick ``S P /S N M`` (``biotalk.models.lolbert``).
- **packing**: fragments (each cut to ``max_nt``) follow one another in windows of exactly ``max_nt + 2``
  tokens (``S`` first, ``/S`` after each fragment, the last one cut at the window's end), so no position is
  padding. Attention runs across fragment boundaries: blocking it would need a 4-D mask per window, and a
  neighbouring fragment only adds unrelated context.

The training batch of step ``s`` is drawn from ``biotalk.rng.stream(seed, s, process)`` alone (fragments,
then the masking seed), so a resumed run sees the batches of an uninterrupted one. The held-out set is one
protocol for every recipe: unpacked fragments, token masking, every target replaced by ``M``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from biotalk.data.genomes import Cds, Region, cds_inside, cut_out, draw_cds_windows, draw_fragments, read_cds
from biotalk.models.lolbert import VOCAB, apply_mask, choose_codons, choose_spans, mask_tokens
from biotalk.rng import stream

FIRST_BASE_ID = VOCAB.index("G")  # ids below are S, P, /S, N, M: never MLM targets
CLS, PAD, SEP = (VOCAB.index(t) for t in ("S", "P", "/S"))
MIN_INTERGENIC_NT = 30  # shorter gaps between genes are dropped from the intergenic pieces


@dataclass(frozen=True)
class BatchRecipe:
    max_nt: int = 510
    mlm_probability: float = 0.15
    masking: Literal["token", "span", "codon"] = "token"
    span_mean: float = 3.0
    span_max: int = 10
    packing: bool = False


@dataclass(frozen=True)
class Corpus:
    """The training fragments' source: ``regions`` (all training DNA, or only its intergenic pieces when
    ``cds`` is given) and the CDS read in frame for a share ``cds_fraction`` of the fragments."""

    regions: list[Region]
    cds: list[Cds]
    cds_fraction: float = 0.0

    def draw(self, n: int, rng: np.random.Generator, rc_prob: float) -> list[str]:
        if not self.cds:
            return [frag.sequence for _, frag in draw_fragments(self.regions, n, rng, rc_prob)]
        from_cds = rng.random(n) < self.cds_fraction
        coding = iter(draw_cds_windows(self.cds, int(from_cds.sum()), rng))
        other = iter([f.sequence for _, f in draw_fragments(self.regions, n - int(from_cds.sum()), rng, rc_prob)])
        return [next(coding) if c else next(other) for c in from_cds.tolist()]


def build_corpus(
    source: Literal["genome", "cds"], train: list[Region], genbank_dir: str | Path, cds_fraction: float | None = None
) -> Corpus:
    """The corpus of ``source`` over the training regions ``train`` (after the held-out cut)."""
    if source == "genome":
        return Corpus(train, [])
    if source != "cds":
        raise ValueError(f"source must be 'genome' or 'cds', got {source!r}")
    readable, coding = read_cds(genbank_dir)
    cds = cds_inside(readable, train)
    intergenic, _ = cut_out(train, coding, MIN_INTERGENIC_NT)
    if not cds or not intergenic:
        raise ValueError(f"{genbank_dir}: the cds source found {len(cds)} training CDS, {len(intergenic)} intergenic pieces")
    coding_nt = sum(map(len, cds))
    share = coding_nt / (coding_nt + sum(map(len, intergenic))) if cds_fraction is None else cds_fraction
    if not 0.0 < share <= 1.0:
        raise ValueError(f"cds_fraction must lie in (0, 1], got {share}")
    return Corpus(intergenic, cds, share)


def fragment_positions(ids: torch.Tensor) -> torch.Tensor:
    """Each token's base index within its fragment (counted from the last ``S`` or ``/S``); -1 on S, P, /S."""
    steps = torch.arange(ids.shape[1]).expand_as(ids)
    boundary = (ids == CLS) | (ids == SEP)
    last = torch.cummax(torch.where(boundary, steps, torch.full_like(steps, -1)), dim=1).values
    return torch.where(boundary | (ids == PAD), torch.full_like(ids, -1), steps - last - 1)


def mask_batch(
    ids: torch.Tensor, attention: torch.Tensor, recipe: BatchRecipe, seed: int, mask_all: bool = False
) -> dict[str, torch.Tensor]:
    """Mask one tokenised batch by ``recipe.masking``; the masking is a function of ``seed`` only."""
    gen = torch.Generator().manual_seed(seed)
    special = ids < FIRST_BASE_ID
    if recipe.masking == "token":
        masked, labels = mask_tokens(ids, special, recipe.mlm_probability, gen, mask_all)
    else:
        if recipe.masking == "span":
            chosen = choose_spans(special, recipe.mlm_probability, gen, recipe.span_mean, recipe.span_max)
        elif recipe.masking == "codon":
            chosen = choose_codons(special, fragment_positions(ids), recipe.mlm_probability, gen)
        else:
            raise ValueError(f"masking must be token, span or codon, got {recipe.masking!r}")
        masked, labels = apply_mask(ids, chosen, gen, mask_all)
    return {"input_ids": masked, "attention_mask": attention, "labels": labels}


def make_batch(tokenizer, seqs: list[str], recipe: BatchRecipe, seed: int, mask_all: bool = False) -> dict[str, torch.Tensor]:
    """Tokenise (one fragment a row, cut to ``max_nt``), pad and mask one batch."""
    enc = tokenizer(seqs, padding=True, truncation=True, max_length=recipe.max_nt + 2, return_tensors="pt")
    return mask_batch(enc["input_ids"], enc["attention_mask"], recipe, seed, mask_all)


def pack(tokenizer, draw, rows: int, max_nt: int) -> torch.Tensor:
    """``rows`` windows of ``max_nt + 2`` tokens filled with fragments from ``draw()`` (a list per call)."""
    width, windows, current, pending = max_nt + 2, [], [CLS], []
    while len(windows) < rows:
        if not pending:
            pending = tokenizer(draw(), add_special_tokens=False)["input_ids"][::-1]
        current += pending.pop()[:max_nt][: width - len(current)]
        if len(current) < width:
            current.append(SEP)
        if len(current) == width:
            windows.append(current)
            current = [CLS]
    return torch.tensor(windows)


def train_batch(
    tokenizer, corpus: Corpus, recipe: BatchRecipe, batch_size: int, rc_prob: float, seed: int, step: int, process: int
) -> dict[str, torch.Tensor]:
    """The batch of ``step`` on ``process``: a function of (seed, step, process) alone."""
    rng = stream(seed, step, process)
    if recipe.packing:
        ids = pack(tokenizer, lambda: corpus.draw(batch_size, rng, rc_prob), batch_size, recipe.max_nt)
        return mask_batch(ids, torch.ones_like(ids), recipe, int(rng.integers(2**62)))
    return make_batch(tokenizer, corpus.draw(batch_size, rng, rc_prob), recipe, int(rng.integers(2**62)))


HELDOUT_STREAM = 2**31  # the held-out set's random stream (biotalk.rng); training steps use (step, process)


def heldout_batches(
    tokenizer, regions: list[Region], seed: int, n: int, batch_size: int, rc_prob: float, max_nt: int, probability: float
) -> list[dict[str, torch.Tensor]]:
    """The fixed held-out set, one protocol for every recipe: ``n`` unpacked fragments of ``regions`` and
    token masks drawn from a seed of their own, every target replaced by the mask token, so accuracy measures
    prediction from context alone."""
    rng = stream(seed, HELDOUT_STREAM)
    seqs = [frag.sequence for _, frag in draw_fragments(regions, n, rng, rc_prob)]
    recipe = BatchRecipe(max_nt=max_nt, mlm_probability=probability)
    return [
        make_batch(tokenizer, seqs[i : i + batch_size], recipe, int(rng.integers(2**62)), mask_all=True)
        for i in range(0, len(seqs), batch_size)
    ]
