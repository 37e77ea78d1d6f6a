"""Every markdown table and report of the project, with the paper's numbers printed beside ours.

Writers take what the entry points save (metric blocks, result rows, ``metrics.json``, build
``stats.json``), so a table can be rebuilt from the files alone. The paper's numbers come from other,
full-scale data and from metric code with known defects (REFERENCE.md sections 3-4): they stand in
columns or tables of their own, labelled not comparable, never mixed into ours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from biotalk.data.schema import BENCHMARKS, TEST_SPLITS
from biotalk.metrics import IDENTITY_BINS

PAPER_LABEL = "paper (different data, not comparable)"
PAPER_MODELS = ("LOLBERT", "DNABERT", "Nucleotide Transformer", "FinetunedLOLBERT")
# Table 2 (kNN hierarchical precision, class-token embeddings): benchmark -> k -> one value per PAPER_MODELS.
PAPER_TABLE2 = {
    "I": {1: (0.5103, 0.4143, 0.4419, 0.6564), 3: (0.5870, 0.4923, 0.5480, 0.7128), 5: (0.6258, 0.5368, 0.6027, 0.7382)},
    "II": {1: (0.2700, 0.2215, 0.2598, 0.4777), 3: (0.3461, 0.2887, 0.3424, 0.5608), 5: (0.3879, 0.3320, 0.3903, 0.6000)},
    "III": {1: (0.1332, 0.1168, 0.1553, 0.3329), 3: (0.2038, 0.1903, 0.2380, 0.4195), 5: (0.2416, 0.2321, 0.2816, 0.4635)},
    "IV": {1: (0.2746, 0.2098, 0.2293, 0.4751), 3: (0.3698, 0.3087, 0.2998, 0.5549), 5: (0.4222, 0.3628, 0.3439, 0.5893)},
}
# Table 3 (silhouette of class-token embeddings), one value per PAPER_MODELS.
PAPER_TABLE3 = {
    "I": (-0.2139, -0.3078, -0.2237, -0.1735), "II": (-0.0672, -0.1401, -0.0702, -0.0466),
    "III": (0.2623, 0.2009, 0.2461, 0.3060), "IV": (-0.1855, -0.2900, -0.2248, -0.0786),
}
# Table 4 (MLP on fine-tuned LOLBERT), hP/hR/hF; every hR is hP/4, the mark of its character-level metric.
PAPER_TABLE4 = {
    ("I", "test1"): (0.7512, 0.1878, 0.3004), ("I", "test2"): (0.4737, 0.1184, 0.1894),
    ("II", "test1"): (0.5389, 0.1347, 0.2155), ("II", "test2"): (0.3960, 0.0990, 0.1584),
    ("III", "test1"): (0.3097, 0.0774, 0.1239), ("III", "test2"): (0.2285, 0.0571, 0.0914),
    ("IV", "test1"): (0.2248, 0.0562, 0.0899), ("IV", "test2"): (0.2146, 0.0536, 0.0858),
}
# Table 5 (Llama 3, prompt with DNA and the description), hP/hR/hF by (test split, shots).
PAPER_TABLE5 = {
    ("test1", 0): (0.7429, 0.1689, 0.3016), ("test1", 3): (0.8508, 0.1702, 0.3243),
    ("test2", 0): (0.7264, 0.1579, 0.2976), ("test2", 3): (0.8338, 0.1634, 0.3135),
}
TEST_NAMES = {"test1": "Test-I", "test2": "Test-II"}


def fmt(x: float | None) -> str:
    return "n/a" if x is None or x != x else f"{x:.4f}"


def count(block: dict) -> str:
    """Records of a block, and its genes when it was scored per gene (``score_genes``)."""
    return f"{block['n']} ({block['n_genes']} genes)" if "n_genes" in block else str(block["n"])


def identity_cells(block: dict) -> list[str]:
    """hF and records of each identity bin of a block (``by_identity``); blank without one."""
    bins = block.get("by_identity")
    if bins is None:
        return [""] * len(IDENTITY_BINS)
    return [f"{fmt(b.get('hF'))} ({b['n']})" for b in (bins[name] for name in IDENTITY_BINS)]


def bin_label(name: str) -> str:
    """'<30' -> '<30 %'; 'no hit' as it is."""
    return name if name == IDENTITY_BINS[-1] else f"{name} %"


IDENTITY_HEAD = [f"hF {bin_label(name)}" for name in IDENTITY_BINS]
IDENTITY_NOTE = ("hF per bin of identity to the benchmark's training proteins (MMseqs2, 80 % coverage; "
                 "records per bin in brackets)")


def _identity_table(rows: list[dict], labels: list[str], label_cells: Callable[[dict], list[str]]) -> list[str]:
    """The by-identity companion of a table: one line per row whose block has ``by_identity``."""
    shown = [r for r in rows if "by_identity" in r]
    if not shown:
        return []
    head = labels + IDENTITY_HEAD
    return (["", IDENTITY_NOTE + ":", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            + ["| " + " | ".join(label_cells(r) + identity_cells(r)) + " |" for r in shown])


def block_line(block: dict) -> str:
    """One metric block (``biotalk.metrics.score_predictions``) as a line of a run's console summary."""
    line = (f"hP {block['hP']:.4f} hR {block['hR']:.4f} hF {block['hF']:.4f} accuracy {block['accuracy']:.4f} "
            f"coverage {block['coverage']:.3f} (n={block['n']}" + (f", genes={block['n_genes']})" if "n_genes" in block else ")"))
    if "by_identity" in block:
        cells = identity_cells(block)
        line += "; hF by identity to train: " + ", ".join(f"{bin_label(b)} {c}" for b, c in zip(IDENTITY_BINS, cells, strict=True))
    return line


