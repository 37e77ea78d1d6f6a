"""embed_sequences (windows, batching, order) and the embedding cache, on tiny random checkpoints and real genes."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_tokenizers_kmer import real_genes
from transformers import BertConfig, BertForMaskedLM, EsmConfig, EsmForMaskedLM

from biotalk.embeddings import cached_embeddings, embed_cached, embed_sequences, window_starts
from biotalk.models import load_dna_encoder
from biotalk.models.kmer import DNABERT_SPECIALS, all_kmers, build_nt_tokenizer

SMALL = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
POOLINGS = ["cls", "min", "max", "mean"]


@pytest.fixture(scope="module")
def tiny_dnabert(tmp_path_factory):
    path = tmp_path_factory.mktemp("dnabert")
    torch.manual_seed(1)
    BertForMaskedLM(BertConfig(vocab_size=4101, max_position_embeddings=64, **SMALL)).save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(DNABERT_SPECIALS + all_kmers(6)) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny_nt(tmp_path_factory):
    path = tmp_path_factory.mktemp("nt")
    tok = build_nt_tokenizer()
    torch.manual_seed(2)
    config = EsmConfig(vocab_size=len(tok), max_position_embeddings=34, pad_token_id=tok.pad_token_id,
                       mask_token_id=tok.mask_token_id, position_embedding_type="absolute", **SMALL)
    EsmForMaskedLM(config).save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(tok.convert_ids_to_tokens(list(range(len(tok))))) + "\n")
    return path


class ForwardCounter:
    """Counts forward calls of an encoder (a real hook on the real module)."""

    def __init__(self, encoder):
        self.calls = 0
        encoder.register_forward_hook(lambda *_: setattr(self, "calls", self.calls + 1))


@pytest.mark.parametrize("which", ["lolbert", "dnabert", "nt"])
def test_embedding_does_not_depend_on_its_batch(which, tiny_lolbert, tiny_dnabert, tiny_nt):
    path = {"lolbert": tiny_lolbert, "dnabert": tiny_dnabert, "nt": tiny_nt}[which]
    kwargs = {"max_tokens": 130} if which == "lolbert" else {}  # several windows per gene, quickly
    enc = load_dna_encoder(path, **kwargs)
    genes = sorted(real_genes()[:12], key=len)
    short = genes[0][:150]
    together = embed_sequences(enc, [short, *(g[:1200] for g in genes[-3:])], POOLINGS, batch_size=16, progress=False)
    alone = embed_sequences(enc, [short], POOLINGS, progress=False)
    for p in POOLINGS:
        np.testing.assert_allclose(together[p][0], alone[p][0], rtol=1e-4, atol=1e-5)


def test_windows_combine_as_documented(tiny_lolbert):
    """LOLBERT tokens are nucleotides, so window i is exactly the gene slice seq[s_i : s_i + 32]."""
    enc = load_dna_encoder(tiny_lolbert, max_tokens=34)  # 32 sequence tokens + S and /S
    gene = real_genes()[3][:100]
    starts = window_starts(len(gene), 32, 16)
    assert starts == [0, 16, 32, 48, 64, 68]
    whole = embed_sequences(enc, [gene], POOLINGS, stride=16, progress=False)
    parts = embed_sequences(enc, [gene[s : s + 32] for s in starts], POOLINGS, progress=False)
    np.testing.assert_allclose(whole["mean"][0], parts["mean"].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole["cls"][0], parts["cls"].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole["max"][0], parts["max"].max(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole["min"][0], parts["min"].min(0), rtol=1e-5, atol=1e-6)
    first = embed_sequences(enc, [gene], POOLINGS, truncate=True, progress=False)
    for p in POOLINGS:
        np.testing.assert_allclose(first[p][0], parts[p][0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(first["mean"][0], whole["mean"][0])


@given(n=st.integers(1, 3000), window=st.integers(1, 600), stride_frac=st.floats(0.01, 1.0))
def test_window_starts_cover_every_token(n, window, stride_frac):
    stride = max(1, int(window * stride_frac))
    starts = window_starts(n, window, stride)
    assert starts[0] == 0
    if n <= window:
        assert starts == [0]
        return
    assert starts[-1] == n - window  # every window is full, the last flush with the end
    assert all(0 < b - a <= stride for a, b in zip(starts, starts[1:], strict=False))


def test_order_duplicates_and_errors(tiny_lolbert):
    enc = load_dna_encoder(tiny_lolbert)
    a, b = real_genes()[5][:200], real_genes()[6][:90]
    counter = ForwardCounter(enc)
    out = embed_sequences(enc, [a, b, a], ["mean"], batch_size=1, progress=False)
    assert counter.calls == 2  # the repeated gene is embedded once
    np.testing.assert_array_equal(out["mean"][0], out["mean"][2])
    np.testing.assert_allclose(out["mean"][1], embed_sequences(enc, [b], ["mean"], progress=False)["mean"][0],
                               rtol=1e-5, atol=1e-6)
    assert out["mean"].dtype == np.float32 and out["mean"].shape == (3, enc.hidden_size)
    with pytest.raises(ValueError, match="empty sequence at index 1"):
        embed_sequences(enc, [a, "", b], ["mean"], progress=False)
    with pytest.raises(ValueError, match="not available"):
        embed_sequences(enc, [a], ["spectrum"], progress=False)
    with pytest.raises(ValueError, match="window 600"):
        embed_sequences(enc, [a], ["mean"], window=600, progress=False)


def test_spectrum_through_embed_sequences():
    enc = load_dna_encoder("kmer:2")
    genes = list(real_genes()[:5])
    out = embed_sequences(enc, genes, ["spectrum"], batch_size=2, progress=False)["spectrum"]
    gene = genes[4]
    pairs = [gene[i : i + 2] for i in range(len(gene) - 1)]
    expected = np.array([pairs.count(km) for km in all_kmers(2)], dtype=float)
    np.testing.assert_allclose(out[4], expected / expected.sum(), rtol=1e-6)


def test_cache_computes_nothing_twice(tiny_lolbert, tmp_path):
    enc = load_dna_encoder(tiny_lolbert, max_tokens=66)
    counter = ForwardCounter(enc)
    genes = [g[:200] for g in real_genes()[:6]]
    first = embed_cached(enc, genes, ["cls", "mean"], tmp_path, tag="t", progress=False)
    assert counter.calls > 0
    counter.calls = 0
    second = embed_cached(enc, genes, ["mean", "cls"], tmp_path, tag="t", progress=False)
    assert counter.calls == 0
    for p in ("cls", "mean"):
        np.testing.assert_array_equal(first[p], second[p])
    (mean,) = tmp_path.glob("*-t-mean-*.npy")
    assert len(list(tmp_path.glob("*.npy"))) == 2  # one array per pooling
    stamp = mean.stat().st_mtime_ns
    more = embed_cached(enc, genes, ["mean", "max"], tmp_path, tag="t", progress=False)
    assert counter.calls > 0 and mean.stat().st_mtime_ns == stamp  # only max was computed
    np.testing.assert_array_equal(more["mean"], first["mean"])
    counter.calls = 0
    embed_cached(enc, genes, ["mean"], tmp_path, tag="t", stride=48, progress=False)  # new window settings
    embed_cached(enc, genes[:5], ["mean"], tmp_path, tag="t", progress=False)  # other data
    assert counter.calls > 0 and len(list(tmp_path.glob("*-t-mean-*.npy"))) == 3


def test_cached_embeddings_of_a_benchmark_split(mini_benchmark, tmp_path):
    enc = load_dna_encoder("kmer:3")
    counter = ForwardCounter(enc)
    first = cached_embeddings(enc, mini_benchmark, "IV", "valid", ["spectrum"], tmp_path)
    from biotalk.data import load_benchmark

    split = load_benchmark(mini_benchmark, "IV")["valid"]
    assert first["spectrum"].shape == (len(split), 64)
    np.testing.assert_allclose(first["spectrum"].sum(1), 1.0, rtol=1e-5)
    calls = counter.calls
    again = cached_embeddings(enc, mini_benchmark, "IV", "valid", ["spectrum"], tmp_path)
    assert counter.calls == calls
    np.testing.assert_array_equal(again["spectrum"], first["spectrum"])
