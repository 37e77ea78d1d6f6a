"""Frame-aware DNA towers: a CDS read codon by codon and translated in frame as a fixed first layer.

Every gene of the benchmark is a whole coding sequence, so its translation is exact (``residue_lookup``: the
bacterial code of ``biotalk.data.translate``, table 11, with table 4's TGA = W for the Mycoplasma genomes; it
equals the builder's checked ``Protein`` except at the rare selenocysteines); features of the protein see through
the synonymous codons that keep two homologous genes apart in a DNA k-mer spectrum.

- ``build_codon_tokenizer``: non-overlapping codons from the first base (``[PAD]``, ``[UNK]`` and the 64 codons;
  a codon with an N and a trailing partial codon are ``[UNK]``), a plain fast tokenizer that saves anywhere.
- ``aakmer:K[,K...][:l2]`` (``AaKmerEncoder``): amino-acid k-mer spectra of the translation (k = 1..3, several
  concatenated), each normalised to frequencies (or unit length with ``:l2``); fixed features, no weights.
- ``cnn:aa`` / ``cnn:codon`` [``:dim=128:blocks=4:kernel=5:dropout=0.1``] (``CnnEncoder``): a small trainable
  ProteInfer-like tower: residue (or codon) embedding, residual dilated 1-D convolutions (dilation 1, 2, 4, ...),
  per-position states that the encoder face pools (masked mean or max). Padding is zeroed after every layer, so
  a gene embeds the same alone or in a padded batch.

The first codon is read as a CDS start (GTG, TTG, ... -> M), as the builder's checked translation reads it:
the towers see whole genes (``window_nt: 0``); a window that does not start at the gene's first base, or not
in frame, would be misread.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from Bio.Data.CodonTable import unambiguous_dna_by_id
from safetensors.torch import load_file, save_file
from tokenizers import Regex, Tokenizer, pre_tokenizers
from tokenizers.models import WordLevel
from torch import nn
from transformers import BatchEncoding, PreTrainedTokenizerFast

from biotalk.data.translate import DEFAULT_TRANSL_TABLE
from biotalk.io import write_json
from biotalk.models.encoders import AAKMER_TYPE, CNN_TYPE, DNAEncoder, TransformerEncoder
from biotalk.models.kmer import all_kmers

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
CODON_SPECIALS = ["[PAD]", "[UNK]"]
WEIGHTS = "model.safetensors"
MYCOPLASMA_TABLE = 4  # the genetic code of some genomes of the benchmark (TGA: W; TTA also a start)
AAKMER_USAGE = "expected aakmer:K[,K...][:l2] with each K in 1..3, e.g. aakmer:1,2,3"
CNN_USAGE = "expected cnn:aa or cnn:codon, then optional :key=value of dim, blocks, kernel (odd), dropout"


def build_codon_tokenizer() -> PreTrainedTokenizerFast:
    """Codons in frame from the first base; ids 0 (pad) and 1 (unknown), then the 64 codons in ACGT order."""
    vocab = {tok: i for i, tok in enumerate(CODON_SPECIALS + all_kmers(3))}
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(".{1,3}"), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=int(1e9), pad_token="[PAD]",
                                   unk_token="[UNK]")


def residue_lookup(vocab: dict[str, int]) -> torch.Tensor:
    """(3, vocab): token id -> amino-acid index (0..19, ``AMINO_ACIDS``; -1: stop, unknown codon, special) for
    a codon inside a gene (row 0), its first codon (row 1: start codons of tables 11 and 4 read M) and its last
    (row 2: a stop is dropped). Inside a gene TGA reads W: a complete CDS has no internal stop, so TGA there
    is tryptophan in the Mycoplasma code (table 4) or a rare selenocysteine in table 11."""
    code = unambiguous_dna_by_id[DEFAULT_TRANSL_TABLE]
    lookup = torch.full((3, len(vocab)), -1, dtype=torch.long)
    for codon, residue in {**code.forward_table, "TGA": "W"}.items():
        lookup[:, vocab[codon]] = AMINO_ACIDS.index(residue)
    starts = set(code.start_codons) | set(unambiguous_dna_by_id[MYCOPLASMA_TABLE].start_codons)
    lookup[1, [vocab[codon] for codon in sorted(starts)]] = AMINO_ACIDS.index("M")
    lookup[2, [vocab[codon] for codon in code.stop_codons]] = -1
    return lookup


def translate_ids(lookup: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Residue index of each codon of right-padded whole genes (``residue_lookup``); -1 on padding."""
    residues = lookup[0][input_ids]
    residues[:, :1] = lookup[1][input_ids[:, :1]]
    rows, last = torch.arange(len(input_ids), device=input_ids.device), (attention_mask.sum(1) - 1).clamp_min(0)
    if input_ids.shape[1]:
        residues[rows, last] = lookup[2][input_ids[rows, last]]
    return residues.masked_fill(~attention_mask.bool(), -1)


