"""BioTalk-CLIP model (tiny random LOLBERT + the real MiniLM text tower) and its data pipeline."""

import json
import math

import numpy as np
import pytest
import torch
from safetensors import safe_open

from biotalk.data.clip_data import (
    ClipBatchSampler,
    ClipCollator,
    ClipDataset,
    cached_text_features,
    clip_split,
    crop,
    max_unique_batches,
)
from biotalk.losses import ClipLoss
from biotalk.models.clip import BioTalkClipModel, build_clip_model

SEQS = ["ATGAAACGCATTAGCACCACCATTACCACCACCATCACCATTACCACAGGTAACGGTGCGGGCTGA", "ATGCGTGTTTTAGGC", "ATGCCC" * 9]
TEXTS = ["Catalyses the oxidation of an alcohol.", "A kinase acting on sugars.", "Hydrolyses peptide bonds."]


@pytest.fixture(scope="module")
def model(tiny_lolbert):
    torch.manual_seed(0)
    return build_clip_model(tiny_lolbert, projection_dim=16)


def _batch(model, seqs=SEQS):
    enc = model.dna_encoder.tokenize(seqs)
    return {k: enc[k] for k in ("input_ids", "attention_mask", "special_tokens_mask")}


def test_forward_gives_unit_vectors_and_initial_temperature(model):
    out = model(**_batch(model), text_features=model.embed_texts(TEXTS))
    assert out.dna_embeds.shape == out.text_embeds.shape == (3, 16)
    assert torch.allclose(out.dna_embeds.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(out.text_embeds.norm(dim=1), torch.ones(3), atol=1e-5)
    assert math.isclose(out.logit_scale.item(), 1 / 0.07, rel_tol=1e-5)


def test_logit_scale_is_clamped_at_100(model):
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1000.0))
    try:
        assert math.isclose(model.scale().item(), 100.0, rel_tol=1e-5)
    finally:
        with torch.no_grad():
            model.logit_scale.fill_(math.log(1 / 0.07))


def test_cached_text_features_equal_the_live_frozen_tower(model):
    model.train()  # a frozen tower stays in eval mode, so its dropout is off even while training
    assert not model.text_encoder.training
    live = model.text_features(model.text_encoder.preprocess(TEXTS))
    assert torch.allclose(live, model.embed_texts(TEXTS), atol=1e-5)
    model.eval()


def test_frozen_text_tower_gets_no_gradient_and_dna_tower_does(model):
    model.train()
    model.zero_grad()
    out = model(**_batch(model), text_inputs=model.text_encoder.preprocess(TEXTS))
    ClipLoss()(out.dna_embeds, out.text_embeds, out.logit_scale, torch.arange(3)).backward()
    assert all(p.grad is None for p in model.text_encoder.parameters())
    assert model.text_projection.weight.grad.abs().sum() > 0
    assert model.logit_scale.grad is not None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.dna_encoder.parameters())
    model.zero_grad()
    model.eval()


def test_forward_needs_exactly_one_text_input(model):
    with pytest.raises(ValueError, match="exactly one"):
        model(**_batch(model))


def test_padding_does_not_change_a_dna_embedding(model):
    model.eval()
    with torch.no_grad():
        together = model(**_batch(model), text_features=model.embed_texts(TEXTS)).dna_embeds
        alone = model(**_batch(model, SEQS[1:2]), text_features=model.embed_texts(TEXTS[1:2])).dna_embeds
    assert torch.allclose(together[1], alone[0], atol=1e-5)


def test_get_dna_features_is_the_crop_tokenise_project_path(model):
    """Gene-start windows of the model's window_nt, tokenised in one batch, pooled, projected: the same
    vectors as get_dna_features' length-sorted batches of two, in input order."""
    model.eval()
    model.config.window_nt = 40
    try:
        windows = [crop(s, 40, None) for s in SEQS]
        with torch.no_grad():
            expected = model.project_dna(model.dna_features(**_batch(model, windows)))
        got = model.get_dna_features(SEQS, batch_size=2)
    finally:
        model.config.window_nt = 0
    assert [len(w) for w in windows] == [40, 15, 40]
    assert got.dtype == torch.float32 and got.shape == (3, 16)
    assert torch.allclose(got, expected, atol=1e-5)


