"""Zero- and few-shot EC prediction with a chat LLM from a gene (one cell of the paper's Table 5).

    python prompt_llm.py --config configs/llm/mini.yaml [data=DIR benchmark=III split=test1 shots=0|3
        inputs=dna|dna+neighbours|paper examples=random|nearest choice=free|candidates limit=N out=DIR
        backend=local model=smollm2|DIR|FILE.gguf  |  backend=openai model=NAME openai.base_url=URL]
    accelerate launch --num_processes 8 prompt_llm.py ...     # local backend, prompts sharded, one process per GPU

Each record becomes one chat (biotalk/llm/prompts.py): its DNA (``dna``), plus the nearest training genes
as evidence (``dna+neighbours``), or the paper's leaky prompt with the record's own description
(``paper``); ``shots`` training examples first. DNA is cut to ``dna_max_nt`` nt and further to fit the
model's context (tokens counted). Answers are cached as they arrive (biotalk/llm/cache.py), so a killed
run, or a model server that died, resumes where it stopped. The first EC in an answer is the prediction
(with ``choice=candidates``: the first one among the retrieved ECs). Outputs in ``out``: ``metrics.json``
(the metric block every model reports, by identity to training, plus parse rate and truncation),
``predictions.tsv``, ``prompts.jsonl`` and ``config.yaml``.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl
import torch
import yaml

from biotalk.cli import UsageError, run
from biotalk.config import to_dict
from biotalk.data import load_benchmark
from biotalk.data.identity import gene_ids, identity_to_train
from biotalk.data.schema import Benchmark
from biotalk.io import atomic_dir, write_json, write_text
from biotalk.llm import (
    LEAKY_MODES,
    BackendError,
    GenerationSettings,
    HFChatBackend,
    OpenAIChatBackend,
    OpenAIConfig,
    ResponseCache,
    SearchSettings,
    build_prompts,
    cache_key,
    generate_missing,
    nearest_training_genes,
    parse_answer,
    parse_choice,
    resolve_model,
    score_answers,
)
from biotalk.llm.prompts import example_count, example_pool
from biotalk.reports import block_line
from biotalk.rng import stream

COLUMNS = ["RecordId", "EC", "Sequence", "IsDuplicate", "EmblCdsId", "Protein", "Description", "DescriptionMasked"]
LEAK_LABEL = "LEAKY: the query's own description, which contains its EC, is in the prompt (the paper's setting)"


@dataclass
class LLMConfig:
    data: Path = Path("out/mini-benchmark")  # output of scripts/build_benchmarks.py (or the published files)
    benchmark: Benchmark = "III"  # its training split supplies examples and evidence
    split: Literal["test1", "test2", "valid", "valid2"] = "test1"  # tests, or Valid/valid2 for choosing settings
    shots: int = 0  # 0 = zero-shot; the paper's few-shot is 3
    inputs: Literal["dna", "dna+neighbours", "paper"] = "dna"  # paper: leaky, the query's description is shown
    examples: Literal["random", "nearest"] = "random"  # few-shot examples: seeded draw, or nearest training genes
    neighbours: int = 3  # training genes shown as evidence (dna+neighbours)
    choice: Literal["free", "candidates"] = "free"  # candidates: only an EC of the evidence counts as an answer
    search: SearchSettings = field(default_factory=SearchSettings)  # MMseqs2 for evidence and nearest examples
    limit: int = 0  # first N records of a seeded shuffle of the split; 0 = all
    seed: int = 0  # record order, example draws, sampling
    dna_max_nt: int = 150  # nucleotides of each gene shown at most (its 5' end; 0 = whole genes)
    max_prompt_tokens: int = 0  # token budget of a prompt; 0 = the model's context minus max_new_tokens
    backend: Literal["local", "openai"] = "local"
    model: str = "smollm2"  # local: smollm2, a HF model folder or .gguf; openai: the served model's name
    device: str = "auto"  # local: auto = cuda when available
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # local: auto = bf16 on CUDA, fp32 on CPU
    threads: int = 0  # torch CPU threads; 0 = torch's default
    batch_size: int = 8  # local backend
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    cache: Path = Path("cache/llm/responses.jsonl")
    out: str = ""  # default: runs/llm/{benchmark}-{split}-{inputs}-{shots}shot


def select_queries(split, limit: int, seed: int) -> list[dict]:
    """Distinct records of the split in a seeded order; the first ``limit`` of them (same for any limit)."""
    rows = sorted((r for r in split if not r["IsDuplicate"]), key=lambda r: r["RecordId"])
    order = stream(seed).permutation(len(rows))
    return [rows[i] for i in order[: limit or None]]


def query_identity(cfg: LLMConfig, data, queries: list[dict]) -> list[float | None] | None:
    """Each query's identity to the benchmark's training proteins (held-out splits only; None for valid)."""
    found = identity_to_train(cfg.data, cfg.benchmark, data, cfg.search.threads).get(cfg.split)
    if found is None:
        return None
    by_record = dict(zip(data[cfg.split]["RecordId"], found, strict=True))
    return [by_record[q["RecordId"]] for q in queries]


def load_backend(cfg: LLMConfig, processes: int = 1, local_rank: int = 0):
    """The configured backend; under a multi-process launch each local process takes its own GPU."""
    if cfg.backend == "openai":
        return OpenAIChatBackend(cfg.model, cfg.openai)
    device = f"cuda:{local_rank}" if processes > 1 and torch.cuda.is_available() else cfg.device
    return HFChatBackend(cfg.model, device=device, dtype=cfg.dtype, processes=processes)


def retrieval(cfg: LLMConfig, queries: list[dict], train: list[dict]) -> tuple[dict, dict]:
    """(evidence neighbours, nearest genes for examples), RecordId -> training genes; empty when unused."""
    k = example_count(cfg.inputs, cfg.shots)
    need_nearest = k > 0 and cfg.examples == "nearest"
    if cfg.inputs != "dna+neighbours" and not need_nearest:
        return {}, {}
    found = nearest_training_genes(queries, train, max(cfg.neighbours, k), cfg.search)
    nearest = {q["RecordId"]: n[:k] for q, n in zip(queries, found, strict=True)} if need_nearest else {}
    evidence = {}
    if cfg.inputs == "dna+neighbours":
        evidence = {q["RecordId"]: n[: cfg.neighbours] for q, n in zip(queries, found, strict=True)}
        pool = example_pool(train) if k else []  # examples show their own evidence (never themselves)
        for r, n in zip(pool, nearest_training_genes(pool, train, cfg.neighbours, cfg.search), strict=True):
            evidence[r["RecordId"]] = n
    return evidence, nearest


def main(cfg: LLMConfig, backend=None) -> dict:
    """Run one Table 5 cell; ``backend`` lets a caller reuse a loaded model (else it is loaded here)."""
    if cfg.backend == "local" and backend is None:
        resolve_model(cfg.model)  # a wrong model fails here, before any work
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and cfg.backend == "openai":
        raise UsageError("backend=openai: run one process (openai.concurrency sets the requests in flight)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out or f"runs/llm/{cfg.benchmark}-{cfg.split}-{cfg.inputs.replace('+', '-')}-{cfg.shots}shot")
    data = load_benchmark(cfg.data, cfg.benchmark)
    queries = select_queries(data[cfg.split].select_columns(COLUMNS), cfg.limit, cfg.seed)
    train = data["train"].select_columns(COLUMNS).to_list() if cfg.shots or cfg.inputs == "dna+neighbours" else []
    evidence, nearest = retrieval(cfg, queries, train)
    logging.info("%d %s records of Benchmark-%s, %d-shot, inputs %s", len(queries), cfg.split, cfg.benchmark,
                 cfg.shots, cfg.inputs)

    accelerator = None
    if world > 1:
        from biotalk.training import make_accelerator

        accelerator = make_accelerator()
    rank = accelerator.process_index if accelerator else 0
    backend = backend or load_backend(cfg, world, accelerator.local_process_index if accelerator else 0)
    context = cfg.max_prompt_tokens or backend.context or 0
    budget = context - cfg.generation.max_new_tokens if context else None
    prompts = build_prompts(queries, train, cfg.shots, cfg.dna_max_nt, cfg.seed, cfg.inputs, cfg.examples,
                            evidence, cfg.search, nearest, cfg.choice, backend.count_tokens, budget)  # fmt: skip
    texts = [backend.render(p.messages) for p in prompts]
    keys = [cache_key(backend.cache_id, t, cfg.generation) for t in texts]
    cache = ResponseCache(cfg.cache, part=rank if world > 1 else None)
    missing = len({k for k in keys if k not in cache})
    if accelerator:
        accelerator.wait_for_everyone()  # every process has read the cache before any writes to it
    generate_missing(backend, texts, cfg.generation, cache, cfg.batch_size, (rank, world))
    if accelerator:
        accelerator.wait_for_everyone()
        accelerator.end_training()  # the main process merges, scores and writes alone
        if rank != 0:
            return {}
        cache = ResponseCache(cfg.cache)
        cache.merge_parts()
    answers = [cache[k] for k in keys]

    free = [parse_answer(a) for a in answers]
    parsed = [parse_choice(a, p.candidates) for a, p in zip(answers, prompts, strict=True)] if cfg.choice == "candidates" else free
    true = [q["EC"] for q in queries]
    caps = [p.nt_cap for p in prompts]
    metrics = {
        "model": backend.model_id, "cache_id": backend.cache_id, "backend": cfg.backend, "benchmark": cfg.benchmark,
        "split": cfg.split, "shots": cfg.shots, "inputs": cfg.inputs, "leaky": cfg.inputs in LEAKY_MODES,
        "label": LEAK_LABEL if cfg.inputs in LEAKY_MODES else "", "examples": cfg.examples,
        "examples_shown": example_count(cfg.inputs, cfg.shots), "choice": cfg.choice,
        "neighbours": cfg.neighbours if cfg.inputs == "dna+neighbours" else 0, "dna_max_nt": cfg.dna_max_nt,
        "prompt_token_budget": budget, "truncated": sum(p.truncated for p in prompts) / max(len(prompts), 1),
        "nt_cap_min": min(caps, default=0), "nt_cap_median": statistics.median(caps) if caps else 0,
        "parse_rate": sum(p is not None for p in free) / max(len(free), 1),
        "off_list": sum(f is not None and c is None for f, c in zip(free, parsed, strict=True)) / max(len(free), 1),
        "generation": asdict(cfg.generation), "unique_prompts": len(set(keys)), "generated": missing,
        "from_cache": len(set(keys)) - missing, "cache_lines_skipped": cache.skipped,
        **score_answers(true, parsed, gene_ids(pl.DataFrame(queries)), query_identity(cfg, data, queries)),
    }  # fmt: skip
    predictions = pl.DataFrame({
        "id": [q["RecordId"] for q in queries], "true_ec": true, "answer": answers, "parsed_ec": parsed,
        "dna_nt_shown": [p.nt_cap or p.query_nt for p in prompts], "dna_nt": [p.query_nt for p in prompts],
        "candidates": [",".join(p.candidates) for p in prompts], "examples": [",".join(p.examples) for p in prompts],
    }, schema={"id": pl.String, "true_ec": pl.String, "answer": pl.String, "parsed_ec": pl.String,
               "dna_nt_shown": pl.Int64, "dna_nt": pl.Int64, "candidates": pl.String, "examples": pl.String})  # fmt: skip
    with atomic_dir(out) as tmp:
        write_json(tmp / "metrics.json", metrics)
        predictions.write_csv(tmp / "predictions.tsv", separator="\t")
        write_text(tmp / "prompts.jsonl", "".join(
            json.dumps({"id": q["RecordId"], "prompt": t}, ensure_ascii=False) + "\n" for q, t in zip(queries, texts, strict=True)
        ))  # fmt: skip
        write_text(tmp / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    leak = f" [{LEAK_LABEL}]" if metrics["leaky"] else ""
    print(f"{out}: {block_line(metrics)} parse rate {metrics['parse_rate']:.2f} "
          f"(generated {missing}, cached {metrics['from_cache']}){leak}")  # fmt: skip
    return metrics


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        run(main, LLMConfig, __doc__)
    except BackendError as err:  # a server that died or refuses: one line, the answers so far are cached
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        raise SystemExit(1) from None
