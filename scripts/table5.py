"""Table 5: a chat LLM's EC predictions, zero- and few-shot, in every input mode, on Test-I and Test-II, beside
the homology-transfer and majority-class baselines of the same records and the paper's (leaky) numbers.

    python scripts/table5.py --config configs/llm/table5_mini.yaml [limits.test2=120 llm.backend=openai ...]

Each cell is one ``prompt_llm.py`` run (the ``llm`` section, with split, shots and inputs set per cell) in
``out/cells/<split>-<inputs>-<shots>shot``; the model is loaded once, answers come from the shared cache when
present, so a killed table resumes. Rows: every (test set, inputs, shots) cell, then the baselines scored on
the same records (``scripts/table4.py``'s ``baseline_rows``); hF per identity bin below. The ``paper`` rows
are LEAKY (the query's description, with its EC, is in the prompt), as the paper's numbers were, which were
also computed on characters of strings, on other data: they stand in their own labelled column.
Writes ``out/table5.md`` and ``out/table5.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # prompt_llm.py lives at the repository root
sys.path.insert(0, str(Path(__file__).resolve().parent))  # table4.py beside this file

from table4 import HomologyConfig, Table4Config, baseline_rows, gene_scorer  # noqa: E402

from biotalk.cli import run  # noqa: E402
from biotalk.config import to_dict  # noqa: E402
from biotalk.data import load_benchmark  # noqa: E402
from biotalk.io import write_json, write_text  # noqa: E402
from biotalk.llm import BackendError, resolve_model  # noqa: E402
from biotalk.metrics import IDENTITY_BINS  # noqa: E402
from biotalk.reports import PAPER_LABEL, PAPER_TABLE5, TEST_NAMES, count, fmt, identity_cells  # noqa: E402
from prompt_llm import COLUMNS, LEAK_LABEL, LLMConfig, load_backend, query_identity, select_queries  # noqa: E402
from prompt_llm import main as run_cell  # noqa: E402

InputMode = Literal["dna", "dna+neighbours", "paper"]


@dataclass
class Table5Config:
    llm: LLMConfig = field(default_factory=LLMConfig)  # every cell's settings; split, shots, inputs, limit, out set per cell
    splits: list[Literal["test1", "test2"]] = field(default_factory=lambda: ["test1", "test2"])
    shots: list[int] = field(default_factory=lambda: [0, 3])
    inputs: list[InputMode] = field(default_factory=lambda: ["dna", "dna+neighbours", "paper"])
    limits: dict[str, int] = field(default_factory=lambda: {"test1": 0, "test2": 0})  # records per test set; 0 = all
    homology: HomologyConfig = field(default_factory=HomologyConfig)  # the baseline (as Table 4's)
    out: Path = Path("runs/table5/mini")


def baselines(cfg: Table5Config) -> list[dict]:
    """Majority class and homology transfer, scored on exactly the records the LLM cells saw."""
    llm = cfg.llm
    data = load_benchmark(llm.data, llm.benchmark)
    subset = {"train": data["train"].to_polars()}
    identity = {}
    for split in ("test1", "test2"):
        queries = select_queries(data[split].select_columns(COLUMNS), cfg.limits.get(split, 0), llm.seed)
        subset[split] = pl.DataFrame(queries)
        identity[split] = query_identity(dataclasses.replace(llm, split=split), data, queries)
    rows = baseline_rows(subset, Table4Config(data=llm.data, homology=cfg.homology), gene_scorer(subset, identity))
    return [{**r, "inputs": "", "shots": None} for r in rows if r["split"] in cfg.splits]


def cell_label(m: dict) -> str:
    shown = f", {m['examples_shown']} examples shown" if m["examples_shown"] != m["shots"] else ""
    how = f" ({m['examples']})" if m["shots"] and m["examples"] != "random" else ""
    return f"{m['shots']}-shot{how}{shown}"


def table5_markdown(cells: list[dict], base: list[dict]) -> str:
    """Our cells, then the baselines; the paper's hP / hR / hF on the paper-mode row of its (set, shots)."""
    head = ["set", "inputs", "prompting", "hP / hR / hF", "exact", "parse rate", "DNA cut", "n", PAPER_LABEL]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in cells:
        paper = PAPER_TABLE5.get((m["split"], m["shots"])) if m["inputs"] == "paper" else None
        inputs = f"{m['inputs']} (LEAKY)" if m["leaky"] else m["inputs"]
        inputs += ", candidates only" if m["choice"] == "candidates" else ""
        lines.append(f"| {TEST_NAMES[m['split']]} | {inputs} | {cell_label(m)} | {fmt(m['hP'])} / {fmt(m['hR'])} / "
                     f"{fmt(m['hF'])} | {m['accuracy']:.4f} | {m['parse_rate']:.2f} | {m['truncated']:.2f} | {count(m)} | "
                     + ("{:.4f} / {:.4f} / {:.4f}".format(*paper) if paper else "") + " |")
    for r in base:
        lines.append(f"| {TEST_NAMES[r['split']]} | baseline | {r['method']} | {fmt(r['hP'])} / {fmt(r['hR'])} / "
                     f"{fmt(r['hF'])} | {r['accuracy']:.4f} | {r['coverage']:.2f} | | {count(r)} | |")
    ident = ["set", "row"] + [f"hF {b}" for b in IDENTITY_BINS]
    lines += ["", "hF per bin of identity to the benchmark's training proteins (MMseqs2, 80 % coverage; records per "
              "bin in brackets):", "", "| " + " | ".join(ident) + " |", "|" + "---|" * len(ident)]
    for r in [*cells, *base]:
        name = f"{r['inputs']} {cell_label(r)}" if r["inputs"] else r["method"]
        lines.append(f"| {TEST_NAMES[r['split']]} | {name} | " + " | ".join(identity_cells(r)) + " |")
    lines += ["", f"paper rows: {LEAK_LABEL}. 'parse rate': answers holding an EC number (baselines: coverage); "
              "'DNA cut': share of queries whose gene was shortened to fit; n: records (genes)."]
    return "\n".join(lines) + "\n"


def main(cfg: Table5Config) -> dict:
    load_benchmark(cfg.llm.data, cfg.llm.benchmark)  # a missing benchmark or model fails before the model loads
    if cfg.llm.backend == "local":
        resolve_model(cfg.llm.model)
    backend = load_backend(cfg.llm)
    cells, seconds = [], {}
    for split in cfg.splits:
        for inputs in cfg.inputs:
            for shots in cfg.shots:
                name = f"{split}-{inputs.replace('+', '-')}-{shots}shot"
                cell = dataclasses.replace(cfg.llm, split=split, shots=shots, inputs=inputs,
                                           limit=cfg.limits.get(split, 0), out=str(cfg.out / "cells" / name))  # fmt: skip
                start = time.time()
                cells.append(run_cell(cell, backend))
                seconds[name] = round(time.time() - start, 1)
    base = baselines(cfg)
    result = {"config": to_dict(cfg), "cells": cells, "baselines": base, "seconds": seconds,
              "paper": {f"{s}/{k}": v for (s, k), v in PAPER_TABLE5.items()}}  # fmt: skip
    write_json(cfg.out / "table5.json", result)
    write_text(cfg.out / "table5.md", table5_markdown(cells, base))
    print(table5_markdown(cells, base))
    return result


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        run(main, Table5Config, __doc__)
    except BackendError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        raise SystemExit(1) from None