def test_get_text_features_project_the_sentence_embeddings_and_read_the_cache(model, tmp_path):
    model.eval()
    with torch.no_grad():
        expected = model.project_text(model.embed_texts(TEXTS))
    assert torch.allclose(model.get_text_features(TEXTS), expected, atol=1e-6)
    first = model.get_text_features(TEXTS, cache_dir=tmp_path)  # frozen tower: written to the cache
    assert any(tmp_path.rglob("*")) and torch.allclose(first, expected, atol=1e-6)
    assert torch.equal(model.get_text_features(TEXTS, cache_dir=tmp_path), first)


def test_save_and_load_round_trip_is_self_contained(model, tmp_path):
    model.eval()
    with torch.no_grad():
        model.dna_projection.weight.add_(0.5)  # a trained-looking head, not the fresh init
    model.save_pretrained(tmp_path / "clip")
    assert {p.name for p in (tmp_path / "clip").iterdir()} == {
        "config.json", "model.safetensors", "dna_encoder", "text_encoder"
    }
    loaded = BioTalkClipModel.from_pretrained(tmp_path / "clip").eval()
    with torch.no_grad():
        a = model(**_batch(model), text_features=model.embed_texts(TEXTS))
        b = loaded(**_batch(loaded), text_features=loaded.embed_texts(TEXTS))
    assert torch.allclose(a.dna_embeds, b.dna_embeds, atol=1e-6)
    assert torch.allclose(a.text_embeds, b.text_embeds, atol=1e-6)
    assert loaded.config.freeze_text and loaded.config.projection_dim == 16


def test_bf16_weights_are_saved_and_reloaded_in_float32_and_cached_apart(tiny_lolbert, tmp_path):
    """Issue 14 item 6: DeepSpeed bf16 casts every weight (towers, heads, temperature) to bf16. ``final/`` holds
    those values in float32, a reload is float32 (transformers 5 would reload a bf16 file as bf16), and the
    bf16 tower's text features never share a cache entry with the float32 tower's. (A real DeepSpeed bf16
    run: tests/test_distributed.py.)"""
    torch.manual_seed(0)
    fp32 = build_clip_model(tiny_lolbert, projection_dim=16)
    bf16 = build_clip_model(tiny_lolbert, projection_dim=16).to(torch.bfloat16)
    assert fp32.text_cache_key() != bf16.text_cache_key() and bf16.text_cache_key().endswith("|weights=bfloat16")
    fp32.sentence_embeddings(TEXTS, tmp_path / "cache")
    bf16.sentence_embeddings(TEXTS, tmp_path / "cache")
    keys = sorted(json.loads(p.read_text())["encoder"] for p in (tmp_path / "cache").rglob("text_features-*.json"))
    assert keys == sorted([fp32.text_cache_key(), bf16.text_cache_key()])  # two entries, one per real dtype
    fp32.save_pretrained(tmp_path / "fp32")
    again = BioTalkClipModel.from_pretrained(tmp_path / "fp32")
    assert again.text_cache_key() == fp32.text_cache_key()  # the same frozen tower in another folder: one entry
    moved = build_clip_model(tiny_lolbert, projection_dim=16)
    next(moved.text_encoder.parameters()).data.add_(1e-3)
    assert moved.text_cache_key() != fp32.text_cache_key()  # other weights, other features
    bf16.save_pretrained(tmp_path / "clip")
    for path in (tmp_path / "clip").rglob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}, path
    for path in (tmp_path / "clip").rglob("config.json"):
        assert json.loads(path.read_text()).get("dtype", "float32") == "float32", path
    loaded = BioTalkClipModel.from_pretrained(tmp_path / "clip")
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    saved, reloaded = bf16.state_dict(), loaded.state_dict()
    assert all(torch.equal(saved[k].float(), reloaded[k]) for k in saved)  # the bf16 values, exactly


def test_collator_without_text_features_names_the_fix():
    split = clip_split(_rows(["1.1.1.1"]), "toy")
    collate = ClipCollator(lambda s: {k: torch.ones(len(s), 3) for k in ("input_ids", "attention_mask",
                                                                        "special_tokens_mask")}, split.texts)
    with pytest.raises(ValueError, match="set text_features"):
        collate([ClipDataset(split, 0, False)[0]])
    collate.text_features = torch.zeros(len(split.texts), 4)  # set after construction, as train_clip does
    assert collate([ClipDataset(split, 0, False)[0]])["text_features"].shape == (1, 4)


