"""One loader for every DNA encoder of the benchmark: ``load_dna_encoder(name_or_path)``.

Everything loads from local directories (no Hugging Face Hub here):
- LOLBERT (RoBERTa + its single-nucleotide tokenizer, as ``scripts/pretrain_lolbert.py`` saves it),
- DNABERT-6 (BERT; its ``vocab.txt`` of 6-mers becomes an overlapping k-mer fast tokenizer),
- Nucleotide Transformer (ESM; its ``vocab.txt`` becomes a non-overlapping 6-mer fast tokenizer),
- DNABERT-2 and any checkpoint that ships its own model code: only when the caller opts in with ``trust_remote_code``,
- any other local checkpoint (AutoModel + AutoTokenizer),
- ``kmer`` / ``kmer:K`` / ``kmer:K:canonical``: the k-mer spectrum baseline, no weights at all,
- ``aakmer:K[,K...][:l2]`` and ``cnn:aa`` / ``cnn:codon[:key=value...]``: the frame-aware towers of
  ``biotalk.models.frame`` (the CDS translated in frame; a fixed spectrum, a trainable dilated CNN).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, BatchEncoding, PreTrainedTokenizerBase

from biotalk.cache import cache_key, file_digest
from biotalk.io import write_json
from biotalk.models.kmer import (
    KmerSpectrum,
    KmerTokenizerFast,
    all_kmers,
    build_dnabert_tokenizer,
    build_nt_tokenizer,
    kmer_size_of_vocab,
    read_vocab_txt,
)
from biotalk.models.pooling import POOLINGS, pool

log = logging.getLogger(__name__)
# Model types whose learned positions start after the padding index (RoBERTa style).
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "esm"}
# Types whose base model accepts add_pooling_layer (the pooler is not used and often not saved).
_HAS_POOLER = {"bert", "roberta", "xlm-roberta", "camembert", "esm"}
_FINGERPRINT_SUFFIXES = (".json", ".txt", ".safetensors", ".bin", ".model", ".py")
# Files that carry a vocabulary; without one, AutoTokenizer would build an empty tokenizer silently.
_VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model")
_HUB_NAME = re.compile(r"[\w.-]+/[\w.-]+")
_PROBE = "ACGTTGCAACGTTGCAACGT"
SPECTRUM_TYPE = "kmer_spectrum"
AAKMER_TYPE, CNN_TYPE = "aa_kmer_spectrum", "aa_cnn"  # the saved frame-aware towers (biotalk.models.frame)
NAMED_ENCODERS = ("kmer", "aakmer", "cnn")  # encoders built from a name, no directory


class DNAEncoder(nn.Module):
    """Common face of the encoders: ``tokenize`` raw DNA, ``forward`` ids to per-token states.

    ``max_tokens`` (special tokens included; None = unlimited) is the window ``embed_sequences`` cuts
    long genes into; ``prefix_ids``/``suffix_ids`` are the special tokens the tokenizer puts around a
    sequence, so a window of sequence tokens can be wrapped exactly as a whole gene would be.
    """

    poolings: tuple[str, ...] = POOLINGS

    def __init__(self, name: str, tokenizer: PreTrainedTokenizerBase, max_tokens: int | None,
                 hidden_size: int, fingerprint: str):
        super().__init__()
        self.name, self.tokenizer, self.max_tokens = name, tokenizer, max_tokens
        self.hidden_size, self.fingerprint = hidden_size, fingerprint
        if tokenizer.pad_token_id is None:
            raise ValueError(f"{name}: tokenizer has no padding token")
        self.pad_id = tokenizer.pad_token_id
        self.prefix_ids, self.suffix_ids = _special_template(tokenizer, name)

    @property
    def device(self) -> torch.device:
        tensor = next(iter(self.parameters()), None)
        tensor = tensor if tensor is not None else next(iter(self.buffers()))
        return tensor.device

    def sequence_ids(self, seqs: list[str]) -> list[list[int]]:
        """Token ids of whole genes without special tokens (the input to windowing)."""
        return self.tokenizer([s.upper() for s in seqs], add_special_tokens=False, verbose=False)["input_ids"]

    def tokenize(self, seqs: list[str]) -> BatchEncoding:
        """A padded batch, truncated to ``max_tokens``, with its special-tokens mask."""
        return self.tokenizer(
            [s.upper() for s in seqs], padding=True, truncation=self.max_tokens is not None,
            max_length=self.max_tokens, return_tensors="pt", return_special_tokens_mask=True,
        )

    def embed_batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    special_tokens_mask: torch.Tensor, poolings: list[str]) -> dict[str, torch.Tensor]:
        hidden = self(input_ids, attention_mask)
        return {p: pool(hidden, attention_mask, p, special_tokens_mask) for p in poolings}


class TransformerEncoder(DNAEncoder):
    """A Hugging Face base model (its last hidden state) behind the DNAEncoder face."""

    def __init__(self, model: nn.Module, **kwargs):
        super().__init__(**kwargs)
        self.model = model.eval()

    def save_pretrained(self, path: str | Path) -> None:
        """Model and tokenizer side by side, so ``load_dna_encoder(path)`` reloads this encoder."""
        self.model.save_pretrained(str(path))
        self.tokenizer.save_pretrained(str(path))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return out[0] if isinstance(out, tuple) else out.last_hidden_state


class KmerSpectrumEncoder(DNAEncoder):
    """k-mer frequencies of the whole gene; the spectrum is its only "pooling" (no windows)."""

    poolings = ("spectrum",)

    def __init__(self, k: int = 6, canonical: bool = False):
        spectrum = KmerSpectrum(k, canonical)
        name = f"kmer:{k}" + (":canonical" if canonical else "")
        super().__init__(name=name, tokenizer=spectrum.tokenizer, max_tokens=None,
                         hidden_size=spectrum.dim, fingerprint=name)
        self.spectrum = spectrum
        self.prefix_ids, self.suffix_ids = [], []  # counts only sequence k-mers

    def save_pretrained(self, path: str | Path) -> None:
        """A config.json that ``load_dna_encoder(path)`` turns back into this spectrum."""
        Path(path).mkdir(parents=True, exist_ok=True)
        write_json(Path(path) / "config.json", {"model_type": SPECTRUM_TYPE, "k": self.spectrum.k,
                                                "canonical": self.spectrum.canonical})

    def tokenize(self, seqs: list[str]) -> BatchEncoding:
        return self.tokenizer([s.upper() for s in seqs], padding=True, add_special_tokens=False,
                              return_tensors="pt", return_special_tokens_mask=True)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.spectrum(input_ids, attention_mask)

    def embed_batch(self, input_ids, attention_mask, special_tokens_mask, poolings):
        return {"spectrum": self(input_ids, attention_mask)}


def _special_template(tokenizer: PreTrainedTokenizerBase, name: str) -> tuple[list[int], list[int]]:
    """Special ids the tokenizer adds before and after a sequence, found by tokenizing a probe."""
    bare = tokenizer(_PROBE, add_special_tokens=False)["input_ids"]
    full = tokenizer(_PROBE)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise ValueError(f"{name}: tokenizer does not wrap sequences in fixed special tokens; cannot window")


def _parse_kmer_name(name: str) -> KmerSpectrumEncoder:
    parts = name.split(":")
    try:
        k = int(parts[1]) if len(parts) > 1 else 6
    except ValueError:
        raise ValueError(f"bad k-mer encoder name {name!r}: expected kmer, kmer:K or kmer:K:canonical") from None
    if len(parts) > 3 or (len(parts) == 3 and parts[2] != "canonical") or not 1 <= k <= 8:
        raise ValueError(f"bad k-mer encoder name {name!r}: expected kmer, kmer:K or kmer:K:canonical, 1 <= K <= 8")
    return KmerSpectrumEncoder(k, canonical=len(parts) == 3)


def is_named_encoder(name: str) -> bool:
    """Whether ``name`` is built from its name (``kmer:6``, ``aakmer:1,2,3``, ``cnn:aa``) rather than loaded."""
    return str(name).split(":")[0] in NAMED_ENCODERS


def _named_encoder(name: str) -> DNAEncoder:
    from biotalk.models import frame  # frame's towers subclass this module's encoders: imported on use

    kind = name.split(":")[0]
    if kind == "kmer":
        return _parse_kmer_name(name)
    return frame.parse_aakmer_name(name) if kind == "aakmer" else frame.parse_cnn_name(name)


def _frame_encoder(path: Path, raw: dict) -> DNAEncoder:
    """A frame-aware tower saved by ``AaKmerEncoder`` or ``DilatedCnn.save_pretrained``."""
    from biotalk.models import frame

    if raw["model_type"] == AAKMER_TYPE:
        return frame.AaKmerEncoder(tuple(raw["ks"]), raw["norm"])
    return frame.load_cnn(path, fingerprint=f"{path.resolve()}:{directory_fingerprint(path)}")


def directory_fingerprint(path: Path) -> str:
    """sha256 over the names and contents of the files ``from_pretrained`` reads in ``path``."""
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(_FINGERPRINT_SUFFIXES))
    return cache_key(files={file.name: file_digest(file) for file in files})


def _is_nt_vocab(vocab: dict[str, int]) -> bool:
    return "<cls>" in vocab and all(b in vocab for b in "ACGT") and all(k in vocab for k in all_kmers(6)[:64])


def _load_tokenizer(path: Path, model_type: str, trust_remote_code: bool) -> PreTrainedTokenizerBase:
    tok_config = path / "tokenizer_config.json"
    if tok_config.is_file() and json.loads(tok_config.read_text()).get("tokenizer_class") == "KmerTokenizerFast":
        return KmerTokenizerFast.from_pretrained(str(path))
    vocab_txt = path / "vocab.txt"
    if vocab_txt.is_file():
        vocab = read_vocab_txt(vocab_txt)
        k = kmer_size_of_vocab(vocab)
        if k is not None:
            return build_dnabert_tokenizer(k, vocab)
        if model_type == "esm" and _is_nt_vocab(vocab):
            return build_nt_tokenizer(vocab)
    if not any((path / name).is_file() for name in _VOCAB_FILES):
        raise ValueError(
            f"{path}: cannot infer a tokenizer (none of {', '.join(_VOCAB_FILES)}); "
            "save one beside the model with tokenizer.save_pretrained(DIR)"
        )
    try:
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"{path}: cannot infer a tokenizer ({type(err).__name__}: {str(err).splitlines()[0]}); "
            "save one beside the model with tokenizer.save_pretrained(DIR)"
        ) from None


def _max_tokens(config, model_type: str, tokenizer: PreTrainedTokenizerBase) -> int:
    limit = getattr(config, "max_position_embeddings", None) or 512
    if model_type in _OFFSET_POSITIONS and config.pad_token_id is not None:
        limit -= config.pad_token_id + 1
    if tokenizer.model_max_length and tokenizer.model_max_length < 1_000_000:
        limit = min(limit, tokenizer.model_max_length)
    return int(limit)


def load_dna_encoder(name_or_path: str | Path, trust_remote_code: bool = False,
                     max_tokens: int | None = None, dtype: torch.dtype | None = None) -> DNAEncoder:
    """An encoder in eval mode on the CPU; ``max_tokens`` overrides the model's own window limit."""
    name = str(name_or_path)
    if is_named_encoder(name):
        return _named_encoder(name)
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        message = f"encoder {name!r}: no such local directory"
        if _HUB_NAME.fullmatch(name):
            message += (" (it looks like a Hub name: Hugging Face Hub downloads are not available here; "
                        "download the checkpoint elsewhere and pass its local directory)")
        raise FileNotFoundError(message)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{path}: no config.json; not a Hugging Face checkpoint directory")
    raw = json.loads(config_file.read_text())
    model_type = raw.get("model_type", "")
    if model_type == SPECTRUM_TYPE:
        return KmerSpectrumEncoder(int(raw["k"]), bool(raw["canonical"]))
    if model_type in (AAKMER_TYPE, CNN_TYPE):
        return _frame_encoder(path, raw)
    if raw.get("auto_map") and not trust_remote_code:
        raise ValueError(
            f"{path} ships its own model code (auto_map in config.json, e.g. DNABERT-2); it runs only if you "
            "trust it: opt in with the trust_remote_code argument (scripts: trust_remote_code=true)"
        )
    tokenizer = _load_tokenizer(path, model_type, trust_remote_code)
    extra = {"add_pooling_layer": False} if model_type in _HAS_POOLER and not raw.get("auto_map") else {}
    if dtype is not None:
        extra["dtype"] = dtype
    model = AutoModel.from_pretrained(str(path), trust_remote_code=trust_remote_code, **extra)
    beyond = sorted(t for t, i in tokenizer.get_vocab().items() if i >= model.config.vocab_size)
    if beyond:
        log.warning("%s: tokens %s have ids past the model's vocab_size %d; input that contains them will fail",
                    path, beyond[:5], model.config.vocab_size)
    limit = max_tokens or _max_tokens(model.config, model_type, tokenizer)
    display = "/".join(path.resolve().parts[-2:])
    return TransformerEncoder(model, name=display, tokenizer=tokenizer, max_tokens=limit,
                              hidden_size=model.config.hidden_size,
                              fingerprint=f"{path.resolve()}:{directory_fingerprint(path)}")
