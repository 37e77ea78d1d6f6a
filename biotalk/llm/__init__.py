"""Zero- and few-shot EC prediction with a chat LLM (the paper's Table 5): prompts, backends,
a resumable response cache and answer parsing. ``prompt_llm.py`` at the top level drives them."""

from biotalk.llm.backends import GenerationSettings, HFChatBackend, resolve_model
from biotalk.llm.cache import ResponseCache, cache_key, generate_cached
from biotalk.llm.parse import ecs_in_text, parse_answer, score_answers
from biotalk.llm.prompts import build_conversations, build_messages, draw_examples, gene_text

__all__ = [
    "GenerationSettings", "HFChatBackend", "ResponseCache", "build_conversations", "build_messages", "cache_key",
    "draw_examples", "ecs_in_text", "gene_text", "generate_cached", "parse_answer", "resolve_model", "score_answers",
]  # fmt: skip