class AaKmerSpectrum(nn.Module):
    """Amino-acid k-mer counts of the in-frame translation, one block per k, each normalised on its own
    (``freq``: sums to 1; ``l2``: unit length; a gene without a k-mer is all zero). k-mers over a stop or an
    unknown codon are skipped."""

    def __init__(self, ks: tuple[int, ...] = (1, 2, 3), norm: str = "freq"):
        super().__init__()
        self.ks, self.norm = tuple(ks), norm
        self.tokenizer = build_codon_tokenizer()
        self.register_buffer("residues", residue_lookup(self.tokenizer.get_vocab()), persistent=False)
        self.dim = sum(len(AMINO_ACIDS) ** k for k in self.ks)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        residues = translate_ids(self.residues, input_ids, attention_mask)
        return torch.cat([self._block(residues, k) for k in self.ks], dim=1)

    def _block(self, residues: torch.Tensor, k: int) -> torch.Tensor:
        size, (rows, length) = len(AMINO_ACIDS) ** k, residues.shape
        width = max(length - k + 1, 0)
        index = torch.zeros(rows, width, dtype=torch.long, device=residues.device)
        valid = torch.ones(rows, width, dtype=torch.bool, device=residues.device)
        for offset in range(k):  # base-20 index of each window, built position by position
            part = residues[:, offset : offset + width]
            index, valid = index * len(AMINO_ACIDS) + part.clamp_min(0), valid & (part >= 0)
        counts = torch.zeros(rows, size + 1, dtype=torch.float32, device=residues.device)
        counts.scatter_add_(1, torch.where(valid, index, size), valid.float())
        counts = counts[:, :size]
        if self.norm == "l2":
            return F.normalize(counts, dim=1)
        return counts / counts.sum(1, keepdim=True).clamp_min(1.0)


class AaKmerEncoder(DNAEncoder):
    """``AaKmerSpectrum`` behind the encoder face; the spectrum is its only pooling (whole genes, no windows)."""

    poolings = ("spectrum",)

    def __init__(self, ks: tuple[int, ...] = (1, 2, 3), norm: str = "freq"):
        spectrum = AaKmerSpectrum(ks, norm)
        name = "aakmer:" + ",".join(map(str, spectrum.ks)) + (":l2" if norm == "l2" else "")
        super().__init__(name=name, tokenizer=spectrum.tokenizer, max_tokens=None, hidden_size=spectrum.dim,
                         fingerprint=name)
        self.spectrum = spectrum

    def save_pretrained(self, path: str | Path) -> None:
        """A config.json that ``load_dna_encoder(path)`` turns back into this spectrum."""
        Path(path).mkdir(parents=True, exist_ok=True)
        write_json(Path(path) / "config.json", {"model_type": AAKMER_TYPE, "ks": list(self.spectrum.ks),
                                                "norm": self.spectrum.norm})

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.spectrum(input_ids, attention_mask)

    def embed_batch(self, input_ids, attention_mask, special_tokens_mask, poolings):
        return {"spectrum": self(input_ids, attention_mask)}


def parse_aakmer_name(name: str) -> AaKmerEncoder:
    """``aakmer``, ``aakmer:3``, ``aakmer:1,2,3``, ``aakmer:1,2,3:l2`` -> the encoder (default k = 1,2,3)."""
    parts = name.split(":")
    try:
        ks = tuple(int(k) for k in parts[1].split(",")) if len(parts) > 1 else (1, 2, 3)
    except ValueError:
        raise ValueError(f"bad amino-acid k-mer encoder name {name!r}: {AAKMER_USAGE}") from None
    bad_norm = len(parts) > 3 or (len(parts) == 3 and parts[2] != "l2")
    if bad_norm or not all(1 <= k <= 3 for k in ks) or len(set(ks)) != len(ks):
        raise ValueError(f"bad amino-acid k-mer encoder name {name!r}: {AAKMER_USAGE}")
    return AaKmerEncoder(ks, "l2" if len(parts) == 3 else "freq")


@dataclass
class CnnArch:
    """Size of the dilated CNN; block i has dilation 2**i, so 4 blocks of kernel 5 see 61 residues."""

    alphabet: str = "aa"  # aa: residues (translation as the fixed first layer); codon: the 64 codons
    dim: int = 128
    blocks: int = 4
    kernel: int = 5
    dropout: float = 0.1

    def check(self, name: str) -> None:
        if self.alphabet not in ("aa", "codon") or self.dim < 1 or self.blocks < 1 or self.kernel % 2 == 0 \
                or not 0 <= self.dropout < 1:
            raise ValueError(f"bad CNN encoder name {name!r}: {CNN_USAGE}")


