"""Zero- and few-shot EC prediction with a chat LLM (the paper's Table 5): prompts in three input modes,
retrieval of training genes as evidence, local and OpenAI-compatible backends, a resumable answer cache
and answer parsing. ``prompt_llm.py`` at the top level drives them; ``scripts/table5.py`` runs the table."""

from biotalk.llm.backends import GenerationSettings, HFChatBackend, resolve_model
from biotalk.llm.cache import ResponseCache, cache_key, generate_cached, generate_missing
from biotalk.llm.evidence import Neighbour, SearchSettings, candidate_ecs, nearest_training_genes
from biotalk.llm.openai_api import BackendError, OpenAIChatBackend, OpenAIConfig
from biotalk.llm.parse import ecs_in_text, parse_answer, parse_choice, score_answers
from biotalk.llm.prompts import (
    INPUT_MODES,
    LEAKY_MODES,
    Prompt,
    build_conversations,
    build_messages,
    build_prompts,
    draw_examples,
    gene_text,
)

__all__ = [
    "INPUT_MODES", "LEAKY_MODES", "BackendError", "GenerationSettings", "HFChatBackend", "Neighbour",
    "OpenAIChatBackend", "OpenAIConfig", "Prompt", "ResponseCache", "SearchSettings", "build_conversations",
    "build_messages", "build_prompts", "cache_key", "candidate_ecs", "draw_examples", "ecs_in_text", "gene_text",
    "generate_cached", "generate_missing", "nearest_training_genes", "parse_answer", "parse_choice",
    "resolve_model", "score_answers",
]  # fmt: skip
