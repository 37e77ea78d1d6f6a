"""k-mer tokenizers (DNABERT, Nucleotide Transformer) and the k-mer spectrum baseline.

- DNABERT (v1) reads overlapping k-mers with stride 1: ``ACGTACG`` with k=6 is ``ACGTAC CGTACG``.
  No ``tokenizers`` pre-tokenizer yields overlapping pieces, so ``KmerTokenizerFast`` cuts raw DNA
  into k-mers in Python and hands them to a word-level fast tokenizer as pre-split words; text that
  already contains spaces is taken as DNABERT's space-separated k-mers.
- Nucleotide Transformer reads non-overlapping 6-mers from the left and falls back to single
  nucleotides where fewer than six A/C/G/T remain before the end or an ``N``. A regular expression
  (``[ACGT]{6}|.``, leftmost alternative first) does exactly that inside the fast tokenizer, so the
  NT tokenizer is a plain ``PreTrainedTokenizerFast`` that saves and loads anywhere.
- The spectrum baseline counts overlapping k-mers (optionally merging each k-mer with its reverse
  complement) and normalises the counts to frequencies: an embedding that needs no training.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import BatchEncoding, PreTrainedTokenizerFast

BASES = "ACGT"
DNABERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
NT_SPECIALS = ["<unk>", "<pad>", "<mask>", "<cls>", "<eos>"]
NT_SINGLES = ["A", "T", "C", "G", "N"]
_UPPER = normalizers.Sequence([normalizers.Replace(c, c.upper()) for c in "acgtn"])


def all_kmers(k: int) -> list[str]:
    """The 4**k k-mers over ACGT in lexicographic order."""
    return ["".join(p) for p in itertools.product(BASES, repeat=k)]


def overlapping_kmers(seq: str, k: int) -> list[str]:
    """Overlapping k-mers with stride 1; a sequence shorter than k is one (unknown) piece."""
    seq = seq.upper()
    if len(seq) < k:
        return [seq] if seq else []
    return [seq[i : i + k] for i in range(len(seq) - k + 1)]


def read_vocab_txt(path: str | Path) -> dict[str, int]:
    """A BERT/ESM ``vocab.txt`` (one token a line, id = line number)."""
    tokens = Path(path).read_text().splitlines()
    vocab = {tok: i for i, tok in enumerate(tokens) if tok}
    if len(vocab) != len([t for t in tokens if t]):
        raise ValueError(f"{path}: duplicate tokens in vocabulary")
    return vocab


def kmer_size_of_vocab(vocab: dict[str, int]) -> int | None:
    """k if every non-special token is a k-mer over ACGT of one length (a DNABERT vocabulary)."""
    words = [t for t in vocab if not (t.startswith("[") and t.endswith("]"))]
    lengths = {len(t) for t in words}
    if len(lengths) != 1 or not all(set(t) <= set(BASES) for t in words):
        return None
    return lengths.pop()


class KmerTokenizerFast(PreTrainedTokenizerFast):
    """DNABERT-style overlapping k-mer tokenizer over a word-level fast tokenizer.

    Accepts raw DNA (``"ACGTAC..."``), DNABERT's space-separated k-mers, or pre-split k-mer lists.
    """

    # No custom __init__: transformers then reloads tokenizer.json as saved; ``k`` travels in init_kwargs.
    @property
    def k(self) -> int:
        return int(self.init_kwargs["k"])

    def _encode_plus(self, text, text_pair=None, is_split_into_words: bool = False, **kwargs) -> BatchEncoding:
        if not is_split_into_words:
            text = self._split(text)
            text_pair = self._split(text_pair) if text_pair is not None else None
            is_split_into_words = True
        return super()._encode_plus(text, text_pair, is_split_into_words=is_split_into_words, **kwargs)

    def _split(self, text: str | list[str]) -> list[str] | list[list[str]]:
        if isinstance(text, str):
            return text.split() if " " in text.strip() else overlapping_kmers(text.strip(), self.k)
        return [self._split(t) for t in text]


def build_dnabert_tokenizer(k: int = 6, vocab: dict[str, int] | None = None, model_max_length: int = 512
                            ) -> KmerTokenizerFast:
    """Overlapping k-mer tokenizer: ``[CLS] kmers [SEP]``; by default 5 specials + 4**k k-mers (4101 for k=6).

    Pass a checkpoint's own ``vocab`` (from ``read_vocab_txt``) to keep its token ids.
    """
    if vocab is None:
        vocab = {tok: i for i, tok in enumerate(DNABERT_SPECIALS + all_kmers(k))}
    missing = [t for t in DNABERT_SPECIALS if t not in vocab]
    if missing:
        raise ValueError(f"k-mer vocabulary lacks special tokens {missing}")
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    backend.normalizer = _UPPER
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return KmerTokenizerFast(
        tokenizer_object=backend, k=k, model_max_length=model_max_length, pad_token="[PAD]",
        unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
    )


def build_nt_tokenizer(vocab: dict[str, int] | None = None, model_max_length: int = 1000
                       ) -> PreTrainedTokenizerFast:
    """Nucleotide Transformer tokenizer: ``<cls>`` then non-overlapping 6-mers, single-nucleotide fallback.

    Default vocabulary: 5 specials + 4096 6-mers + A, T, C, G, N (4106 tokens). Pass a checkpoint's
    ``vocab.txt`` contents to keep its ids.
    """
    if vocab is None:
        vocab = {tok: i for i, tok in enumerate(NT_SPECIALS + all_kmers(6) + NT_SINGLES)}
    missing = [t for t in ("<unk>", "<pad>", "<mask>", "<cls>") if t not in vocab]
    if missing:
        raise ValueError(f"Nucleotide Transformer vocabulary lacks special tokens {missing}")
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.normalizer = _UPPER
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("[ACGT]{6}|."), behavior="isolated")
    backend.post_processor = processors.TemplateProcessing(
        single="<cls> $A", pair="<cls> $A $B:1", special_tokens=[("<cls>", vocab["<cls>"])]
    )
    specials = {"eos_token": "<eos>"} if "<eos>" in vocab else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, model_max_length=model_max_length, pad_token="<pad>", unk_token="<unk>",
        cls_token="<cls>", mask_token="<mask>", **specials,
    )


def load_kmer_tokenizer(path: str | Path) -> KmerTokenizerFast:
    """Reload a tokenizer saved by ``KmerTokenizerFast.save_pretrained``."""
    return KmerTokenizerFast.from_pretrained(str(path))


def _canonical_bins(k: int) -> tuple[np.ndarray, int]:
    """Map each k-mer index (base-4, A=0 C=1 G=2 T=3) to the bin of min(k-mer, reverse complement)."""
    idx = np.arange(4**k)
    digits = (idx[:, None] // 4 ** np.arange(k - 1, -1, -1)) % 4
    rc = ((3 - digits[:, ::-1]) * 4 ** np.arange(k - 1, -1, -1)).sum(1)
    canon = np.minimum(idx, rc)
    _, bins = np.unique(canon, return_inverse=True)
    return bins, int(bins.max()) + 1


class KmerSpectrum(torch.nn.Module):
    """k-mer frequency vector of a whole gene; k-mers containing anything but A/C/G/T are skipped.

    ``forward(input_ids, attention_mask)`` takes ids from ``tokenizer`` (an overlapping k-mer tokenizer
    without special tokens) and returns a (batch, dim) matrix whose rows sum to 1 (0 for a gene
    without any valid k-mer).
    """

    def __init__(self, k: int = 6, canonical: bool = False):
        super().__init__()
        self.k, self.canonical = k, canonical
        self.tokenizer = build_dnabert_tokenizer(k, model_max_length=int(1e9))
        vocab = self.tokenizer.get_vocab()
        bins, self.dim = _canonical_bins(k) if canonical else (np.arange(4**k), 4**k)
        lookup = torch.full((len(vocab),), -1, dtype=torch.long)
        for i, kmer in enumerate(all_kmers(k)):
            lookup[vocab[kmer]] = int(bins[i])
        self.register_buffer("lookup", lookup, persistent=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        bins = self.lookup[input_ids]
        valid = (bins >= 0) & attention_mask.bool()
        counts = torch.zeros(input_ids.shape[0], self.dim + 1, dtype=torch.float32, device=input_ids.device)
        counts.scatter_add_(1, torch.where(valid, bins, self.dim), valid.float())
        counts = counts[:, : self.dim]
        return counts / counts.sum(1, keepdim=True).clamp_min(1.0)
