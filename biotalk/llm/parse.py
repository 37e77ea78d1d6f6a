"""Turn a chat model's free-text answer into an EC prediction, without ever evaluating it, and score it.

The answer is scanned for EC-like tokens (``biotalk.ec.EC_IN_TEXT_RE``: four dot-separated fields,
trailing ``-`` allowed, optional ``EC`` prefix); the first one that ``biotalk.ec`` accepts is the
prediction, normalised ("EC 1.02.-.-" -> "1.2.-.-", a partial prediction). Anything else (prose,
"1000", "1.2.3", "1.-.3.4") is no prediction: an empty set that costs recall, never precision. With
``choice: candidates`` the prediction is the first EC of the answer that is among the retrieved candidates.
"""

from __future__ import annotations

from collections.abc import Sequence

from biotalk.ec import EC_IN_TEXT_RE, InvalidEC, is_full_ec, normalize_ec
from biotalk.metrics import score_genes


def _valid_ecs(text: str):
    """Every valid EC number in ``text``, normalised, in order of appearance."""
    for match in EC_IN_TEXT_RE.finditer(text or ""):
        try:
            yield normalize_ec(match.group(0))
        except InvalidEC:
            continue


def parse_answer(text: str) -> str | None:
    """The first valid EC number in ``text`` in canonical form, or None when there is none."""
    return next(_valid_ecs(text), None)


def parse_choice(text: str, candidates: Sequence[str]) -> str | None:
    """Constrained choice: the first EC in ``text`` that is one of ``candidates`` (the retrieved ECs), or None:
    an answer off the list is no prediction."""
    allowed = set(candidates)
    return next((ec for ec in _valid_ecs(text) if ec in allowed), None)


def ecs_in_text(text: str) -> set[str]:
    """Every valid EC number mentioned in ``text``, normalised (used to prove a prompt does not leak)."""
    return set(_valid_ecs(text))


def score_answers(y_true: Sequence[str], predicted: Sequence[str | None], genes: Sequence | None = None,
                  identity: Sequence[float | None] | None = None) -> dict:  # fmt: skip
    """Table 5 metrics: the metric block every model reports (``biotalk.metrics.score_genes``: genes as samples,
    by identity to training when given; its ``coverage`` is the share of genes whose answers hold an EC at all)
    and ``partial``, the share of answers holding only a partial EC."""
    block = score_genes(range(len(y_true)) if genes is None else genes, y_true, predicted, identity)
    return {**block, "partial": sum(p is not None and not is_full_ec(p) for p in predicted) / block["n"]}
