"""Chat prompts for zero- and few-shot EC prediction from a gene (the paper's Table 5), in three input modes.

- ``dna``: the query shows its DNA only. Every text field of a record gives its label away (even the
  masked description names the enzyme and its reaction), so none of the query's is shown.
- ``dna+neighbours``: its DNA plus evidence a biologist would look up: the nearest *training* genes by
  protein search (``biotalk.llm.evidence``) with their ECs and masked descriptions. With
  ``choice: candidates`` the model is told to answer with one of those ECs.
- ``paper``: the paper's setting, reproduced to show why its numbers were high: one user message with the
  DNA and the query's own ``Description``, which contains its EC; "three-shot" shows two examples, as the
  paper's prompt did. LEAKY: the answer is in the prompt. Labelled so in every output.

Few-shot examples (``dna`` and ``dna+neighbours``: user turn = the example's gene (+ its own evidence),
assistant turn = its EC) are exactly ``shots`` training records, chosen ``random``ly under (seed, query
RecordId) with distinct ECs, or the ``nearest`` training genes to the query (filled up at random when
fewer are found). Neither choice reads the query's label, so a query gets the same prompt whatever its
label, ``limit`` or order.

DNA: each gene is cut to its first ``dna_max_nt`` nt (the 5' end; 0 = whole genes), and further, to the
largest common length whose rendered prompt fits the token ``budget`` (tokens counted by the model's
tokenizer); the user turn says how much was shown, and each ``Prompt`` records it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from biotalk.llm.evidence import Neighbour, candidate_ecs, evidence_text
from biotalk.rng import stream

Message = dict[str, str]
INPUT_MODES = ("dna", "dna+neighbours", "paper")
LEAKY_MODES = frozenset({"paper"})
MIN_NT = 30  # shortest cut a prompt is fitted down to before giving up

SYSTEM = (
    "You are an expert in microbial genomics and enzymology. You read protein-coding genes of bacteria "
    "and archaea and name the Enzyme Commission (EC) number of the enzyme they encode."
)
ZERO_SHOT_TASK = (
    "The user gives you the DNA sequence of one protein-coding gene (coding strand, 5' to 3'). "
    "Predict the EC number of the enzyme it encodes. Answer with a single EC number of the form "
    "a.b.c.d and nothing else. If you can only tell the first levels, write '-' for the others (a.b.-.-)."
)
FEW_SHOT_TASK = "Give the EC number of the enzyme encoded by each gene. Answer with the EC number only."
NEIGHBOUR_TASK = (
    "The user gives you the DNA sequence of one protein-coding gene (coding strand, 5' to 3') and the most "
    "similar genes of known function found by a protein search of a reference set, with their EC numbers. "
    "They are evidence, not the answer: a close match usually shares the function, a distant one may not. "
    "Predict the EC number of the enzyme the gene encodes. Answer with a single EC number of the form a.b.c.d "
    "and nothing else; write '-' for levels you cannot tell (a.b.-.-)."
)
NEIGHBOUR_FEW_SHOT_TASK = ("Give the EC number of the enzyme encoded by each gene, using the similar genes "
                           "listed as evidence. Answer with the EC number only.")
CANDIDATE_RULE = " Answer with one of the EC numbers of the similar genes listed."
PAPER_TASK = ("Task: predict the Enzyme Commission (EC) number of an enzyme from the DNA sequence of its gene "
              "and a text description of it. EC numbers are written like 3.4.2.7, 7.9.8.2 or 2.8.4.1.")
PAPER_ANSWER = "Reply with the EC number alone, no other words."


@dataclass
class Prompt:
    """One query's chat and what was done to build it."""

    messages: list[Message]
    nt_cap: int  # nucleotides shown of each gene (0: whole genes)
    query_nt: int  # the query gene's length
    examples: list[str] = field(default_factory=list)  # RecordIds of the few-shot examples
    candidates: list[str] = field(default_factory=list)  # ECs offered as evidence (dna+neighbours)

    @property
    def truncated(self) -> bool:
        """Whether the query's DNA was cut."""
        return 0 < self.nt_cap < self.query_nt