class ResidualBlock(nn.Module):
    """LayerNorm -> GELU -> dilated conv -> LayerNorm -> GELU -> 1x1 conv, added to the input (ProteInfer's block
    with layer norm: batch statistics over padded genes would depend on the batch)."""

    def __init__(self, dim: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.conv = nn.Conv1d(dim, dim, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.mix = nn.Conv1d(dim, dim, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        h = (F.gelu(self.norm1(x)) * keep).transpose(1, 2)
        h = self.conv(h).transpose(1, 2)
        h = self.mix(F.gelu(self.norm2(h)).transpose(1, 2)).transpose(1, 2)
        return (x + self.drop(h)) * keep


class DilatedCnn(nn.Module):
    """Token ids (codons) -> per-position states (batch, length, dim); padding positions are zero."""

    def __init__(self, arch: CnnArch, residues: torch.Tensor):
        super().__init__()
        self.arch = arch
        self.register_buffer("residues", residues, persistent=False)
        symbols = len(AMINO_ACIDS) + 2 if arch.alphabet == "aa" else residues.shape[1]
        self.embed = nn.Embedding(symbols, arch.dim, padding_idx=0)
        self.blocks = nn.ModuleList(ResidualBlock(arch.dim, arch.kernel, 2**i, arch.dropout) for i in range(arch.blocks))
        self.norm = nn.LayerNorm(arch.dim)

    def symbols(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Embedding ids: 0 padding; ``aa``: 1 stop or unknown codon, 2.. the residues; ``codon``: the token ids."""
        if self.arch.alphabet == "codon":
            return input_ids * attention_mask.long()
        return (translate_ids(self.residues, input_ids, attention_mask) + 2) * attention_mask.long()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        keep = attention_mask.unsqueeze(-1).to(self.embed.weight.dtype)
        x = self.embed(self.symbols(input_ids, attention_mask)) * keep
        for block in self.blocks:
            x = block(x, keep)
        return self.norm(x) * keep

    def save_pretrained(self, path: str | Path) -> None:
        """config.json (the architecture) and model.safetensors, what ``load_cnn`` reads."""
        Path(path).mkdir(parents=True, exist_ok=True)
        write_json(Path(path) / "config.json", {"model_type": CNN_TYPE, **asdict(self.arch)})
        state = {k: v.detach().float().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(Path(path) / WEIGHTS), metadata={"format": "pt"})


class CnnEncoder(TransformerEncoder):
    """``DilatedCnn`` behind the encoder face. A ``TransformerEncoder`` for persistence: a CLIP model saves such a
    tower's ``model`` and ``tokenizer`` into its ``dna_encoder/`` folder and ``load_dna_encoder`` reads them back."""

    poolings = ("mean", "max")

    def __init__(self, model: DilatedCnn, name: str, fingerprint: str):
        super().__init__(model, name=name, tokenizer=build_codon_tokenizer(), max_tokens=None,
                         hidden_size=model.arch.dim, fingerprint=fingerprint)

    def tokenize(self, seqs: list[str]) -> BatchEncoding:
        return self.tokenizer([s.upper() for s in seqs], padding=True, return_tensors="pt",
                              return_special_tokens_mask=True)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask)


def weights_digest(module: nn.Module) -> str:
    """sha256 of a module's weights: the fingerprint of a randomly initialised tower (its seed decides them)."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def parse_cnn_name(name: str) -> CnnEncoder:
    """``cnn:aa`` / ``cnn:codon`` with optional ``:key=value`` sizes -> a freshly initialised tower."""
    parts = name.split(":")
    if len(parts) < 2:
        raise ValueError(f"bad CNN encoder name {name!r}: {CNN_USAGE}")
    sizes: dict[str, float] = {}
    for part in parts[2:]:
        key, _, value = part.partition("=")
        try:
            sizes[key] = float(value) if key == "dropout" else int(value)
        except ValueError:
            raise ValueError(f"bad CNN encoder name {name!r}: {CNN_USAGE}") from None
        if key not in ("dim", "blocks", "kernel", "dropout"):
            raise ValueError(f"bad CNN encoder name {name!r}: unknown key {key!r}; {CNN_USAGE}")
    arch = CnnArch(parts[1], **sizes)
    arch.check(name)
    model = DilatedCnn(arch, residue_lookup(build_codon_tokenizer().get_vocab()))
    return CnnEncoder(model, name=name, fingerprint=f"{name}:{weights_digest(model)}")


def load_cnn(path: Path, fingerprint: str) -> CnnEncoder:
    """The tower ``DilatedCnn.save_pretrained`` wrote to ``path``."""
    raw = json.loads((path / "config.json").read_text())
    arch = CnnArch(**{k: v for k, v in raw.items() if k != "model_type"})
    arch.check(str(path))
    model = DilatedCnn(arch, residue_lookup(build_codon_tokenizer().get_vocab()))
    model.load_state_dict(load_file(str(path / WEIGHTS)))
    return CnnEncoder(model, name="/".join(path.resolve().parts[-2:]), fingerprint=fingerprint)
