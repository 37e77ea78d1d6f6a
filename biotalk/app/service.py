"""The queries the app answers, on a loaded model and an opened index, with the input checks in front of them.

- text -> genes: the query's shared-space vector against the gene index, one row per gene with all its ECs;
- DNA -> function: each sequence (pasted, or the records of a FASTA) against every candidate EC's description:
  the nearest descriptions, and the EC named by hierarchical decoding (``biotalk.hierarchy``, the same code
  and the same ``tau`` as the zero-shot evaluation) with its confidence, the summed probability of that node;
- the 2-D map of the indexed genes (PCA) coloured by EC class.
Bad input raises ``BadInput`` with the HTTP status the API answers with.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from urllib.parse import quote

import numpy as np
import torch

from biotalk.app.index import PersistedIndex
from biotalk.ec import LEVELS, ec_order_key, parse_ec
from biotalk.hierarchy import threshold
from biotalk.models.clip import BioTalkClipModel
from biotalk.rng import stream

DNA_RE = re.compile(r"[^ACGTUNRYKMSWBDHV]")  # IUPAC nucleotide codes; U read as T
LEVEL_NAMES = ("class", "subclass", "sub-subclass", "EC")


class BadInput(ValueError):
    """A request the app refuses, with the status it answers: 400 malformed, 413 too large, 404 not found,
    409 stale index."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Limits:
    """What one request may ask for; above it the API answers 413 (or 400) and the page says why."""

    max_query_chars: int = 1_000
    max_sequence_nt: int = 100_000
    max_records: int = 100
    max_body_bytes: int = 2_000_000
    max_k: int = 50

    def to_dict(self) -> dict:
        return asdict(self)


def check_query(query: object, limits: Limits) -> str:
    """A text query: a non-empty string of at most ``max_query_chars`` characters."""
    if not isinstance(query, str) or not query.strip():
        raise BadInput("empty query: describe a function, e.g. 'breaks down hydrogen peroxide'")
    if len(query) > limits.max_query_chars:
        raise BadInput(f"query is {len(query):,} characters; at most {limits.max_query_chars:,}", 413)
    return query.strip()


def check_k(k: object, limits: Limits, default: int) -> int:
    if k is None:
        return min(default, limits.max_k)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= limits.max_k:
        raise BadInput(f"k must be an integer from 1 to {limits.max_k}, got {k!r}")
    return k


def parse_dna(text: object, limits: Limits) -> list[tuple[str, str]]:
    """(id, sequence) of pasted DNA: one bare sequence (id 'query') or FASTA records. Whitespace is ignored,
    case too; U reads as T. Refused: no sequence, an empty record, letters that are not IUPAC nucleotides
    (a protein, a typo), more than ``max_records`` records or a record over ``max_sequence_nt``."""
    if not isinstance(text, str) or not text.strip():
        raise BadInput("empty DNA input: paste a gene's DNA, or FASTA records")
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if text.startswith(">"):
        chunks = text[1:].split("\n>")
        if len(chunks) > limits.max_records:
            raise BadInput(f"FASTA has {len(chunks):,} records; at most {limits.max_records:,} per request", 413)
        records = [(c.split("\n", 1) + [""])[:2] for c in chunks]
        records = [(head.split()[0] if head.split() else f"record {i + 1}", body)
                   for i, (head, body) in enumerate(records)]  # fmt: skip
    elif "\n>" in text:
        raise BadInput("text before the first FASTA header: start the input with '>' or paste one sequence")
    else:
        records = [("query", text)]
    out = []
    for name, body in records:
        seq = "".join(body.split()).upper().replace("U", "T")
        if not seq:
            raise BadInput(f"record {name!r} has no sequence")
        if len(seq) > limits.max_sequence_nt:
            raise BadInput(f"record {name!r} is {len(seq):,} nt; at most {limits.max_sequence_nt:,} per sequence", 413)
        bad = sorted(set(DNA_RE.findall(seq)))
        if bad:
            raise BadInput(f"record {name!r} has letters that are not DNA: {' '.join(bad[:10])} "
                           "(a protein sequence? paste the gene's nucleotides)")
        out.append((name, seq))
    return out


