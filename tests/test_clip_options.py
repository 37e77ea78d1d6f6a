"""BioTalk-CLIP's regularisation and label options (issue 10): head dropout, a fixed temperature, SigLIP's
bias, top text layers unfrozen, hierarchical label texts; a tiny random LOLBERT and the real MiniLM."""

from pathlib import Path

import pytest
import torch

from biotalk.clip_eval import ec_label_text, zero_shot_candidates
from biotalk.data.enzyme import load_enzyme
from biotalk.ec import EC_IN_TEXT_RE
from biotalk.losses import SigLipLoss
from biotalk.models.clip import BioTalkClipModel, build_clip_model
from biotalk.training import adamw

RAW = Path(__file__).resolve().parents[1] / "data" / "raw" / "expasy_enzyme"
SEQS = ["ATGAAACGCATTAGCACCACCATTACCACCACCATCACCATTACCACAGGTAACGGTGCGGGCTGA", "ATGCGTGTTTTAGGC", "ATGCCC" * 9]
TEXTS = ["Catalyses the oxidation of an alcohol.", "A kinase acting on sugars.", "Hydrolyses peptide bonds."]


def _batch(model, texts=True):
    enc = model.dna_encoder.tokenize(SEQS)
    batch = {k: enc[k] for k in ("input_ids", "attention_mask", "special_tokens_mask")}
    if texts:
        batch["text_features"] = model.sentence_embeddings(TEXTS)
    return batch


def test_head_dropout_acts_in_training_only_and_survives_a_reload(tiny_lolbert, tmp_path):
    torch.manual_seed(0)
    model = build_clip_model(tiny_lolbert, projection_dim=16, freeze_dna=True, head_dropout=0.5, dna_head="mlp")
    batch = _batch(model)
    model.train()
    a, b = model(**batch).dna_embeds, model(**batch).dna_embeds
    assert not torch.allclose(a, b)  # two dropout masks
    model.eval()
    assert torch.equal(model(**batch).dna_embeds, model(**batch).dna_embeds)
    model.save_pretrained(tmp_path / "m")
    loaded = BioTalkClipModel.from_pretrained(tmp_path / "m")
    assert loaded.config.head_dropout == 0.5
    assert torch.allclose(loaded(**batch).dna_embeds, model(**batch).dna_embeds, atol=1e-6)


def test_a_fixed_temperature_gets_no_update(tiny_lolbert):
    model = build_clip_model(tiny_lolbert, projection_dim=16, learn_logit_scale=False, logit_scale_init=20.0)
    assert model.scale().item() == pytest.approx(20.0)
    assert all(p is not model.logit_scale for g in adamw(model, 1e-3, 0.01).param_groups for p in g["params"])


def test_siglip_bias_exists_only_when_asked_and_trains(tiny_lolbert, tmp_path):
    plain = build_clip_model(tiny_lolbert, projection_dim=16)
    assert plain(**_batch(plain)).logit_bias is None and not hasattr(plain, "logit_bias")
    model = build_clip_model(tiny_lolbert, projection_dim=16, logit_bias=True, logit_bias_init=-3.0)
    out = model(**_batch(model))
    assert out.logit_bias.item() == -3.0
    SigLipLoss()(out.dna_embeds, out.text_embeds, out.logit_scale, torch.arange(3), out.logit_bias).backward()
    assert model.logit_bias.grad is not None and model.logit_bias.grad.abs().item() > 0
    model.save_pretrained(tmp_path / "m")
    assert BioTalkClipModel.from_pretrained(tmp_path / "m").logit_bias.item() == -3.0


def test_unfreezing_top_text_layers_trains_them_and_bypasses_the_cache(tiny_lolbert, tmp_path):
    model = build_clip_model(tiny_lolbert, projection_dim=16, unfreeze_text_layers=1)
    trainable = {n.split(".layer.")[1].split(".")[0] for n, p in model.text_encoder.named_parameters()
                 if p.requires_grad}
    assert trainable == {"5"}  # MiniLM-L6: the top layer only
    assert not model.text_cached
    before = model.sentence_embeddings(TEXTS, cache_dir=tmp_path)
    assert not any(tmp_path.rglob("*.json"))  # never cached: these features change with training
    with torch.no_grad():
        next(model.text_encoder[0].auto_model.encoder.layer[5].parameters()).add_(0.1)
    assert not torch.allclose(model.sentence_embeddings(TEXTS, cache_dir=tmp_path), before)
    with pytest.raises(ValueError, match="unfreeze_text_layers=9"):
        build_clip_model(tiny_lolbert, projection_dim=16, unfreeze_text_layers=9)


def test_hierarchical_label_texts_name_every_level_without_the_ec():
    db = load_enzyme(RAW / "enzyme_2018-09-12.dat.gz", RAW / "enzclass_2018-09-12.txt.gz")
    assert ec_label_text("1.1.1.1", db) == ("oxidoreductases; acting on the CH-OH group of donors; "
                                            "with NAD(+) or NADP(+) as acceptor; alcohol dehydrogenase")
    assert ec_label_text("4.99.1.1", db) == "lyases; other lyases; protoporphyrin ferrochelatase"  # level 3 = level 2
    siblings = [ec_label_text(ec, db) for ec in ("2.7.1.1", "2.7.1.2")]
    assert siblings[0].rsplit("; ", 1)[0] == siblings[1].rsplit("; ", 1)[0] and siblings[0] != siblings[1]
    both = zero_shot_candidates(db, [0, 2], "both")
    assert len(both.texts) == 3 and all(len(t) == len(both.ecs) for t in both.texts)
    assert both.texts[2] == zero_shot_candidates(db, [0], "hierarchical").texts[0]
    assert not [t for t in both.texts[2] if EC_IN_TEXT_RE.search(t)]  # no label names its EC
    with pytest.raises(ValueError, match="zero_shot_texts"):
        zero_shot_candidates(db, [0], "names")
