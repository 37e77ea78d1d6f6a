"""Embedding throughput: ``embed_sequences`` against a plain per-sequence Hugging Face loop.

    python benchmarks/bench_embed.py [genes=200 batch_size=32 threads=2]

Same model (a randomly initialised RoBERTa of the LOLBERT-mini size: speed does not depend on the
weights), same real genes (the first CDS of a genome in data/raw), same tokens: both cut each gene
to the model's 512-token window (``truncate=True``), so the ratio measures batching by length, not
skipped work. The baseline tokenises and runs one gene at a time, as a plain Hugging Face loop does.
A third timing covers every nucleotide with overlapping windows (the default). Both runs must give
the same embeddings (checked) before any number is printed.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from Bio import SeqIO

from biotalk.cli import run
from biotalk.embeddings import embed_sequences
from biotalk.io import open_text
from biotalk.models import load_dna_encoder, pool
from biotalk.models.lolbert import build_lolbert_tokenizer, lolbert_config

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BenchConfig:
    genome: Path = ROOT / "data/raw/genbank/Escherichia_coli_K12_MG1655_NC_000913.3.gbk.gz"
    genes: int = 200
    batch_size: int = 32
    threads: int = 2
    seed: int = 0


def read_genes(path: Path, n: int) -> list[str]:
    with open_text(path) as handle:
        record = next(SeqIO.parse(handle, "genbank"))
    cds = [f for f in record.features if f.type == "CDS" and "pseudo" not in f.qualifiers]
    return [str(f.extract(record.seq)) for f in cds[:n]]


@torch.inference_mode()
def per_sequence_loop(model, tokenizer, genes: list[str]) -> np.ndarray:
    """The plain loop: one gene at a time, truncated to the window, CLS and masked mean."""
    out = []
    for gene in genes:
        batch = tokenizer(gene, truncation=True, max_length=512, return_tensors="pt", return_special_tokens_mask=True)
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        out.append(torch.cat([pool(hidden, batch["attention_mask"], "cls"),
                              pool(hidden, batch["attention_mask"], "mean", batch["special_tokens_mask"])], 1))
    return torch.cat(out).numpy()


def main(cfg: BenchConfig) -> None:
    from transformers import RobertaModel  # after ``import biotalk`` set the offline Hugging Face environment

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    genes = read_genes(cfg.genome, cfg.genes)
    model = RobertaModel(lolbert_config("mini"), add_pooling_layer=False).eval()
    tokenizer = build_lolbert_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        encoder = load_dna_encoder(tmp)
    per_sequence_loop(model, tokenizer, genes[:4])  # warm-up
    t0 = time.perf_counter()
    base = per_sequence_loop(model, tokenizer, genes)
    t_base = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = embed_sequences(encoder, genes, ["cls", "mean"], batch_size=cfg.batch_size, truncate=True, progress=False)
    t_ours = time.perf_counter() - t0
    np.testing.assert_allclose(np.concatenate([ours["cls"], ours["mean"]], 1), base, rtol=1e-3, atol=1e-4)
    t0 = time.perf_counter()
    embed_sequences(encoder, genes, ["cls", "mean"], batch_size=cfg.batch_size, progress=False)
    t_windows = time.perf_counter() - t0
    nt_truncated = sum(min(len(g), 510) for g in genes)
    result = {
        "genes": len(genes), "nucleotides": sum(map(len, genes)), "nt_in_first_window": nt_truncated,
        "threads": cfg.threads, "batch_size": cfg.batch_size,
        "per_sequence_s": round(t_base, 2), "embed_sequences_s": round(t_ours, 2),
        "speedup": round(t_base / t_ours, 2), "windows_all_nt_s": round(t_windows, 2),
        "windows_nt_per_s": round(sum(map(len, genes)) / t_windows),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    run(main, BenchConfig, __doc__)