def test_kmer_tower_with_mlp_head_trains_saves_and_reloads(tmp_path):
    """Architecture by config: a weightless k-mer spectrum tower, an MLP head whose LayerNorm makes the
    tiny spectrum frequencies trainable; the head learns, the reloaded model embeds identically."""
    torch.manual_seed(0)
    model = build_clip_model("kmer:3", projection_dim=8, dna_head="mlp", head_hidden=16, window_nt=0)
    assert isinstance(model.dna_projection[0], torch.nn.LayerNorm)
    texts = model.embed_texts(TEXTS)
    feats = model.dna_features(**_batch(model))
    assert feats.shape == (3, 64) and torch.allclose(feats.sum(1), torch.ones(3))  # the spectrum itself
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss_fn, labels = ClipLoss(), torch.arange(3)
    losses = []
    for _ in range(20):
        out = model(**_batch(model), text_features=texts)
        loss = loss_fn(out.dna_embeds, out.text_embeds, out.logit_scale, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    model.save_pretrained(tmp_path / "kmer")
    loaded = BioTalkClipModel.from_pretrained(tmp_path / "kmer").eval()
    assert loaded.dna_encoder.name == "kmer:3" and loaded.config.dna_head == "mlp"
    with torch.no_grad():
        assert torch.allclose(model(**_batch(model), text_features=texts).dna_embeds,
                              loaded(**_batch(loaded), text_features=texts).dna_embeds, atol=1e-6)


def test_bf16_text_embedding_is_close_to_float32(model):
    fp32 = model.embed_texts(TEXTS)
    model.config.text_embed_dtype = "bfloat16"
    try:
        bf16 = model.embed_texts(TEXTS)
    finally:
        model.config.text_embed_dtype = "float32"
    assert bf16.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(fp32, bf16).min() > 0.99


def test_bad_head_or_dtype_names_are_rejected(tiny_lolbert):
    with pytest.raises(ValueError, match="dna_head"):
        build_clip_model(tiny_lolbert, dna_head="transformer")
    with pytest.raises(ValueError, match="text_embed_dtype"):
        build_clip_model(tiny_lolbert, text_embed_dtype="int8")


def test_from_pretrained_rejects_a_non_clip_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a BioTalk-CLIP directory"):
        BioTalkClipModel.from_pretrained(tmp_path)


# -- data ------------------------------------------------------------------------------------------
def _rows(ecs, texts=None):
    n = len(ecs)
    return {
        "RecordId": [f"r{i}" for i in range(n)],
        "Sequence": ["ACGT" * 10] * n,
        "EC": ecs,
        "DescriptionMasked": texts or [f"text of {ec}" for ec in ecs],
    }


def test_clip_split_indexes_unique_texts_and_rejects_bad_records():
    split = clip_split(_rows(["1.1.1.1", "1.1.1.1", "2.7.1.1"]), "toy")
    assert split.texts == ["text of 1.1.1.1", "text of 2.7.1.1"]
    assert split.text_idx.tolist() == [0, 0, 1] and split.text_ecs == ["1.1.1.1", "2.7.1.1"]
    assert split.ec_idx[0] == split.ec_idx[1] != split.ec_idx[2]
    # EC class ids in the one EC order (biotalk.ec.LabelMap), not string order: 1.1.1.2 < 1.1.1.10
    assert clip_split(_rows(["1.1.1.10", "1.1.1.2"]), "toy").ec_idx.tolist() == [1, 0]
    with pytest.raises(ValueError, match="toy: record r1: partial EC"):
        clip_split(_rows(["1.1.1.1", "1.1.-.-"]), "toy")
    with pytest.raises(ValueError, match="toy: record r1: text shared by ECs"):
        clip_split(_rows(["1.1.1.1", "1.1.1.2"], ["same", "same"]), "toy")
    rows = _rows(["1.1.1.1"])
    rows["Sequence"] = [""]
    with pytest.raises(ValueError, match="toy: record r0: empty Sequence"):
        clip_split(rows, "toy")


def test_collator_attaches_cached_features_by_text_index():
    split = clip_split(_rows(["1.1.1.1", "2.2.2.2", "1.1.1.1"]), "toy")
    table = torch.arange(len(split.texts) * 4, dtype=torch.float32).reshape(-1, 4)
    collate = ClipCollator(lambda s: {k: torch.ones(len(s), 3) for k in ("input_ids", "attention_mask",
                                                                        "special_tokens_mask")}, split.texts, table)
    batch = collate([ClipDataset(split, 0, False)[i] for i in (2, 1)])
    assert torch.equal(batch["text_features"], table[[0, 1]])
    assert batch["labels"].tolist() == [split.ec_idx[2], split.ec_idx[1]]


def test_random_crop_depends_on_seed_epoch_and_record_only():
    split = clip_split({**_rows(["1.1.1.1"] * 2), "Sequence": ["ACGTTGCAAGGCCTTA" * 8] * 2}, "toy")
    data = ClipDataset(split, 20, random_crop=True, seed=3)
    first = [data[i]["sequence"] for i in range(2)]
    assert all(len(s) == 20 and s in split.sequences[0] for s in first)
    assert [ClipDataset(split, 20, True, seed=3)[i]["sequence"] for i in range(2)] == first
    data.set_epoch(1)
    assert [data[i]["sequence"] for i in range(2)] != first
    assert ClipDataset(split, 20, random_crop=False)[0]["sequence"] == split.sequences[0][:20]


@pytest.mark.parametrize("mode", ["soft", "unique", "siblings"])
def test_batch_sampler_is_seeded_and_full(mode):
    rng = np.random.default_rng(0)
    ec_idx = np.concatenate([np.repeat(np.arange(40), rng.integers(1, 6, 40)), np.zeros(30, dtype=int)])
    labels = [f"2.7.{c % 4}.{c}" for c in range(40)]
    sampler = ClipBatchSampler(ec_idx, 16, seed=1, mode=mode, ec_labels=labels)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0 and all(len(b) == 16 for b in batches)
    flat = [i for b in batches for i in b]
    assert len(set(flat)) == len(flat)  # no record twice in an epoch
    assert batches == list(ClipBatchSampler(ec_idx, 16, seed=1, mode=mode, ec_labels=labels))
    sampler.set_epoch(1)
    assert list(sampler) != batches
    if mode != "soft":
        assert all(len(set(ec_idx[b].tolist())) == 16 for b in batches)
        assert len(sampler) == max_unique_batches(np.bincount(ec_idx), 16)


def _sibling_pairs(batches: list[list[int]], parents: np.ndarray) -> float:
    """Mean number of pairs per batch whose ECs share the first three levels."""
    pairs = [((p[:, None] == p[None, :]).sum() - len(p)) / 2 for p in (parents[b] for b in batches)]
    return float(np.mean(pairs))


def test_sibling_batches_gather_hard_negatives_on_the_real_training_set(mini_benchmark):
    from biotalk.data import load_benchmark

    train = clip_split(load_benchmark(mini_benchmark, benchmark="I", splits=("train",))["train"], "train")
    parents = np.array([ec.rsplit(".", 1)[0] for ec in train.ecs])
    samplers = {mode: ClipBatchSampler(train.ec_idx, 64, 0, mode, train.class_ecs) for mode in ("unique", "siblings")}
    assert len(samplers["siblings"]) == len(samplers["unique"])
    pairs = {}
    for mode, sampler in samplers.items():
        epochs = []
        for epoch in range(3):
            sampler.set_epoch(epoch)
            epochs.append(list(sampler))
            assert all(len(b) == 64 and len(set(train.ec_idx[b].tolist())) == 64 for b in epochs[-1])
        assert epochs[0] != epochs[1]
        pairs[mode] = _sibling_pairs([b for e in epochs for b in e], parents)
    # same EC-unique batches, but grouped by EC parent: at least twice the sibling pairs of random EC-unique ones
    assert pairs["siblings"] > 2 * pairs["unique"], pairs
    samplers["siblings"].set_epoch(2)
    assert list(samplers["siblings"]) == epochs[2]  # deterministic per seed and epoch


def test_sibling_mode_needs_the_ec_of_each_class():
    with pytest.raises(ValueError, match="siblings"):
        ClipBatchSampler(np.arange(8), 4, 0, "siblings")


def test_max_unique_batches_by_hand():
    # counts 3, 3, 1 and batch 2: m=3 needs 6 slots and has min(3,3)+min(3,3)+1 = 7 -> 3 batches.
    assert max_unique_batches(np.array([3, 3, 1]), 2) == 3
    # one dominant EC: at most as many batches as the other ECs can fill beside it.
    assert max_unique_batches(np.array([100, 1, 1]), 2) == 2


def test_text_feature_cache_computes_once(tmp_path):
    calls = []

    def embed(texts):
        calls.append(list(texts))
        return torch.randn(len(texts), 4)

    a = cached_text_features(embed, ["x", "y"], "enc", tmp_path)
    b = cached_text_features(embed, ["x", "y"], "enc", tmp_path)
    assert torch.equal(a, b) and len(calls) == 1
    cached_text_features(embed, ["x", "y"], "other-encoder", tmp_path)
    assert len(calls) == 2
