"""scripts/table5.py end to end on the mini benchmark with a tiny random chat model (code paths only): every
(test set, inputs, shots) cell, baselines scored on exactly the records the cells saw, the leaky paper rows
labelled and alone carrying the paper's numbers, and a rerun that reads every answer from the cache."""

from __future__ import annotations

import json

import polars as pl
import pytest
from fixtures.scripts import load_script
from test_llm import tiny_chat  # noqa: F401 (a fixture)

from biotalk.baselines import homology_transfer
from biotalk.config import load_config
from biotalk.data import load_benchmark
from biotalk.data.identity import gene_ids, proteins
from biotalk.metrics import score_genes
from biotalk.reports import PAPER_TABLE5

table5 = load_script("scripts/table5.py")
CONFIG = table5.Path(__file__).resolve().parents[1] / "configs" / "llm" / "table5_mini.yaml"


@pytest.mark.slow
def test_table5_cells_baselines_and_labels(tiny_chat, mini_benchmark, tmp_path):  # noqa: F811
    overrides = [f"llm.data={mini_benchmark}", f"llm.model={tiny_chat}", "llm.generation.max_new_tokens=4",
                 "llm.dna_max_nt=40", f"llm.cache={tmp_path / 'cache.jsonl'}", "inputs=[dna+neighbours,paper]",
                 "limits.test1=3", "limits.test2=2", f"out={tmp_path / 'out'}"]
    result = table5.main(load_config(table5.Table5Config, CONFIG, overrides))
    cells, base = result["cells"], result["baselines"]
    assert [(c["split"], c["inputs"], c["shots"]) for c in cells] == [
        (s, i, k) for s in ("test1", "test2") for i in ("dna+neighbours", "paper") for k in (0, 3)]
    assert all(c["n"] == {"test1": 3, "test2": 2}[c["split"]] and c["generated"] == c["unique_prompts"] for c in cells)
    assert [c["examples_shown"] for c in cells if c["inputs"] == "paper"] == [0, 2, 0, 2]
    assert all(c["leaky"] == (c["inputs"] == "paper") for c in cells)

    # the baselines saw the LLM's records: recompute homology transfer on them independently
    data = load_benchmark(mini_benchmark, "III")
    for split in ("test1", "test2"):
        ids = pl.read_csv(tmp_path / "out" / "cells" / f"{split}-paper-0shot" / "predictions.tsv", separator="\t")["id"]
        rows = data[split].to_polars().filter(~pl.col("IsDuplicate")).unique("RecordId")
        rows = pl.DataFrame({"RecordId": ids}).join(rows, on="RecordId", how="left")
        train = data["train"].to_polars()
        predicted, _ = homology_transfer(proteins(rows), proteins(train), train["EC"], 1e-5, 1, 5.7)
        expected = score_genes(gene_ids(rows), rows["EC"], predicted)
        (row,) = [r for r in base if r["split"] == split and r["method"].startswith("homology")]
        assert {k: row[k] for k in ("hP", "hR", "hF", "n", "n_genes")} == {k: expected[k] for k in ("hP", "hR", "hF", "n", "n_genes")}

    markdown = (tmp_path / "out" / "table5.md").read_text()
    lines = [line for line in markdown.splitlines() if line.startswith("| Test-")]
    for line in lines[: len(cells)]:
        paper = [v for (s, k), v in PAPER_TABLE5.items() if f"{v[0]:.4f}" in line]
        assert ("(LEAKY)" in line) == bool(paper) == ("| paper" in line)
    assert "LEAKY: the query's own description" in markdown and "homology transfer" in markdown
    assert json.loads((tmp_path / "out" / "table5.json").read_text())["cells"] == json.loads(json.dumps(cells))

    again = table5.main(load_config(table5.Table5Config, CONFIG, overrides))
    assert all(c["generated"] == 0 for c in again["cells"])
    assert [c["hF"] for c in again["cells"]] == [c["hF"] for c in cells]
