"""The homology hybrid (biotalk.hybrid, scripts/hybrid.py) on the real mini benchmark: real MMseqs2 hits, a small
CLIP model with random heads (its predictions only need to be a model's, not good ones)."""

import shutil

import pytest
import torch
from fixtures.scripts import load_script

from biotalk.clip_eval import Candidates, ClipEvalConfig
from biotalk.data.describe import describe_ec
from biotalk.data.loader import load_tables
from biotalk.data.schema import benchmark_enzyme
from biotalk.hybrid import (
    MODEL_ALONE,
    ModelPredictor,
    best_hit_homology,
    choose_threshold,
    combine,
    homology_share,
)
from biotalk.metrics import score_genes
from biotalk.models.clip import build_clip_model

hybrid_script = load_script("scripts/hybrid.py")


@pytest.fixture(scope="module")
def predictor(mini_benchmark) -> ModelPredictor:
    """aakmer:1 tower, random heads; candidates: the ECs of Valid and valid2 (few texts to embed)."""
    torch.manual_seed(0)
    model = build_clip_model("aakmer:1", projection_dim=8, dna_head="mlp", head_hidden=16, window_nt=0).eval()
    tables = load_tables(mini_benchmark, "I", ["valid", "valid2"])
    ecs = sorted(set(tables["valid"]["EC"]) | set(tables["valid2"]["EC"]))
    db = benchmark_enzyme(mini_benchmark)
    return ModelPredictor(model, Candidates(ecs, [[describe_ec(ec, db, 0) for ec in ecs]]), ClipEvalConfig())


@pytest.fixture(scope="module")
def valid(mini_benchmark, predictor):
    tables = load_tables(mini_benchmark, "I", ["train", "valid"])
    train, split = (hybrid_script.split_data(tables[n]) for n in ("train", "valid"))
    homology = best_hit_homology(split.proteins, train.proteins, train.ecs)
    return split, homology, *predictor.predict("valid", split, ["valid"])


def test_best_hit_identity_is_a_fraction_exactly_where_homology_answers(valid):
    _, homology, _, _ = valid
    assert any(ec is not None for ec in homology.ecs) and any(ec is None for ec in homology.ecs)
    for ec, identity in zip(homology.ecs, homology.identity, strict=True):
        assert (ec is None) == (identity is None)
        assert identity is None or 0 < identity <= 1


def test_hybrid_is_homology_where_a_hit_exists_at_t0_and_the_model_above_1(valid):
    split, homology, model_ecs, _ = valid
    assert combine(homology, model_ecs, MODEL_ALONE) == list(model_ecs)
    at_zero = combine(homology, model_ecs, 0.0)
    assert at_zero == [h if h is not None else m for h, m in zip(homology.ecs, model_ecs, strict=True)]
    assert at_zero != list(model_ecs)


def test_threshold_and_fallback_tau_are_the_best_pair_on_the_split(valid):
    split, homology, model_ecs, fallbacks = valid
    assert model_ecs in fallbacks.values()  # the model's own tau is one of the fallback's
    grid = [MODEL_ALONE, 0.0, 0.5, 0.9]
    t, tau, rows = choose_threshold(split, homology, fallbacks, grid)
    assert [r["t"] for r in rows] == sorted(grid)
    for row in rows:
        scores = {x: score_genes(split.genes, split.ecs, combine(homology, fallbacks[x], row["t"]))["hF"]
                  for x in fallbacks}
        assert row["hF"] == scores[row["tau"]] == max(scores.values())
        assert row["homology_share"] == homology_share(homology, row["t"])
    assert [r["homology_share"] for r in rows] == sorted((r["homology_share"] for r in rows), reverse=True)
    assert rows[-1]["homology_share"] == 0
    best = max(rows, key=lambda r: r["hF"])
    assert (t, tau) == (best["t"], best["tau"])


def test_threshold_is_chosen_without_the_test_files(mini_benchmark, predictor, tmp_path):
    """Phase 1 on a copy of the build without Test-I/II chooses t for both (Test-II's on valid2)."""
    data = tmp_path / "data"
    shutil.copytree(mini_benchmark, data, ignore=shutil.ignore_patterns("test1.parquet", "test2.parquet", "Fragments"))
    cfg = hybrid_script.HybridConfig(data=data, grid=[0.0, 0.5, MODEL_ALONE], homology=hybrid_script.HomologyConfig(threads=1))
    chosen = hybrid_script.choose(cfg, predictor)
    assert set(chosen.t) == {"valid", "valid2", "test1", "test2"}
    assert chosen.t["test1"] == chosen.t["valid"] and chosen.t["test2"] == chosen.t["valid2"]
    assert chosen.tau["test1"] == chosen.tau["valid"] and chosen.tau["test2"] == chosen.tau["valid2"]
    assert set(predictor.taus) >= {"valid", "valid2"}
    with pytest.raises(FileNotFoundError):
        load_tables(data, "I", ["test1"])