def gene_text(sequence: str, max_nt: int) -> str:
    """A gene as the user turn shows it: its first ``max_nt`` nt, and its full length when cut."""
    seq = "".join(sequence.split()).upper()
    if max_nt <= 0 or len(seq) <= max_nt:
        return f"Gene ({len(seq)} nt): {seq}"
    return f"Gene (first {max_nt} of {len(seq)} nt): {seq[:max_nt]}"


def example_count(inputs: str, shots: int) -> int:
    """Examples shown: ``shots``, except the paper's "three-shot" prompt, which held two."""
    return max(shots - 1, 0) if inputs == "paper" else shots


def draw_examples(pool: Sequence[dict[str, Any]], record_id: str, shots: int, seed: int,
                  exclude: Sequence[str] = ()) -> list[dict]:  # fmt: skip
    """``shots`` training records with distinct ECs (none of ``exclude``'s records), drawn under (seed,
    query id) alone: the query's label is never looked at, so an example may share the query's EC."""
    if shots == 0:
        return []
    chosen, ecs, skip = [], set(), set(exclude)
    for i in stream(seed, "examples", record_id).permutation(len(pool)):
        if pool[i]["EC"] not in ecs and pool[i]["RecordId"] not in skip:
            chosen.append(pool[i])
            ecs.add(pool[i]["EC"])
            if len(chosen) == shots:
                return chosen
    raise ValueError(f"record {record_id}: the training split has only {len(chosen)} ECs, {shots} examples needed")


def nearest_examples(pool: Sequence[dict[str, Any]], neighbours: Sequence[Neighbour], record_id: str,
                     shots: int, seed: int) -> list[dict]:  # fmt: skip
    """The records of the ``shots`` nearest training genes (one record each), filled up by ``draw_examples``
    when the search found fewer."""
    by_id = {r["RecordId"]: r for r in pool}
    chosen = [by_id[n.record_ids[0]] for n in neighbours if n.record_ids and n.record_ids[0] in by_id][:shots]
    ids = [r["RecordId"] for r in chosen]
    return chosen + (draw_examples(pool, record_id, shots - len(chosen), seed, ids) if len(chosen) < shots else [])


