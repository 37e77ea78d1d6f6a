"""LOLBERT pretraining recipes on the real genomes: the CDS source, span and codon masking, packing."""

from pathlib import Path

import numpy as np
import pytest
import torch
from Bio.Seq import Seq

from biotalk.data.fragments import reverse_complement
from biotalk.data.genomes import draw_cds_windows, read_cds, read_genomes, split_regions
from biotalk.data.pretrain_batches import (
    PAD,
    BatchRecipe,
    Corpus,
    build_corpus,
    fragment_positions,
    train_batch,
)
from biotalk.models.lolbert import VOCAB, build_lolbert_tokenizer

RAW = Path(__file__).resolve().parents[1] / "data" / "raw"
MASK = VOCAB.index("M")


@pytest.fixture(scope="module")
def train():
    return split_regions(read_genomes(RAW / "genbank")[0], ["Streptococcus_pyogenes"], 0.0)[0]


@pytest.fixture(scope="module")
def cds_corpus(train):
    return build_corpus("cds", train, RAW / "genbank")


@pytest.fixture(scope="module")
def tok():
    return build_lolbert_tokenizer()


def _batch(tok, corpus, masking, packing=False, step=1, rows=64):
    recipe = BatchRecipe(max_nt=100, masking=masking, packing=packing)
    return train_batch(tok, corpus, recipe, rows, 0.5, seed=0, step=step, process=0)


def _chosen(batch):
    return batch["labels"] != -100


def _runs(row: torch.Tensor) -> list[int]:
    """Lengths of the runs of True in a row."""
    edges = np.diff(np.concatenate([[0], row.int().numpy(), [0]]))
    return (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).tolist()


@pytest.mark.parametrize("packing", [False, True])
@pytest.mark.parametrize("masking", ["token", "span", "codon"])
def test_masks_hit_bases_only_at_the_rate_and_keep_the_labels(tok, train, masking, packing):
    batch = _batch(tok, Corpus(train, []), masking, packing, rows=128)
    chosen, ids, labels = _chosen(batch), batch["input_ids"], batch["labels"]
    originals = torch.where(chosen, labels, ids)
    assert ids.shape[0] == 128 and ids.shape == labels.shape
    maskable = originals >= VOCAB.index("G")
    assert not (chosen & ~maskable).any()  # never S, P, /S, N (nor M: it is no input base)
    assert 0.13 < chosen.sum() / maskable.sum() < 0.17
    assert 0.7 < (ids[chosen] == MASK).float().mean() < 0.9  # 80/10/10 on every recipe
    runs = [n for row in chosen for n in _runs(row)]
    assert (np.mean(runs) > 2.5) == (masking in ("span", "codon"))  # token masking: mostly single bases


def test_span_lengths_follow_span_mean(tok, train):
    corpus = Corpus(train, [])
    short = [n for row in _chosen(_batch(tok, corpus, "span")) for n in _runs(row)]
    recipe = BatchRecipe(max_nt=100, masking="span", span_mean=6.0)
    long = [n for row in _chosen(train_batch(tok, corpus, recipe, 64, 0.5, 0, 1, 0)) for n in _runs(row)]
    assert np.mean(long) > np.mean(short) + 1


@pytest.mark.parametrize("packing", [False, True])
def test_codon_masks_take_whole_codons_framed_from_each_fragment_start(tok, cds_corpus, packing):
    batch = _batch(tok, cds_corpus, "codon", packing)
    chosen = _chosen(batch)
    originals = torch.where(chosen, batch["labels"], batch["input_ids"])
    pos = fragment_positions(originals)
    assert (pos[:, 0] == -1).all() and (pos[:, 1] == 0).all()
    for row in range(chosen.shape[0]):
        codon = {}
        for t in range(chosen.shape[1]):
            if pos[row, t] >= 0 and originals[row, t] >= VOCAB.index("G"):
                codon.setdefault(t - int(pos[row, t]) % 3, set()).add(bool(chosen[row, t]))
        assert all(len(v) == 1 for v in codon.values())  # a codon's bases are all targets or none


def test_cds_windows_are_in_frame(cds_corpus):
    """CDS windows start on a codon boundary of the sense strand: in frame they translate without an internal
    stop for nearly every window; shifted by one base most of them hit a stop (so the check can fail)."""
    k12 = [c for c in cds_corpus.cds if c.source.startswith("Escherichia_coli_K12")]
    assert len(k12) > 3000 and all(c.table == 11 for c in k12)
    windows = draw_cds_windows(k12, 500, np.random.default_rng(0))
    genes = "|".join(c.sequence for c in k12)

    def stops(seq: str) -> bool:
        return "*" in str(Seq(seq[: len(seq) // 3 * 3]).translate(table=11))[:-1]

    assert all(w in genes for w in windows[:50])
    assert sum(map(stops, windows)) < 0.02 * len(windows)
    assert sum(stops(w[1:]) for w in windows) > 0.5 * len(windows)


def test_read_cds_reads_strands_and_genetic_codes():
    cds, coding = read_cds(RAW / "genbank")
    assert {c.strand for c in cds} == {1, -1} and len(coding) >= len(cds) > 25_000
    assert {c.table for c in cds if c.source.startswith("Mycoplasma_gallisepticum")} == {4}
    assert all(len(c.sequence) == len(c) for c in cds)
    for strand in (1, -1):  # sense strand: starts with a start codon and ends with a stop of the gene's code
        genes = [c for c in cds if c.strand == strand]
        stops = {11: ("TAA", "TAG", "TGA"), 4: ("TAA", "TAG")}
        assert np.mean([c.sequence[-3:] in stops[c.table] for c in genes]) > 0.98
        assert np.mean([c.sequence[:3] in ("ATG", "GTG", "TTG") for c in genes]) > 0.95


def test_cds_source_mixes_intergenic_dna_at_its_share(cds_corpus):
    """The CDS' share of the training bases by default (bacterial genomes are ~85 % coding), or ``cds_fraction``:
    the fragments that occur in the intergenic DNA (no CDS window does) are the rest."""
    assert 0.75 < cds_corpus.cds_fraction < 0.95
    intergenic = "|".join(r.sequence for r in cds_corpus.regions)
    half = Corpus(cds_corpus.regions, cds_corpus.cds, 0.5)
    frags = half.draw(300, np.random.default_rng(0), 0.5)
    share = np.mean([f in intergenic or reverse_complement(f) in intergenic for f in frags])
    assert 0.4 < share < 0.6


def test_packing_fills_windows_without_padding_and_is_seeded(tok, cds_corpus):
    first, again = _batch(tok, cds_corpus, "codon", True, step=3), _batch(tok, cds_corpus, "codon", True, step=3)
    assert all(torch.equal(first[k], again[k]) for k in first)
    other = _batch(tok, cds_corpus, "codon", True, step=4)
    assert not torch.equal(first["input_ids"], other["input_ids"])
    ids = torch.where(_chosen(first), first["labels"], first["input_ids"])
    assert ids.shape == (64, 102) and (first["attention_mask"] == 1).all() and not (ids == PAD).any()
    assert (ids[:, 0] == VOCAB.index("S")).all()
    inner = ids[:, 1:-1] == VOCAB.index("/S")  # a fragment of < 100 nt is followed by the next one
    assert inner.sum(1).max() == 1 and 0.1 < inner.any(1).float().mean() < 0.9
    padded = _batch(tok, cds_corpus, "codon", False, step=3)
    assert (padded["attention_mask"] == 0).any()  # unpacked, short fragments leave padding
