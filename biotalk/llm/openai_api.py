"""The ``openai`` backend: a chat model behind any OpenAI-compatible endpoint (vLLM, llama.cpp's server,
llama-cpp-python's server, Ollama, a hosted API), spoken to with the standard library only.

    POST {base_url}/chat/completions  {"model", "messages", "max_tokens", "temperature", "top_p", "seed"}

- The API key, if any, is read from the environment variable named by ``api_key_env`` (never from a
  config file); unset or empty: no ``Authorization`` header (local servers need none).
- At most ``concurrency`` requests are in flight; each has a ``timeout_s``.
- 429 and 5xx answers, timeouts and refused or dropped connections are retried ``retries`` times with
  exponential backoff (``backoff_s`` x 1, 2, 4, ... with jitter, or the server's ``Retry-After``); any other
  4xx (a bad key, a prompt longer than the served context) fails at once with the server's message.
- When a request has used every retry, the backend stops starting new ones and raises ``BackendError``;
  the answers that arrived before are already in the answer cache (``biotalk.llm.cache``), so a rerun
  asks only for the rest.
- The prompt, and the cache key, is the chat itself (canonical JSON): the server applies its template.
  ``cache_id`` is ``openai:<model>``: the served model's name identifies it in the cache, so give
  different models (or quantisations) different names.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from biotalk.llm.backends import GenerationSettings, count_chat_tokens, load_chat_tokenizer
from biotalk.llm.prompts import Message

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
CHARS_PER_MESSAGE = 8  # template tokens per message when tokens are estimated from characters


class BackendError(RuntimeError):
    """The model server did not answer: down, unreachable, refusing, or failing after every retry."""


@dataclass
class OpenAIConfig:
    base_url: str = "http://127.0.0.1:8080/v1"  # up to and including /v1
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key; unset: no key sent
    concurrency: int = 4  # requests in flight at once
    timeout_s: float = 120.0  # per request
    retries: int = 4  # extra tries of a request after a 429/5xx, a timeout or a connection error
    backoff_s: float = 1.0  # first wait before a retry; doubled each time
    tokenizer: str = ""  # for counting prompt tokens (smollm2, a model folder or .gguf); "": count characters
    context: int = 0  # the served context in tokens (llama.cpp: --n_ctx); 0 = unknown (no fitting to it)


class OpenAIChatBackend:
    """Chats sent to an OpenAI-compatible server; ``n_generated`` counts answers received."""

    def __init__(self, model: str, cfg: OpenAIConfig) -> None:
        if cfg.concurrency < 1 or cfg.retries < 0 or cfg.timeout_s <= 0:
            raise ValueError("openai: concurrency >= 1, retries >= 0 and timeout_s > 0 are needed")
        self.model = model
        self.cfg = cfg
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self.model_id = f"openai:{model}"
        self.cache_id = self.model_id
        self.context = cfg.context or None
        self.tokenizer = load_chat_tokenizer(cfg.tokenizer) if cfg.tokenizer else None
        self.n_generated = 0
        self.n_requests = 0  # HTTP requests sent, retries included
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def render(self, messages: list[Message]) -> str:
        """The chat as canonical JSON: what is sent, and what the cache is keyed by."""
        return json.dumps(messages, ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    def count_tokens(self, messages: list[Message]) -> int:
        """Exact with ``tokenizer``; else characters, an upper bound for DNA and English under any BPE."""
        if self.tokenizer is not None:
            return count_chat_tokens(self.tokenizer, messages)
        return sum(len(m["content"]) + CHARS_PER_MESSAGE for m in messages)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.cfg.api_key_env, "") if self.cfg.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _body(self, prompt: str, settings: GenerationSettings) -> bytes:
        body = {"model": self.model, "messages": json.loads(prompt), "max_tokens": settings.max_new_tokens,
                "temperature": settings.temperature if settings.do_sample else 0.0,
                "top_p": settings.top_p if settings.do_sample else 1.0, "seed": settings.seed}  # fmt: skip
        return json.dumps(body).encode()

    def ask(self, prompt: str, settings: GenerationSettings) -> str:
        """One chat's answer, retried on 429/5xx/timeouts/connection errors; ``BackendError`` when it fails."""
        request = urllib.request.Request(self.url, self._body(prompt, settings), self._headers(), method="POST")
        problem = ""
        for attempt in range(self.cfg.retries + 1):
            if self._stop.is_set():
                raise BackendError("stopped: another request failed")
            wait = self.cfg.backoff_s * 2**attempt * (1 + random.random() / 4)
            with self._lock:
                self.n_requests += 1
            try:
                with urllib.request.urlopen(request, timeout=self.cfg.timeout_s) as response:
                    content = json.loads(response.read())["choices"][0]["message"]["content"]
                with self._lock:
                    self.n_generated += 1
                return (content or "").strip()
            except urllib.error.HTTPError as err:
                detail = err.read().decode(errors="replace").strip()[:300]
                if err.code not in RETRY_STATUS:
                    raise BackendError(f"{self.url} answered HTTP {err.code}: {detail}") from None
                problem = f"HTTP {err.code}: {detail}"
                retry_after = err.headers.get("Retry-After", "")
                wait = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else wait
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                problem = str(getattr(err, "reason", err)) or type(err).__name__
            except (KeyError, IndexError, TypeError, json.JSONDecodeError) as err:
                raise BackendError(f"{self.url} sent an answer that is not a chat completion: {err!r}") from None
            if attempt < self.cfg.retries:
                self._stop.wait(wait)
        raise BackendError(f"the model server at {self.cfg.base_url} did not answer after "
                           f"{self.cfg.retries + 1} tries ({problem})")

    def stream(self, prompts: Sequence[str], settings: GenerationSettings, batch_size: int = 0
               ) -> Iterator[tuple[int, str]]:  # fmt: skip
        """(index, answer) pairs as answers arrive, ``concurrency`` requests at a time (``batch_size`` is
        the local backend's and unused). On the first request that fails for good, no new request starts,
        the ones in flight finish (their answers are still yielded) and ``BackendError`` is raised."""
        self._stop.clear()
        failure: BackendError | None = None
        try:
            with ThreadPoolExecutor(self.cfg.concurrency, thread_name_prefix="llm-request") as pool:
                futures = {pool.submit(self.ask, p, settings): i for i, p in enumerate(prompts)}
                try:
                    for future in as_completed(futures):
                        try:
                            answer = future.result()
                        except CancelledError:
                            continue
                        except BackendError as err:
                            if failure is None:  # the first failure stops the queue; later ones follow from it
                                failure = err
                                self._stop.set()
                                for f in futures:
                                    f.cancel()
                            continue
                        yield futures[future], answer
                finally:
                    self._stop.set()  # a consumer that stops early ends the queue too
                    for f in futures:
                        f.cancel()
        finally:
            self._stop.clear()
        if failure is not None:
            raise failure

    def generate(self, prompts: list[str], settings: GenerationSettings) -> list[str]:
        """Answers in prompt order (the benchmark's and the tests' entry point)."""
        answers = [""] * len(prompts)
        for i, answer in self.stream(prompts, settings):
            answers[i] = answer
        return answers


def wait_for_server(base_url: str, timeout_s: float = 120.0, alive=lambda: True) -> None:
    """Poll ``GET {base_url}/models`` until it answers 200; ``alive()`` False (a child process that exited)
    or the timeout raises ``BackendError``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise BackendError(f"the model server for {base_url} exited before it answered")
        try:
            with urllib.request.urlopen(base_url.rstrip("/") + "/models", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.25)
    raise BackendError(f"the model server at {base_url} did not answer within {timeout_s:.0f} s")