def _paper_cell(values: tuple[float, float, float]) -> str:
    return "{:.4f} / {:.4f} / {:.4f}".format(*values)


def table1(stats: dict[str, dict[str, dict[str, int]]]) -> str:
    """Table 1 (records and classes per split) from a build's ``stats.json``."""
    head = ("| Dataset | Train records | Train classes | Valid records | Valid classes | Test-I records | Test-I classes "
            "| Test-II records | Test-II classes |")
    lines = [head, "|" + "---|" * 9]
    for bench in BENCHMARKS:  # the shared test sets are listed once, on the row of Benchmark-III
        name = f"Benchmark-{bench}"
        cells = [name]
        for split in ("Train", "Valid"):
            cells += [f"{stats[name][split]['records']:,}", f"{stats[name][split]['classes']:,}"]
        for test in TEST_SPLITS:
            cells += [f"{stats['Test'][test]['records']:,}", f"{stats['Test'][test]['classes']:,}"] if bench == "III" else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


KNN_IDENTITY_HEAD = [f"hP@1 {bin_label(name)}" for name in IDENTITY_BINS]
KNN_IDENTITY_NOTE = ("kNN hP at k=1 per bin of the query's identity to the benchmark's training proteins (MMseqs2, "
                     "80 % coverage; queries per bin in brackets)")
SINGLE_NEIGHBOUR = "single neighbour"


def _table2_who(r: dict) -> list[str]:
    """The encoder and pooling cells of a Table 2 row; a baseline row (``method``) names its method instead."""
    if "method" not in r:
        return [r["encoder"], r["pooling"]]
    detail = f" = {r['ec']}" if r.get("ec") else ""
    if r.get("max_evalue") is not None:
        detail = f", e <= {r['max_evalue']:g}, {r['coverage']:.0%} with a hit"
    return [r["method"] + detail, SINGLE_NEIGHBOUR]


def _knn_identity_table(rows: list[dict]) -> list[str]:
    """Table 2's by-identity companion at k=1: one line per row with ``hP_by_identity``."""
    shown = [r for r in rows if r.get("hP_by_identity")]
    if not shown:
        return []
    head = ["benchmark", "encoder", "pooling", *KNN_IDENTITY_HEAD]
    lines = ["", "### Table 2 by identity to training (k=1)", "", KNN_IDENTITY_NOTE + ".", "",
             "| " + " | ".join(head) + " |", "|---|---|---|" + "---:|" * len(IDENTITY_BINS)]
    for r in shown:
        cells = [f"{fmt(b['hP'])} ({b['n']})" for b in (r["hP_by_identity"][name] for name in IDENTITY_BINS)]
        lines.append("| " + " | ".join([r["benchmark"], *_table2_who(r), *cells]) + " |")
    return lines


