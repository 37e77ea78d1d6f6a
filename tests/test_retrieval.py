"""Text -> gene retrieval (biotalk.retrieval) on the real mini benchmark with a small CLIP model
(k-mer spectrum tower, real MiniLM text tower, random heads: code paths only, no reported numbers)."""

import numpy as np
import polars as pl
import pytest
import torch

from biotalk.data import load_benchmark
from biotalk.models.clip import build_clip_model
from biotalk.retrieval import load_gene_index, search


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
