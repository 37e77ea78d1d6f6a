"""Short markdown summaries of result files, shared by the demo and the reproduction script."""

from __future__ import annotations


def clip_summary(metrics: dict) -> str:
    """A small markdown table of the scores in a ``train_clip.py`` metrics.json."""
    rows = ["| metric | Test-I | Test-II |", "|---|---|---|"]
    for key, label in (("zero_shot", "zero-shot hF (nearest EC)"), ("zero_shot_hierarchical", "zero-shot hF (hierarchical)")):
        if key in metrics:
            rows.append(f"| {label} | {metrics[key]['test1']['hF']:.4f} | {metrics[key]['test2']['hF']:.4f} |")
    knn = metrics.get("knn", {})
    if knn:
        rows.append(f"| DNA-tower kNN hP, k=1 | {knn['test1']['k=1']:.4f} | {knn['test2']['k=1']:.4f} |")
    retrieval = metrics.get("retrieval", {})
    for direction in ("dna_to_text", "text_to_dna"):
        if direction in retrieval:
            r = retrieval[direction]
            rows.append(f"| {direction.replace('_', ' ')} R@1/5/10 | {r['R@1']:.3f} / {r['R@5']:.3f} / {r['R@10']:.3f} | |")
    return "\n".join(rows)
