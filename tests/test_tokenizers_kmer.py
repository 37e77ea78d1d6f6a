"""k-mer tokenizers (DNABERT overlapping, Nucleotide Transformer non-overlapping) and the k-mer spectrum,
checked on real genes from data/raw against plain-Python oracles."""

import gzip
import random
import re
from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from Bio import SeqIO
from transformers import AutoTokenizer

from biotalk.data.fragments import reverse_complement
from biotalk.models.encoders import KmerSpectrumEncoder
from biotalk.models.kmer import (
    DNABERT_SPECIALS,
    KmerTokenizerFast,
    all_kmers,
    build_dnabert_tokenizer,
    build_nt_tokenizer,
    kmer_size_of_vocab,
    read_vocab_txt,
)

GENOME = Path(__file__).resolve().parents[1] / "data/raw/genbank/Hepatoplasma_crinochetorum_Av_NZ_CP006932.1.gb.gz"


@cache
def real_genes(n: int = 40) -> tuple[str, ...]:
    """The first ``n`` CDS of a small real genome, as DNA strings."""
    with gzip.open(GENOME, "rt") as handle:
        record = next(SeqIO.parse(handle, "genbank"))
    cds = [f for f in record.features if f.type == "CDS" and "pseudo" not in f.qualifiers]
    return tuple(str(f.extract(record.seq)) for f in cds[:n])


def nt_oracle(seq: str) -> list[str]:
    """NT tokens: each run of A/C/G/T as 6-mers from its start plus single-letter tail; other letters alone."""
    tokens = []
    for run, other in re.findall(r"([ACGT]*)([^ACGT]?)", seq):
        cut = len(run) - len(run) % 6
        tokens += [run[i : i + 6] for i in range(0, cut, 6)] + list(run[cut:])
        tokens += [other] if other else []
    return tokens


def test_dnabert_vocab_layout():
    tok = build_dnabert_tokenizer(6)
    assert len(tok) == 4101
    assert [tok.convert_tokens_to_ids(t) for t in DNABERT_SPECIALS] == [0, 1, 2, 3, 4]
    assert len(build_dnabert_tokenizer(3)) == 5 + 64


@pytest.mark.parametrize("k", [3, 6])
def test_overlapping_kmers_on_real_genes(k):
    tok = build_dnabert_tokenizer(k)
    genes = real_genes()
    batch = tok(list(genes))["input_ids"]
    for gene, ids in zip(genes, batch, strict=True):
        assert len(ids) == len(gene) - k + 1 + 2
        tokens = tok.convert_ids_to_tokens(ids)
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
        kmers = tokens[1:-1]
        assert kmers == [gene[i : i + k] for i in range(len(gene) - k + 1)]
        # overlapping k-mers rebuild the gene: first k-mer, then the last base of each next one
        assert kmers[0] + "".join(km[-1] for km in kmers[1:]) == gene


def test_dnabert_accepts_raw_spaced_lower_and_presplit_input():
    tok = build_dnabert_tokenizer(6)
    gene = real_genes()[0][:300]
    kmers = [gene[i : i + 6] for i in range(len(gene) - 5)]
    raw = tok(gene)["input_ids"]
    assert tok(" ".join(kmers))["input_ids"] == raw
    assert tok(gene.lower())["input_ids"] == raw
    assert tok([kmers], is_split_into_words=True)["input_ids"][0] == raw
    with_n = gene[:50] + "N" + gene[51:]
    n_ids = tok(with_n)["input_ids"]
    assert n_ids.count(tok.unk_token_id) == 6  # every k-mer that covers the N


def test_dnabert_save_and_load(tmp_path):
    tok = build_dnabert_tokenizer(6)
    tok.save_pretrained(tmp_path)
    back = KmerTokenizerFast.from_pretrained(str(tmp_path))
    assert back.k == 6 and len(back) == 4101
    genes = list(real_genes()[:10])
    assert back(genes)["input_ids"] == tok(genes)["input_ids"]
    assert back.special_tokens_map == tok.special_tokens_map