def tables23(rows: list[dict], skipped: list[dict], settings: dict, baselines: Sequence[dict] = ()) -> str:
    """Tables 2 (kNN hP at each k) and 3 (silhouette) from ``eval_embeddings.py`` rows and its config dict;
    the ``baselines`` (rows with ``method``) follow each benchmark's encoder rows in Table 2 and its
    by-identity companion, and take no part in Table 3."""
    s = settings
    ks = [str(k) for k in s["ks"]]
    lines = [
        f"# Tables 2 and 3 on `{s['data']}`", "",
        f"Index `{s['index_split']}`, queries `{s['query_split']}`, metric `{s['metric']}`; silhouette on "
        f"`{s['silhouette_split']}` ({s['silhouette_metric']}, up to {s['silhouette_per_class']} per EC, seed {s['seed']}).",
        "", "## Table 2: kNN hierarchical precision", "",
        "| benchmark | encoder | pooling | " + " | ".join(f"k={k}" for k in ks) + " | queries | index |",
        "|---|---|---|" + "---:|" * (len(ks) + 2),
    ]
    benches = list(dict.fromkeys(r["benchmark"] for r in [*rows, *baselines]))
    table2 = [r for b in benches for r in [*rows, *baselines] if r["benchmark"] == b]
    for r in table2:
        hp = " | ".join(fmt(r["hP"][k]) for k in ks)
        lines.append(f"| {r['benchmark']} | {' | '.join(_table2_who(r))} | {hp} | {r['n_queries']} | {r['n_index']} |")
    if baselines:
        lines += ["", f"Baselines on the same queries, scored by the same metric with a {SINGLE_NEIGHBOUR} per query "
                  "(the same value at every k): the majority training EC, and the EC of the query protein's best "
                  "MMseqs2 hit among the training proteins (a query without a hit scores 0)."]
    lines += _knn_identity_table(table2)
    lines += ["", "## Table 3: silhouette", "", "| benchmark | encoder | pooling | silhouette | samples | classes | note |",
              "|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['benchmark']} | {r['encoder']} | {r['pooling']} | {fmt(r['silhouette'])} | "
                     f"{r['silhouette_samples']} | {r['silhouette_classes']} | {r['silhouette_note']} |")
    if skipped:
        lines += ["", "Skipped encoders:", ""] + [f"- `{e['encoder']}`: {e['reason']}" for e in skipped]
    shown = [b for b in s["benchmarks"] if b in PAPER_TABLE2]
    lines += ["", f"## Table 2, {PAPER_LABEL}", "", "CLS embeddings, raw-L2 faiss, the reference metric code.", "",
              "| benchmark | k | " + " | ".join(PAPER_MODELS) + " |", "|---|---|" + "---:|" * len(PAPER_MODELS)]
    for b in shown:
        for k, values in PAPER_TABLE2[b].items():
            lines.append(f"| {b} | {k} | " + " | ".join(fmt(v) for v in values) + " |")
    lines += ["", f"## Table 3, {PAPER_LABEL}", "", "| benchmark | " + " | ".join(PAPER_MODELS) + " |",
              "|---|" + "---:|" * len(PAPER_MODELS)]
    for b in shown:
        lines.append(f"| {b} | " + " | ".join(fmt(v) for v in PAPER_TABLE3[b]) + " |")
    return "\n".join(lines) + "\n"


def table4(rows: list[dict]) -> str:
    """Table 4 from ``table4.py`` rows (a metric block plus benchmark, split, method, encoder); the paper's
    hP / hR / hF on the first row of each benchmark and test split."""
    head = ["benchmark", "test", "method", "encoder", "hP", "hR", "hF", "accuracy", "coverage", "n", PAPER_LABEL]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    seen = set()
    for r in rows:
        group = (r["benchmark"], r["split"])
        paper = "" if group in seen else _paper_cell(PAPER_TABLE4[group])
        seen.add(group)
        lines.append(f"| {r['benchmark']} | {TEST_NAMES[r['split']]} | {r['method']} | "
                     f"{r['encoder'] or ''} | {r['hP']:.4f} | {r['hR']:.4f} | {r['hF']:.4f} | "
                     f"{r['accuracy']:.4f} | {r['coverage']:.3f} | {count(r)} | {paper} |")
    lines += _identity_table(rows, ["benchmark", "test", "method", "encoder"],
                             lambda r: [r["benchmark"], TEST_NAMES[r["split"]], r["method"], r["encoder"] or ""])
    return "\n".join(lines) + "\n"


def clip_summary(metrics: dict, baselines: list[dict] = ()) -> str:
    """A small markdown table of the scores in a ``train_clip.py`` metrics.json, with the ``baselines`` (Table 4
    rows of the same benchmark: ``split``, ``method``, a metric block) on the same test splits beside them."""
    rows = ["| metric | Test-I | Test-II |", "|---|---|---|"]
    blocks = [(label, [metrics[key][t] for t in TEST_SPLITS]) for key, label in (
        ("zero_shot", "zero-shot hF (nearest EC)"), ("zero_shot_hierarchical", "zero-shot hF (hierarchical)"))
        if key in metrics]  # fmt: skip
    methods = dict.fromkeys(r["method"] for r in baselines)
    for method in methods:
        by_split = {r["split"]: r for r in baselines if r["method"] == method}
        if all(t in by_split for t in TEST_SPLITS):
            blocks.append((f"{method}, same split", [by_split[t] for t in TEST_SPLITS]))
    rows += [f"| {label} | {tests[0]['hF']:.4f} | {tests[1]['hF']:.4f} |" for label, tests in blocks]
    knn = metrics.get("knn", {})
    if knn:
        rows.append(f"| shared-space DNA kNN hP, k=1 | {knn['test1']['k=1']:.4f} | {knn['test2']['k=1']:.4f} |")
    retrieval = metrics.get("retrieval", {})
    for direction in ("dna_to_text", "text_to_dna"):
        if direction in retrieval:
            r = retrieval[direction]
            rows.append(f"| {direction.replace('_', ' ')} R@1/5/10 | {r['R@1']:.3f} / {r['R@5']:.3f} / {r['R@10']:.3f} | |")
    strata = [{**block, "label": label, "split": t}
              for label, tests in blocks for t, block in zip(TEST_SPLITS, tests, strict=True)]
    rows += _identity_table(strata, ["metric", "test"], lambda r: [r["label"], TEST_NAMES[r["split"]]])
    return "\n".join(rows)