def example_pool(train: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Training records usable as examples: one per RecordId (balancing duplicates dropped), sorted by id
    so the draw does not depend on file order."""
    seen: dict[str, dict[str, Any]] = {}
    for row in train:
        if row["Sequence"] and row["RecordId"] not in seen:
            seen[row["RecordId"]] = row
    return [seen[k] for k in sorted(seen)]


def _user_turn(record: dict[str, Any], nt: int, evidence: dict[str, str] | None) -> str:
    text = gene_text(record["Sequence"], nt)
    return f"{text}\n{evidence[record['RecordId']]}" if evidence is not None else text


def build_messages(query: dict[str, Any], examples: Sequence[dict[str, Any]], dna_max_nt: int,
                   inputs: str = "dna", evidence: dict[str, str] | None = None,
                   choice: str = "free") -> list[Message]:  # fmt: skip
    """The chat for one query. ``evidence``: RecordId -> evidence block, for the query and every example
    (``dna+neighbours``)."""
    if inputs == "paper":
        return [{"role": "user", "content": _paper_text(query, examples, dna_max_nt)}]
    if inputs == "dna+neighbours":
        task = NEIGHBOUR_FEW_SHOT_TASK if examples else NEIGHBOUR_TASK
        task += CANDIDATE_RULE if choice == "candidates" else ""
    else:
        task, evidence = (FEW_SHOT_TASK if examples else ZERO_SHOT_TASK), None
    messages = [{"role": "system", "content": f"{SYSTEM}\n{task}"}]
    for ex in examples:
        messages.append({"role": "user", "content": _user_turn(ex, dna_max_nt, evidence)})
        messages.append({"role": "assistant", "content": ex["EC"]})
    messages.append({"role": "user", "content": _user_turn(query, dna_max_nt, evidence)})
    return messages


def _paper_text(query: dict[str, Any], examples: Sequence[dict[str, Any]], nt: int) -> str:
    """The paper's single-message prompt (our words): task, EC format, examples with their own description
    and EC, then the query's DNA and its own description (which holds its EC: leaky by design)."""
    parts = [PAPER_TASK]
    if examples:
        parts.append("Here are solved examples; predict the EC number for the new input the same way.")
    for i, ex in enumerate(examples, 1):
        parts.append(f"Example {i}\nDNA sequence: {gene_text(ex['Sequence'], nt)}\n"
                     f"Text description: {ex['Description']}\nOutput: {ex['EC']}")
    parts.append(f"New input\nDNA sequence: {gene_text(query['Sequence'], nt)}\n"
                 f"Text description: {query['Description']}\n{PAPER_ANSWER}")
    return "\n\n".join(parts)


def fit_to_budget(build: Callable[[int], list[Message]], count: Callable[[list[Message]], int] | None,
                  budget: int | None, max_nt: int, longest: int) -> tuple[list[Message], int]:  # fmt: skip
    """(messages, nt cap) with the largest common cap <= ``max_nt`` (0: whole genes) whose prompt has at most
    ``budget`` tokens (``None``: no budget); fewer than ``MIN_NT`` nt per gene raises ``ValueError``."""
    cap = min(max_nt, longest) if max_nt > 0 else longest
    messages = build(cap)
    if budget is None or count is None or count(messages) <= budget:
        return messages, (0 if max_nt <= 0 and cap == longest else cap)
    if count(build(MIN_NT)) > budget:
        raise ValueError(f"a prompt with {MIN_NT} nt per gene is still longer than {budget} tokens: use fewer "
                         f"shots or neighbours, or a model with a longer context")
    low, high = MIN_NT, cap  # low fits, high does not
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if count(build(mid)) <= budget else (low, mid)
    return build(low), low


def build_prompts(queries: Sequence[dict[str, Any]], train: Sequence[dict[str, Any]], shots: int, dna_max_nt: int,
                  seed: int, inputs: str = "dna", examples: str = "random",
                  neighbours: dict[str, list[Neighbour]] | None = None, evidence_settings=None,
                  nearest: dict[str, list[Neighbour]] | None = None, choice: str = "free",
                  count: Callable[[list[Message]], int] | None = None,
                  budget: int | None = None) -> list[Prompt]:  # fmt: skip
    """One ``Prompt`` per query. Records need ``RecordId``, ``EC``, ``Sequence`` (``paper``: ``Description``).
    ``neighbours``: RecordId -> the training genes shown as evidence (``dna+neighbours``), for every query and
    every training record that can be an example; ``nearest``: RecordId -> the query's nearest training
    genes (``examples: nearest``)."""
    if shots < 0:
        raise ValueError(f"shots must be >= 0, got {shots}")
    if inputs not in INPUT_MODES:
        raise ValueError(f"inputs must be one of {', '.join(INPUT_MODES)}, got {inputs!r}")
    k = example_count(inputs, shots)
    pool = example_pool(train) if k else []
    out = []
    for query in queries:
        if not query["Sequence"]:
            raise ValueError(f"record {query['RecordId']}: empty DNA sequence")
        if k and examples == "nearest":
            chosen = nearest_examples(pool, nearest[query["RecordId"]], query["RecordId"], k, seed)
        else:
            chosen = draw_examples(pool, query["RecordId"], k, seed)
        evidence, candidates = None, []
        if inputs == "dna+neighbours":
            evidence = {r["RecordId"]: evidence_text(neighbours[r["RecordId"]], evidence_settings)
                        for r in [query, *chosen]}  # fmt: skip
            candidates = candidate_ecs(neighbours[query["RecordId"]])
        longest = max(len(r["Sequence"]) for r in [query, *chosen])
        messages, cap = fit_to_budget(lambda nt, q=query, c=chosen, e=evidence: build_messages(q, c, nt, inputs, e, choice),
                                      count, budget, dna_max_nt, longest)  # fmt: skip
        out.append(Prompt(messages, cap, len(query["Sequence"]), [r["RecordId"] for r in chosen], candidates))
    return out


def build_conversations(queries: Sequence[dict[str, Any]], train: Sequence[dict[str, Any]], shots: int,
                        dna_max_nt: int, seed: int) -> list[list[Message]]:  # fmt: skip
    """The ``dna`` mode's chats with random examples and a fixed cut (no token budget)."""
    return [p.messages for p in build_prompts(queries, train, shots, dna_max_nt, seed)]
