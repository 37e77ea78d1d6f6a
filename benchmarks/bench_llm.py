"""LLM answer throughput: the ``openai`` backend against a llama-cpp-python server at several concurrencies, and
the local backend at several batch sizes, on the same Table 5 prompts.

    python benchmarks/bench_llm.py [n=16 shots=3 concurrency=[1,4,8] batch_sizes=[1,8] out=FILE.json]

Prompts: the first ``n`` records of the seeded Test-I order of the mini benchmark, ``dna`` inputs,
``shots``-shot, as ``prompt_llm.py`` builds them. Answers are not cached here: every setting asks the model
for every prompt (greedy, ``max_new_tokens``). The server (SmolLM2 GGUF, ``server_threads`` threads) is
started once and warmed up with one request; the local backend (same GGUF, dequantised, float32 on the
CPU, ``torch_threads`` threads) is loaded once. llama-cpp-python's server answers one request at a time, so
a request's ``timeout_s`` must cover its wait in the queue (at concurrency 8 with the default 120 s, requests
timed out here). Reported: answers/s, the ratio to the first setting, and
whether every setting gave the same answers as the first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from biotalk.cli import run
from biotalk.data import load_benchmark
from biotalk.io import write_json
from biotalk.llm import GenerationSettings, HFChatBackend, OpenAIChatBackend, OpenAIConfig, build_prompts
from biotalk.llm.server import LlamaCppServer
from biotalk.rng import stream


@dataclass
class BenchConfig:
    data: Path = Path("out/mini-benchmark")
    n: int = 16
    shots: int = 3
    dna_max_nt: int = 150
    max_new_tokens: int = 16
    concurrency: list[int] = field(default_factory=lambda: [1, 4, 8])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 8])
    server_threads: int = 1
    torch_threads: int = 1
    n_ctx: int = 2048
    timeout_s: float = 3600.0  # per request: the server answers one at a time, so a request waits for the queue
    log: Path = Path("runs/bench_llm/server.log")
    out: str = ""  # optional JSON with the timings


def chats(cfg: BenchConfig) -> list[list[dict]]:
    data = load_benchmark(cfg.data, "III")
    rows = sorted((r for r in data["test1"] if not r["IsDuplicate"]), key=lambda r: r["RecordId"])
    queries = [rows[i] for i in stream(0).permutation(len(rows))[: cfg.n]]
    return [p.messages for p in build_prompts(queries, data["train"].to_list(), cfg.shots, cfg.dna_max_nt, 0)]


def timed(label: str, generate, prompts: list[str], base: dict | None) -> dict:
    start = time.perf_counter()
    answers = generate(prompts)
    seconds = time.perf_counter() - start
    row = {"setting": label, "seconds": seconds, "answers_per_s": len(prompts) / seconds, "answers": answers}
    row["ratio"] = row["answers_per_s"] / base["answers_per_s"] if base else 1.0
    row["same_answers"] = answers == base["answers"] if base else True
    print(f"{label:>22}: {len(prompts)} answers in {seconds:6.1f} s = {row['answers_per_s']:.3f} answers/s "
          f"(x{row['ratio']:.2f}; same answers: {row['same_answers']})", flush=True)
    return row


def main(cfg: BenchConfig) -> list[dict]:
    settings = GenerationSettings(max_new_tokens=cfg.max_new_tokens)
    messages = chats(cfg)
    rows = []
    with LlamaCppServer("smollm2", log_path=cfg.log, n_ctx=cfg.n_ctx, n_threads=cfg.server_threads) as server:
        base = None
        for c in cfg.concurrency:
            backend = OpenAIChatBackend("smollm2", OpenAIConfig(base_url=server.base_url, concurrency=c,
                                                                          timeout_s=cfg.timeout_s))
            prompts = [backend.render(m) for m in messages]
            if base is None:
                backend.generate(prompts[:1], settings)  # warm-up
            row = timed(f"server, concurrency {c}", lambda p, b=backend: b.generate(p, settings), prompts, base)
            base = base or row
            rows.append(row)
    torch.set_num_threads(cfg.torch_threads)
    local = HFChatBackend("smollm2", "cpu", "float32")
    prompts = sorted((local.render(m) for m in messages), key=len, reverse=True)  # as generate_missing orders them
    local.generate(prompts[:1], settings)  # warm-up
    base = None
    for b in cfg.batch_sizes:
        answer = lambda p, size=b: [a for _, a in sorted(local.stream(p, settings, size))]  # noqa: E731
        row = timed(f"local, batch {b}", answer, prompts, base)
        base = base or row
        rows.append(row)
    if cfg.out:
        write_json(cfg.out, rows)
    return rows


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    run(main, BenchConfig, __doc__)