class CandidateHierarchy:
    """``biotalk.hierarchy.hierarchy_scores`` for a fixed candidate list, with the EC order and the prefix
    groups computed once instead of per call (150 ms for 6,239 ECs on the development machine): the same
    sums in the same order, so the same nodes and masses. Also the masses of every node, for the path of a
    prediction."""

    def __init__(self, ecs: list[str]) -> None:
        self.order = np.array(sorted(range(len(ecs)), key=lambda i: ec_order_key(ecs[i])), dtype=np.int64)
        levels = [parse_ec(ecs[i]).levels for i in self.order]
        self.starts, self.names, self.parents = [], [], []
        for depth in range(1, LEVELS + 1):
            prefixes = [lv[:depth] for lv in levels]
            starts = [i for i in range(len(prefixes)) if i == 0 or prefixes[i] != prefixes[i - 1]]
            self.starts.append(np.array(starts))
            self.names.append(np.array([".".join(prefixes[i] + ("-",) * (LEVELS - depth)) for i in starts], dtype=object))
            if depth > 1:  # the group (at depth - 1) holding each group's first member
                self.parents.append(np.searchsorted(self.starts[-2], self.starts[-1], side="right") - 1)

    def masses(self, probs: np.ndarray) -> list[np.ndarray]:
        """Summed probability of every node, one (N, nodes at depth) array per depth."""
        p = np.asarray(probs, dtype=np.float64)[:, self.order]
        return [np.add.reduceat(p, starts, axis=1) for starts in self.starts]

    def scores(self, masses: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(nodes, best_p) as ``hierarchy_scores`` returns them."""
        best = [m.argmax(1) for m in masses]
        nodes = np.stack([self.names[d][b] for d, b in enumerate(best)], axis=1)
        best_p = np.stack([m[np.arange(len(m)), b] for m, b in zip(masses, best, strict=True)], axis=1)
        return nodes, best_p

    def path(self, masses: list[np.ndarray], row: int, node: str | None) -> list[tuple[str, float]]:
        """(node, mass) from the class down to depth 4 through ``node`` (None: from the root): its ancestors,
        then below it the most probable child at each depth."""
        known = parse_ec(node).levels if node else ()
        out, group = [], -1
        for d in range(LEVELS):
            candidates = np.arange(len(self.names[d])) if d == 0 else np.flatnonzero(self.parents[d - 1] == group)
            if d < len(known):
                target = ".".join(known[: d + 1] + ("-",) * (LEVELS - d - 1))
                group = int(candidates[self.names[d][candidates] == target][0])
            else:
                group = int(candidates[masses[d][row, candidates].argmax()])
            out.append((self.names[d][group], float(masses[d][row, group])))
        return out


class GeneSearch:
    """Answers queries on one model and one index; ``tau`` is the hierarchical decoding threshold."""

    def __init__(self, model: BioTalkClipModel, index: PersistedIndex, tau: float, tau_from: str) -> None:
        self.model, self.index, self.tau, self.tau_from = model.eval(), index, tau, tau_from
        self.scale = float(model.scale().item())
        self.candidates = torch.from_numpy(index.candidate_vectors)
        self.ecs = index.candidates["EC"].to_list()
        self.hierarchy = CandidateHierarchy(self.ecs)
        self.texts = index.candidates["Text"].to_list()
        self.genes = index.genes
        self.rows = {g: i for i, g in enumerate(self.genes["GeneId"])}

    def _name(self, node: str | None) -> str:
        return self.index.names.get(node, "") if node else ""

    def gene_hits(self, scores: np.ndarray, rows: np.ndarray) -> list[dict]:
        """One dict per gene hit, best first (rows -1, past the index's end, dropped)."""
        hits = []
        for score, row in zip(scores, rows, strict=True):
            if row < 0:
                continue
            g = self.genes.row(int(row), named=True)
            hits.append({
                "rank": len(hits) + 1, "gene_id": g["GeneId"], "score": round(float(score), 4),
                "ecs": [{"ec": ec, "name": self._name(ec)} for ec in g["ECs"]], "organism": g.get("Organism") or "",
                "description": g.get("Description") or "", "splits": g.get("Splits") or [],
                "length": len(g["Sequence"]), "x": g["X"], "y": g["Y"],
                "fasta_url": f"/api/fasta?gene={quote(g['GeneId'], safe='')}",
            })  # fmt: skip
        return hits

    @torch.no_grad()
    def text(self, query: str, k: int) -> dict:
        """The ``k`` genes nearest to a text query."""
        vector = self.model.get_text_features([query]).numpy()
        scores, rows = self.index.search(vector, k)
        return {"query": query, "genes": self.gene_hits(scores[0], rows[0])}

    @torch.no_grad()
    def dna(self, records: list[tuple[str, str]], k: int) -> dict:
        """Per sequence: the hierarchical prediction, the ``k`` nearest EC descriptions, the ``k`` nearest genes."""
        vectors = self.model.get_dna_features([s for _, s in records]).numpy()
        sims = torch.from_numpy(vectors) @ self.candidates.t()
        probs = torch.softmax(self.scale * sims, dim=1).numpy()
        masses = self.hierarchy.masses(probs)
        preds, conf = threshold(*self.hierarchy.scores(masses), self.tau)
        gene_scores, gene_rows = self.index.search(vectors, k)
        xy = self.index.project(vectors)
        top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        out = []
        for i, (name, seq) in enumerate(records):
            depth = len(parse_ec(preds[i]).levels) if preds[i] else 0
            levels = [{"level": d + 1, "rank": LEVEL_NAMES[d], "node": node, "name": self._name(node),
                       "p": round(p, 4), "predicted": d < depth}
                      for d, (node, p) in enumerate(self.hierarchy.path(masses, i, preds[i]))]  # fmt: skip
            out.append({
                "id": name, "length": len(seq), "x": float(xy[i, 0]), "y": float(xy[i, 1]),
                "prediction": {"ec": preds[i], "name": self._name(preds[i]),
                               "confidence": None if preds[i] is None else round(float(conf[i]), 4),
                               "tau": self.tau, "tau_from": self.tau_from, "levels": levels},
                "descriptions": [{"ec": self.ecs[j], "name": self._name(self.ecs[j]), "text": self.texts[j],
                                  "score": round(float(sims[i, j]), 4), "p": round(float(probs[i, j]), 4)}
                                 for j in top[i]],
                "genes": self.gene_hits(gene_scores[i], gene_rows[i]),
            })  # fmt: skip
        return {"records": out}

    def fasta(self, gene_id: str) -> str:
        """The gene's DNA as FASTA (60 nt a line); 404 for an id not in the index."""
        row = self.rows.get(gene_id)
        if row is None:
            raise BadInput(f"no gene {gene_id!r} in the index", 404)
        g = self.genes.row(row, named=True)
        head = " ".join(x for x in (g["GeneId"], " ".join(f"EC {ec}" for ec in g["ECs"]),
                                    f"[{g['Organism']}]" if g.get("Organism") else "") if x)  # fmt: skip
        seq = g["Sequence"]
        return f">{head}\n" + "".join(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))

    def map(self, max_points: int) -> dict:
        """Map coordinates of at most ``max_points`` genes (a seeded sample beyond), coloured by EC class
        (the first EC's first level; '' for a gene without EC)."""
        n = len(self.genes)
        rows = np.arange(n) if n <= max_points else np.sort(stream(0, "map").choice(n, max_points, replace=False))
        sub = self.genes[rows]
        classes = [ecs[0].split(".")[0] if len(ecs) else "" for ecs in sub["ECs"]]
        names = {c: self._name(f"{c}.-.-.-") if c else "no EC" for c in sorted(set(classes))}
        return {"n": n, "shown": len(rows), "x": sub["X"].round(4).to_list(), "y": sub["Y"].round(4).to_list(),
                "ec_class": classes, "gene_id": sub["GeneId"].to_list(), "classes": names}  # fmt: skip
