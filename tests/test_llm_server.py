"""The OpenAI-compatible LLM backend against a real llama-cpp-python server: answers cached like local ones,
retries on 429/5xx, a key from the environment, a server killed mid-run and a rerun that asks only for the rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest

from biotalk.data import load_benchmark
from biotalk.llm import (
    BackendError,
    GenerationSettings,
    OpenAIChatBackend,
    OpenAIConfig,
    ResponseCache,
    build_conversations,
    generate_cached,
)
from biotalk.llm.server import LlamaCppServer

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "llm" / "mini.yaml"
SHORT = GenerationSettings(max_new_tokens=12)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def splits(mini_benchmark):
    columns = ["RecordId", "EC", "Sequence", "IsDuplicate", "Description", "DescriptionMasked", "EmblCdsId", "Protein"]
    return {"test1": load_benchmark(mini_benchmark, "III", splits=["test1"])["test1"].select_columns(columns).to_list()}


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    with LlamaCppServer("smollm2", log_path=tmp_path_factory.mktemp("server") / "server.log", n_ctx=2048) as server:
        yield server


def _requests_reach(server: LlamaCppServer, expected: int, timeout: float = 10) -> int:
    """The server's answered chat requests once its access log shows ``expected`` (it logs after answering)."""
    deadline = time.monotonic() + timeout
    while server.chat_requests() < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return server.chat_requests()


@pytest.mark.slow
def test_server_answers_are_cached_like_local_ones(llama_server, splits, tmp_path):
    config = OpenAIConfig(base_url=llama_server.base_url, concurrency=3)
    backend = OpenAIChatBackend("smollm2", config)
    prompts = [backend.render(c) for c in build_conversations(splits["test1"][:3], [], 0, 60, 0)]
    start, cache = llama_server.chat_requests(), tmp_path / "c.jsonl"
    answers, generated = generate_cached(backend, prompts, SHORT, ResponseCache(cache))
    assert generated == 3 and _requests_reach(llama_server, start + 3) == start + 3
    again, generated = generate_cached(backend, prompts, SHORT, ResponseCache(cache))
    assert (again, generated) == (answers, 0) and llama_server.chat_requests() == start + 3  # nothing asked again
    entry = json.loads(cache.read_text().splitlines()[0])
    assert set(entry) == {"key", "model", "settings", "prompt", "response"} and entry["model"] == "openai:smollm2"
    one_at_a_time = OpenAIChatBackend("smollm2", OpenAIConfig(base_url=llama_server.base_url, concurrency=1))
    assert one_at_a_time.generate(prompts, SHORT) == answers  # greedy: concurrency does not change answers


class _Gate(BaseHTTPRequestHandler):
    """A real HTTP hop in front of the server that answers the first requests with the statuses in
    ``plan`` (then forwards), and records each request's Authorization header."""

    plan: list[int] = []
    upstream = ""
    seen: list[str | None] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append(self.headers.get("Authorization"))
        if self.plan:
            status = self.plan.pop(0)
            self.send_response(status)
            self.send_header("Retry-After", "0.2")
            self.end_headers()
            self.wfile.write(b'{"error": "planned"}')
            return
        request = urllib.request.Request(self.upstream + "/chat/completions", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            data = response.read()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_retries_on_429_and_5xx_fails_at_once_on_4xx_and_sends_the_key(llama_server, splits, monkeypatch):
    gate = ThreadingHTTPServer(("127.0.0.1", 0), _Gate)
    threading.Thread(target=gate.serve_forever, daemon=True).start()
    _Gate.upstream, url = llama_server.base_url, f"http://127.0.0.1:{gate.server_address[1]}/v1"
    try:
        monkeypatch.setenv("BIOTALK_TEST_KEY", "sk-test")
        config = OpenAIConfig(base_url=url, api_key_env="BIOTALK_TEST_KEY", concurrency=1, backoff_s=0.05)
        backend = OpenAIChatBackend("smollm2", config)
        prompt = backend.render(build_conversations(splits["test1"][:1], [], 0, 60, 0)[0])
        direct = OpenAIChatBackend("smollm2", OpenAIConfig(base_url=llama_server.base_url)).generate([prompt], SHORT)
        _Gate.plan, _Gate.seen = [503, 429], []
        assert backend.generate([prompt], SHORT) == direct and backend.n_requests == 3
        assert _Gate.seen == ["Bearer sk-test"] * 3
        _Gate.plan, _Gate.seen = [400], []
        with pytest.raises(BackendError, match="HTTP 400"):
            backend.ask(prompt, SHORT)
        assert len(_Gate.seen) == 1  # not retried
        monkeypatch.delenv("BIOTALK_TEST_KEY")
        _Gate.plan, _Gate.seen = [503] * 3, []
        quick = OpenAIChatBackend("smollm2", OpenAIConfig(base_url=url, api_key_env="BIOTALK_TEST_KEY", retries=2, backoff_s=0.05))
        with pytest.raises(BackendError, match="did not answer after 3 tries"):
            quick.ask(prompt, SHORT)
        assert _Gate.seen == [None] * 3  # no key in the environment: none sent
    finally:
        gate.shutdown()


@pytest.mark.slow
def test_a_server_killed_mid_run_stops_the_run_and_a_rerun_asks_only_for_the_rest(mini_benchmark, tmp_path):
    cache, args = tmp_path / "cache.jsonl", ["--config", str(CONFIG), f"data={mini_benchmark}", "backend=openai",
                                             "model=smollm2", "limit=8", "dna_max_nt=60", "generation.max_new_tokens=8",
                                             "openai.concurrency=2", "openai.retries=2", "openai.backoff_s=0.2"]  # fmt: skip
    first = LlamaCppServer("smollm2", log_path=tmp_path / "first.log").start()
    run = subprocess.Popen([sys.executable, "prompt_llm.py", *args, f"openai.base_url={first.base_url}", f"cache={cache}",
                            f"out={tmp_path / 'a'}"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while (not cache.is_file() or len(cache.read_text().splitlines()) < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        first.kill()
        _, err = run.communicate(timeout=120)
    finally:
        first.kill()
        run.kill()
    saved = len(cache.read_text().splitlines())
    assert run.returncode == 1 and "Traceback" not in err, err
    (line,) = [x for x in err.splitlines() if x.startswith("error: ")]
    assert f"{first.base_url.removesuffix('/v1')}" in line and "rerun the same command" in line and f"{saved} of the" in line
    assert 2 <= saved < 8 and not (tmp_path / "a").exists()
    with LlamaCppServer("smollm2", log_path=tmp_path / "second.log") as second:
        done = subprocess.run([sys.executable, "prompt_llm.py", *args, f"openai.base_url={second.base_url}",
                               f"cache={cache}", f"out={tmp_path / 'a'}"], cwd=ROOT, env=ENV, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
        assert metrics["from_cache"] == saved and metrics["generated"] == metrics["unique_prompts"] - saved
        assert _requests_reach(second, metrics["generated"]) == metrics["generated"]  # nothing asked twice
    assert len(pl.read_csv(tmp_path / "a" / "predictions.tsv", separator="\t")) == 8
    assert len(ResponseCache(cache)) == metrics["unique_prompts"]
