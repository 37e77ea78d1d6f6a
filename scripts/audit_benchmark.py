"""Audit a benchmark folder (ours or the published layout) for leaks between training and test data.

    python scripts/audit_benchmark.py DIR [search=true] [identity=0.5] [out=report.json]
    python scripts/audit_benchmark.py data=DIR --search          (the same; DIR and --search also accepted)

Checks identical DNA or protein across splits, shared UniRef100/90/50 clusters between any test record and
any Train/Valid record of any benchmark (and Valid against its own Train), Test-II (and valid2) ECs in
training, EC numbers in the masked model-input text, unmarked duplicates, and with ``search=true`` an
MMseqs2 search of test proteins against Train/Valid proteins (``biotalk.data.audit``). The cluster level
that counts as a leak is the build's ``test_identity`` (build.json) or ``identity=``. Prints a report
card, one line per check; exits 1 on any leak, 0 when clean, 2 on a bad argument.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from biotalk.cli import UsageError, run
from biotalk.data.audit import audit, report_card
from biotalk.io import write_json


@dataclass
class Config:
    data: Path = Path("out/mini-benchmark")  # the benchmark folder
    identity: Literal[0.5, 0.9, 1.0] | None = None  # leak level; None: build.json's test_identity
    search: bool = False  # also run our own MMseqs2 search of test proteins against Train/Valid proteins
    search_identity: float = 0.5
    coverage: float = 0.8  # of both proteins, as the clusterer
    threads: int = 2
    out: Path | None = None  # JSON report


def main(cfg: Config) -> None:
    if not 0 < cfg.search_identity <= 1 or not 0 < cfg.coverage <= 1:
        raise UsageError("search_identity and coverage: expected fractions in (0, 1]")
    result = audit(cfg.data, cfg.identity, cfg.search, cfg.search_identity, cfg.coverage, cfg.threads)
    print(report_card(result))
    if cfg.out:
        write_json(cfg.out, result.to_dict())
    if result.leaks:
        raise SystemExit(1)


def issue_spelling(argv: list[str]) -> list[str]:
    """``DIR`` and ``--search`` (the spelling of the issue) as ``data=DIR`` and ``search=true``."""
    out = []
    for i, arg in enumerate(argv):
        bare = "=" not in arg and not arg.startswith("-") and (i == 0 or argv[i - 1] != "--config")
        out.append("search=true" if arg == "--search" else f"data={arg}" if bare else arg)
    return out


if __name__ == "__main__":
    run(main, Config, __doc__, issue_spelling(sys.argv[1:]))
