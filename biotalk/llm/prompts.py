"""Chat prompts for zero- and few-shot EC prediction from a gene's DNA (the paper's Table 5).

Differences from the reference code, on purpose:
- The query shows its DNA only. The reference put the query's description into the prompt, and
  every description names the EC (even the masked ones name the enzyme and its reaction, and the
  class names give away levels 1-3), so the answer was in the prompt.
- Few-shot means ``shots`` real examples (the reference's "3-shot" prompt had 2), drawn under the
  seed from the benchmark's training split, each shown as a user turn (its DNA) and an assistant turn
  (its EC: the label being taught). Examples have distinct ECs, none equal to the query's, so no
  prompt contains the query's EC; the draw depends only on (seed, query RecordId), so a query gets
  the same prompt whatever ``limit`` or order the run uses.
- DNA is cut to its first ``dna_max_nt`` nucleotides (the 5' end: start codon and N-terminal
  region) so that ``shots + 1`` genes fit the model's context; the prompt says how much was cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from biotalk.rng import stream

Message = dict[str, str]

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


def gene_text(sequence: str, max_nt: int) -> str:
    """A gene as the user turn shows it: its first ``max_nt`` nt, and its full length when cut."""
    seq = "".join(sequence.split()).upper()
    if max_nt <= 0 or len(seq) <= max_nt:
        return f"Gene ({len(seq)} nt): {seq}"
    return f"Gene (first {max_nt} of {len(seq)} nt): {seq[:max_nt]}"


def draw_examples(pool: Sequence[dict[str, Any]], record_id: str, shots: int, seed: int) -> list[dict]:
    """``shots`` training records with distinct ECs, drawn under (seed, query id) alone: the query's label is
    never looked at, so an example may share the query's EC, as any real few-shot prompt can."""
    if shots == 0:
        return []
    chosen, ecs = [], set()
    for i in stream(seed, "examples", record_id).permutation(len(pool)):
        if pool[i]["EC"] not in ecs:
            chosen.append(pool[i])
            ecs.add(pool[i]["EC"])
            if len(chosen) == shots:
                return chosen
    raise ValueError(f"record {record_id}: the training split has only {len(chosen)} ECs, {shots} examples needed")


def build_messages(query: dict[str, Any], examples: Sequence[dict[str, Any]], dna_max_nt: int) -> list[Message]:
    """The chat for one query: task in the system turn, examples as user/assistant pairs, then the query."""
    task = FEW_SHOT_TASK if examples else ZERO_SHOT_TASK
    messages = [{"role": "system", "content": f"{SYSTEM}\n{task}"}]
    for ex in examples:
        messages.append({"role": "user", "content": gene_text(ex["Sequence"], dna_max_nt)})
        messages.append({"role": "assistant", "content": ex["EC"]})
    messages.append({"role": "user", "content": gene_text(query["Sequence"], dna_max_nt)})
    return messages


def example_pool(train: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Training records usable as examples: one per RecordId (balancing duplicates dropped), sorted by id
    so the draw does not depend on file order."""
    seen: dict[str, dict[str, Any]] = {}
    for row in train:
        if row["Sequence"] and row["RecordId"] not in seen:
            seen[row["RecordId"]] = row
    return [seen[k] for k in sorted(seen)]


def build_conversations(
    queries: Sequence[dict[str, Any]], train: Sequence[dict[str, Any]], shots: int, dna_max_nt: int, seed: int
) -> list[list[Message]]:
    """One chat per query; each record needs ``RecordId``, ``EC`` and ``Sequence``."""
    if shots < 0:
        raise ValueError(f"shots must be >= 0, got {shots}")
    pool = example_pool(train) if shots else []
    conversations = []
    for query in queries:
        if not query["Sequence"]:
            raise ValueError(f"record {query['RecordId']}: empty DNA sequence")
        conversations.append(build_messages(query, draw_examples(pool, query["RecordId"], shots, seed), dna_max_nt))
    return conversations
