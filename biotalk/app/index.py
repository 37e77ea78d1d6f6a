"""A gene index on disk for the web app: the genes' shared-space vectors in faiss, their table in Parquet,
and the zero-shot EC candidates (vectors, names, descriptions) so the app needs no ENZYME files.

    DIR/index.faiss  DIR/genes.parquet  DIR/candidates.parquet  DIR/candidates.npy  DIR/names.json  DIR/index.json

``index.json`` is written last (the directory is replaced atomically). It records a key of everything the
index depends on (model files, text tower, source files, settings) so a rebuild with the same inputs is
skipped, and ``open_index`` refuses a stale index (another model, changed source genes, files that do not
match each other) with a message naming the command that rebuilds it, instead of answering from it.
Search is exact inner product on the unit vectors (cosine) below ``ivf_min`` genes, IVF above it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import polars as pl

from biotalk.cache import cache_key, digest_strings, file_digest
from biotalk.io import atomic_dir
from biotalk.models.encoders import directory_fingerprint
from biotalk.retrieval import model_fingerprint
from biotalk.rng import stream

INDEX_VERSION = 1
META, VECTORS, GENES, CANDIDATES, CANDIDATE_VECTORS, NAMES = (
    "index.json", "index.faiss", "genes.parquet", "candidates.parquet", "candidates.npy", "names.json")
INDEX_COMMAND = "python scripts/index_genes.py --config configs/app/index_mini.yaml"
PCA_SAMPLE = 100_000  # genes the 2-D map's PCA is fitted on (all genes are projected)


class MissingIndexError(FileNotFoundError):
    """No complete index in the folder."""


class StaleIndexError(ValueError):
    """An index built from other inputs than the ones given: never answered from."""


def model_key(model_dir: str | Path) -> str:
    """Content hash of a saved BioTalk-CLIP: heads, DNA tower and text tower (the candidates are text vectors)."""
    model_dir = Path(model_dir)
    text = model_dir / "text_encoder"
    return cache_key(model=model_fingerprint(model_dir), text=directory_fingerprint(text) if text.is_dir() else None)


def genes_digest(genes: pl.DataFrame) -> str:
    """Content key of the indexed genes: ids and DNA, in index order."""
    return digest_strings(f"{g}\t{s}" for g, s in zip(genes["GeneId"], genes["Sequence"], strict=True))


def source_files(paths: list[Path]) -> dict[str, str]:
    """sha256 of each source file, by path: checked again when the index is opened."""
    return {str(p): file_digest(p) for p in paths}


def build_faiss(vectors: np.ndarray, ivf_min: int = 1_000_000, nlist: int = 0, nprobe: int = 32,
                seed: int = 0) -> faiss.Index:  # fmt: skip
    """Inner-product index over unit vectors: exact (``IndexFlatIP``) below ``ivf_min`` rows, else
    ``IndexIVFFlat`` with ``nlist`` lists (0: 4 sqrt(n)) trained on a seeded sample of 64 per list, searched
    with ``nprobe`` lists."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    if n < ivf_min:
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = nlist or int(4 * math.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.sort(stream(seed, "ivf").choice(n, min(n, 64 * nlist), replace=False))
        index.train(vectors[sample])
        index.nprobe = min(nprobe, nlist)
    for start in range(0, n, 65536):
        index.add(vectors[start : start + 65536])
    return index


def fit_map(vectors: np.ndarray, seed: int = 0) -> dict:
    """A 2-D PCA of the gene vectors (fitted on at most ``PCA_SAMPLE`` of them): mean and components."""
    from sklearn.decomposition import PCA

    rows = np.arange(len(vectors))
    if len(rows) > PCA_SAMPLE:
        rows = np.sort(stream(seed, "pca").choice(len(rows), PCA_SAMPLE, replace=False))
    pca = PCA(n_components=2, random_state=seed).fit(vectors[rows])
    return {"mean": pca.mean_.tolist(), "components": pca.components_.tolist()}


@dataclass
class PersistedIndex:
    """An opened index: search the genes, project vectors onto the map, read the candidates."""

    path: Path
    meta: dict
    index: faiss.Index
    genes: pl.DataFrame
    candidates: pl.DataFrame  # EC, Name, Text (the template-0 description)
    candidate_vectors: np.ndarray  # unit vectors, one per candidate EC
    names: dict[str, str]  # ENZYME names of ECs and of class prefixes ("1", "1.11", "1.11.1")

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) of the ``k`` nearest genes of each vector, best first; rows -1 past the end."""
        query = np.ascontiguousarray(vectors, dtype=np.float32)
        faiss.normalize_L2(query)
        return self.index.search(query, min(k, self.index.ntotal))

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Map coordinates (N, 2) of shared-space vectors, with the genes' PCA."""
        pca = self.meta["pca"]
        return (np.asarray(vectors) - np.asarray(pca["mean"])) @ np.asarray(pca["components"]).T