def test_checkpoint_vocab_txt_keeps_its_ids(tmp_path):
    """A DNABERT checkpoint's vocab.txt may order k-mers its own way: its line numbers are the ids."""
    kmers = all_kmers(6)
    random.Random(0).shuffle(kmers)
    (tmp_path / "vocab.txt").write_text("\n".join(DNABERT_SPECIALS + kmers) + "\n")
    vocab = read_vocab_txt(tmp_path / "vocab.txt")
    assert kmer_size_of_vocab(vocab) == 6
    tok = build_dnabert_tokenizer(6, vocab)
    gene = real_genes()[1]
    ids = tok(gene)["input_ids"][1:-1]
    assert ids == [5 + kmers.index(gene[i : i + 6]) for i in range(len(gene) - 5)]


def test_nt_tokenizer_on_real_genes_and_fallback(tmp_path):
    tok = build_nt_tokenizer()
    assert len(tok) == 4106
    rng = random.Random(1)
    genes = list(real_genes())
    with_ns = []
    for gene in genes[:10]:
        pos = sorted(rng.sample(range(len(gene)), 3))
        with_ns.append("".join("N" if i in pos else c for i, c in enumerate(gene)))
    tok.save_pretrained(tmp_path)
    back = AutoTokenizer.from_pretrained(str(tmp_path))
    for seq in genes + with_ns:
        ids = tok(seq)["input_ids"]
        tokens = tok.convert_ids_to_tokens(ids)
        assert tokens[0] == "<cls>"
        assert tokens[1:] == nt_oracle(seq)
        assert "".join(tokens[1:]) == seq
        assert back(seq)["input_ids"] == ids
    gene = genes[0]
    assert len(tok(gene)["input_ids"]) == 1 + len(gene) // 6 + len(gene) % 6


def test_nt_tokenizer_unknown_letters_and_case():
    tok = build_nt_tokenizer()
    tokens = tok.convert_ids_to_tokens(tok("acgtacgtRacgtacgtaa")["input_ids"])
    assert tokens == ["<cls>", "ACGTAC", "G", "T", "<unk>", "ACGTAC", "G", "T", "A", "A"]


@pytest.mark.parametrize("k", [2, 4])
def test_spectrum_matches_counted_kmers(k):
    enc = KmerSpectrumEncoder(k)
    genes = list(real_genes()[:8])
    batch = enc.tokenize(genes)
    spectra = enc(batch["input_ids"], batch["attention_mask"]).numpy()
    index = {km: i for i, km in enumerate(all_kmers(k))}
    for gene, row in zip(genes, spectra, strict=True):
        counts = Counter(gene[i : i + k] for i in range(len(gene) - k + 1))
        expected = np.zeros(4**k)
        for km, c in counts.items():
            if km in index:
                expected[index[km]] = c
        np.testing.assert_allclose(row, expected / expected.sum(), rtol=1e-6)


def test_canonical_spectrum_is_strand_independent():
    enc = KmerSpectrumEncoder(4, canonical=True)
    assert enc.hidden_size == 136  # (4**4 + 4**2) / 2 k-mer classes under reverse complement
    genes = list(real_genes()[:8])
    fwd = enc.tokenize(genes)
    rev = enc.tokenize([reverse_complement(g) for g in genes])
    a = enc(fwd["input_ids"], fwd["attention_mask"])
    b = enc(rev["input_ids"], rev["attention_mask"])
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-7)
    plain = KmerSpectrumEncoder(4)
    fwd, rev = plain.tokenize(genes), plain.tokenize([reverse_complement(g) for g in genes])
    assert not np.allclose(plain(fwd["input_ids"], fwd["attention_mask"]), plain(rev["input_ids"], rev["attention_mask"]))
