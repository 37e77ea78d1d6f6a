"""Benchmark data: records from genomes, UniRef-like clusters, splits, balancing, and the loader."""

from __future__ import annotations

from typing import Any

__all__ = ["load_benchmark"]


def __getattr__(name: str) -> Any:
    # Lazy: importing biotalk.data.<module> should not pay for `datasets`.
    if name == "load_benchmark":
        from biotalk.data.loader import load_benchmark

        return load_benchmark
    raise AttributeError(f"module 'biotalk.data' has no attribute {name!r}")