def write_index(out: Path, vectors: np.ndarray, genes: pl.DataFrame, candidates: pl.DataFrame,
                candidate_vectors: np.ndarray, names: dict[str, str], meta: dict, ivf_min: int, nlist: int,
                nprobe: int, seed: int = 0) -> dict:  # fmt: skip
    """Write the index folder atomically (``index.json`` last) and return its metadata."""
    if len(vectors) != len(genes) or not len(genes):
        raise ValueError(f"{len(vectors)} vectors for {len(genes)} genes: need one per gene, at least one")
    index = build_faiss(vectors, ivf_min, nlist, nprobe, seed)
    pca = fit_map(vectors, seed)
    xy = (vectors - np.asarray(pca["mean"])) @ np.asarray(pca["components"]).T
    genes = genes.with_columns(pl.Series("X", xy[:, 0], pl.Float32), pl.Series("Y", xy[:, 1], pl.Float32))
    meta = {**meta, "version": INDEX_VERSION, "n": len(genes), "dim": int(vectors.shape[1]),
            "kind": "ivf" if isinstance(index, faiss.IndexIVF) else "flat",
            "nlist": int(getattr(index, "nlist", 0)), "nprobe": int(getattr(index, "nprobe", 0)),
            "genes": genes_digest(genes), "candidates": len(candidates), "pca": pca}  # fmt: skip
    with atomic_dir(out) as tmp:
        faiss.write_index(index, str(tmp / VECTORS))
        genes.write_parquet(tmp / GENES)
        candidates.write_parquet(tmp / CANDIDATES)
        np.save(tmp / CANDIDATE_VECTORS, np.asarray(candidate_vectors, dtype=np.float32))
        (tmp / NAMES).write_text(json.dumps(names, ensure_ascii=False))
        (tmp / META).write_text(json.dumps(meta, indent=1))
    return meta


def read_meta(path: Path) -> dict:
    """The index's ``index.json``; MissingIndexError naming the build command when there is none."""
    meta_file = Path(path) / META
    if not meta_file.is_file():
        raise MissingIndexError(f"no gene index in {path}: build it with {INDEX_COMMAND} out={path}")
    return json.loads(meta_file.read_text())


def _stale(path: Path, why: str) -> StaleIndexError:
    return StaleIndexError(f"gene index {path} is stale: {why}; rebuild it with {INDEX_COMMAND} out={path}")


def open_index(path: str | Path, model_dir: str | Path, nprobe: int = 0, check_source: bool = True) -> PersistedIndex:
    """Open and check an index for ``model_dir``: MissingIndexError, or StaleIndexError when it was built with
    another model, its source genes changed since (``check_source``), or its files disagree."""
    path = Path(path)
    meta = read_meta(path)
    if meta.get("version") != INDEX_VERSION:
        raise _stale(path, f"format version {meta.get('version')}, this code reads {INDEX_VERSION}")
    if meta.get("model_key") != model_key(model_dir):
        raise _stale(path, f"built with another model ({meta.get('model')}), not {model_dir}")
    if check_source:
        for file, sha in meta.get("source", {}).get("files", {}).items():
            if Path(file).is_file() and file_digest(file) != sha:
                raise _stale(path, f"its genes changed: {file} differs from when it was built")
    try:
        index = faiss.read_index(str(path / VECTORS))
        genes = pl.read_parquet(path / GENES)
        candidates = pl.read_parquet(path / CANDIDATES)
        candidate_vectors = np.load(path / CANDIDATE_VECTORS)
        names = json.loads((path / NAMES).read_text())
    except (RuntimeError, OSError, ValueError, pl.exceptions.PolarsError) as err:  # a file missing or damaged
        raise _stale(path, f"its files are incomplete ({type(err).__name__}: {err})") from None
    if index.ntotal != len(genes) or genes_digest(genes) != meta.get("genes"):
        raise _stale(path, f"{VECTORS} and {GENES} do not match {META}")
    if len(candidates) != len(candidate_vectors) or candidate_vectors.shape[1:] != (index.d,):
        raise _stale(path, f"{CANDIDATES} and {CANDIDATE_VECTORS} do not match")
    if nprobe and isinstance(index, faiss.IndexIVF):
        index.nprobe = min(nprobe, index.nlist)
    return PersistedIndex(path, meta, index, genes, candidates, candidate_vectors, names)
