"""Retrieval for prompts: the training genes nearest to a gene by MMseqs2 protein search, with their ECs and
masked descriptions, offered to the model as evidence (``inputs: dna+neighbours``) or used to choose
few-shot examples (``examples: nearest``).

Only training records are ever retrieved, and only their own fields are shown: a neighbour's EC and its
``DescriptionMasked`` (EC numbers removed). The query's label and its description are never read here.
Hits are ranked by bit score, then e-value, then training ``RecordId``, so the order does not depend on
MMseqs2's output order; a training gene is shown once (a gene with two ECs shows both), and a gene is
never its own neighbour (when training genes are the queries, for few-shot examples).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from biotalk import mmseqs
from biotalk.data.identity import proteins
from biotalk.ec import ec_order_key, normalize_ec


@dataclass
class SearchSettings:
    max_evalue: float = 1e-5  # as the homology-transfer baseline
    sensitivity: float = 5.7
    threads: int = 1


@dataclass(frozen=True)
class Neighbour:
    gene: str  # the training gene (EmblCdsId)
    ecs: tuple[str, ...]  # its ECs, in EC order
    description: str  # masked description of its first record
    identity: float  # 0..1, MMseqs2 fident
    evalue: float
    record_ids: tuple[str, ...] = field(default=())


def _genes(train: Sequence[dict]) -> dict[str, dict]:
    """Training genes: protein, ECs, first record's masked description, record ids; one entry per gene."""
    genes: dict[str, dict] = {}
    seen: set[str] = set()
    for row, protein in zip(train, proteins(_columns(train)), strict=True):
        if row["RecordId"] in seen:  # balancing duplicates
            continue
        seen.add(row["RecordId"])
        gene = genes.setdefault(row["EmblCdsId"] or row["Sequence"], {"protein": protein, "ecs": set(), "records": []})
        gene["ecs"].add(normalize_ec(row["EC"]))
        gene["records"].append(row)
    for gene in genes.values():
        gene["records"].sort(key=lambda r: r["RecordId"])
    return genes


def _columns(rows: Sequence[dict]) -> dict[str, list]:
    return {"Protein": [r.get("Protein") for r in rows], "Sequence": [r["Sequence"] for r in rows]}


def nearest_training_genes(queries: Sequence[dict], train: Sequence[dict], k: int,
                           settings: SearchSettings) -> list[list[Neighbour]]:  # fmt: skip
    """For each query record (``Sequence``, optional ``Protein`` and ``EmblCdsId``), up to ``k`` nearest
    training genes. Each distinct protein is searched once."""
    genes = _genes(train)
    targets = sorted({g["protein"] for g in genes.values() if g["protein"]})
    by_protein: dict[str, list[str]] = {}
    for name, g in sorted(genes.items()):
        by_protein.setdefault(g["protein"], []).append(name)
    query_proteins = proteins(_columns(queries))
    unique = sorted({p for p in query_proteins if p})
    hits = mmseqs.search(unique, targets, ["-e", settings.max_evalue, "-s", settings.sensitivity,
                                           "--max-seqs", max(300, 4 * k)], ("evalue", "bits", "fident"),
                         settings.threads)  # fmt: skip
    ranked: dict[str, list[tuple]] = {}
    for q, t, evalue, bits, ident in hits.filter(hits["evalue"] <= settings.max_evalue).iter_rows():
        ranked.setdefault(unique[q], []).append((-bits, evalue, targets[t], ident))
    out = []
    for query, protein in zip(queries, query_proteins, strict=True):
        own = query.get("EmblCdsId") or query["Sequence"]
        found: list[Neighbour] = []
        for _, evalue, target, ident in sorted(ranked.get(protein, [])):
            for name in by_protein[target]:
                if name == own or len(found) == k:
                    continue
                g = genes[name]
                found.append(Neighbour(gene=name, ecs=tuple(sorted(g["ecs"], key=ec_order_key)),
                                       description=g["records"][0]["DescriptionMasked"], identity=ident,
                                       evalue=evalue, record_ids=tuple(r["RecordId"] for r in g["records"])))  # fmt: skip
        out.append(found)
    return out


def candidate_ecs(neighbours: Sequence[Neighbour]) -> list[str]:
    """The neighbours' ECs in order of first appearance: the choices of ``choice: candidates``."""
    return list(dict.fromkeys(ec for n in neighbours for ec in n.ecs))


def evidence_text(neighbours: Sequence[Neighbour], settings: SearchSettings) -> str:
    """The evidence block of a user turn."""
    if not neighbours:
        return (f"Similar genes of known function: none found (MMseqs2 protein search of the reference set, "
                f"e-value <= {settings.max_evalue:g}).")
    lines = ["Similar genes of known function (MMseqs2 protein search of the reference set, best first):"]
    for i, n in enumerate(neighbours, 1):
        lines.append(f"{i}. EC {' and '.join(n.ecs)} ({n.identity:.0%} identity, e-value {n.evalue:.1g}): "
                     f"{n.description}")
    return "\n".join(lines)
