"""Text -> gene retrieval (biotalk.retrieval) on the real mini benchmark with a small CLIP model
(k-mer spectrum tower, real MiniLM text tower, random heads: code paths only, no reported numbers)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from biotalk.data import load_benchmark
from biotalk.models.clip import build_clip_model
from biotalk.retrieval import gene_table, load_gene_index, search

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = build_clip_model("kmer:3", projection_dim=16, dna_head="mlp", head_hidden=32, window_nt=300)
    path = tmp_path_factory.mktemp("clip") / "model"
    model.save_pretrained(path)
    return model, path


@pytest.fixture(scope="module")
def genes(mini_benchmark):
    df = load_benchmark(mini_benchmark, benchmark="I")["test1"].to_polars()
    return df.select("RecordId", "EC", "Organism", "Sequence")


def test_results_are_ranked_by_score_and_scores_are_cosines(saved, genes, tmp_path):
    model, path = saved
    index = load_gene_index(model, path, genes, tmp_path)
    assert index.embeddings.shape == (len(genes), 16)
    assert np.allclose(np.linalg.norm(index.embeddings, axis=1), 1, atol=1e-5)
    hits = search(model, index, "transfers a phosphate group from ATP to a sugar", k=7)
    assert [h["rank"] for h in hits] == list(range(1, 8))
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    query = model.project_text(model.embed_texts(["transfers a phosphate group from ATP to a sugar"])).detach().numpy()[0]
    all_scores = index.embeddings @ query
    assert scores[0] == pytest.approx(all_scores.max(), abs=1e-5)  # nothing outside the top k scores higher
    row = genes.with_row_index().filter(pl.col("RecordId") == hits[0]["RecordId"])
    assert scores[0] == pytest.approx(all_scores[row["index"][0]], abs=1e-5)
    assert hits[0]["EC"] == row["EC"][0] and hits[0]["Organism"] == row["Organism"][0]


def test_an_index_cache_hit_embeds_nothing(saved, genes, tmp_path, monkeypatch):
    model, path = saved
    first = load_gene_index(model, path, genes, tmp_path)
    calls = []
    real = model.dna_features
    monkeypatch.setattr(model, "dna_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = load_gene_index(model, path, genes, tmp_path)
    assert calls == [] and np.array_equal(first.embeddings, again.embeddings)
    # other genes are a cache miss: embedded afresh, and the same genes embed to the same vectors
    fewer = load_gene_index(model, path, genes.head(10), tmp_path)
    assert calls and np.allclose(fewer.embeddings, first.embeddings[:10], atol=1e-5)


def test_a_table_without_sequences_is_rejected(saved, genes, tmp_path):
    model, path = saved
    with pytest.raises(ValueError, match="no Sequence column"):
        load_gene_index(model, path, genes.drop("Sequence"), tmp_path)


def test_gene_table_lists_a_multi_ec_gene_once_with_all_its_ecs():
    records = pl.DataFrame({
        "EmblCdsId": ["g1", "g1", "g2", "", ""], "EC": ["2.7.1.10", "2.7.1.2", "1.1.1.1", "3.1.1.2", "3.1.1.1"],
        "Sequence": ["ATGA", "ATGA", "ATGC", "ATGG", "ATGG"], "Organism": ["E. coli", "E. coli", "M. mazei", "", ""],
        "Split": ["train", "test1", "train", "valid", "valid"], "RecordId": ["a", "b", "c", "d", "e"],
    })  # fmt: skip
    genes = gene_table(records)
    assert genes["GeneId"].to_list() == ["g1", "g2", "ATGG"]  # no id: the DNA is the gene
    assert genes["ECs"].to_list() == [["2.7.1.2", "2.7.1.10"], ["1.1.1.1"], ["3.1.1.1", "3.1.1.2"]]  # EC order
    assert genes["Splits"].to_list()[0] == ["train", "test1"] and genes["RecordIds"].to_list()[2] == ["d", "e"]
    assert genes["Sequence"].to_list() == ["ATGA", "ATGC", "ATGG"]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"script_{name}", ROOT / "scripts" / f"{name}.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_entry_point_defaults_to_the_model_make_demo_writes():
    demo_model = _script("demo").Config().clip_out / "final"
    assert _script("retrieve").Config().model == _script("app").Config().model == demo_model
    assert _script("index_genes").Config().model == demo_model


def test_retrieve_lists_each_gene_once_with_all_its_ecs(saved, mini_benchmark, tmp_path):
    _, path = saved
    out = tmp_path / "hits.json"
    done = subprocess.run([sys.executable, "scripts/retrieve.py", "--config", "configs/clip/retrieve_mini.yaml",
                           f"model={path}", f"data={mini_benchmark}", "benchmark=I", "splits=[test2]",
                           "query=transfers a phosphate group from ATP to a sugar", "k=1000", f"out={out}",
                           f"cache_dir={tmp_path / 'cache'}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    hits = json.loads(out.read_text())["results"]
    ids = [h["GeneId"] for h in hits]
    test2 = load_benchmark(mini_benchmark, benchmark="I")["test2"].to_polars()
    ecs = dict(test2.group_by("EmblCdsId").agg(pl.col("EC").unique()).iter_rows())
    assert len(hits) == len(set(ids)) == len(ecs)  # k above the collection: every gene, each once
    assert all(set(h["ECs"]) == set(ecs[h["GeneId"]]) for h in hits)
    assert sum(len(h["ECs"]) > 1 for h in hits) > 5  # Test-II has multi-EC genes
    assert all(h["GeneId"] in done.stdout for h in hits[:5])
