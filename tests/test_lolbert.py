"""LOLBERT tokenizer, configs and masking."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForMaskedLM, AutoTokenizer, RobertaConfig, RobertaModel

from biotalk.models.lolbert import (
    MAX_TOKENS,
    VOCAB,
    build_lolbert_tokenizer,
    lolbert_config,
    mask_tokens,
)

ID = {tok: i for i, tok in enumerate(VOCAB)}


TOKENIZER = build_lolbert_tokenizer()


@pytest.fixture(scope="module")
def tok():
    return TOKENIZER


def expected_ids(seq: str) -> list[int]:
    bases = [c.upper() for c in seq if not c.isspace()]
    return [ID["S"]] + [ID[b] if b in "ACGT" else ID["N"] for b in bases] + [ID["/S"]]


def test_vocabulary_is_the_papers_nine_tokens(tok):
    assert tok.get_vocab() == {"S": 0, "P": 1, "/S": 2, "N": 3, "M": 4, "G": 5, "A": 6, "C": 7, "T": 8}
    assert (tok.cls_token, tok.bos_token, tok.pad_token, tok.sep_token, tok.eos_token) == ("S", "S", "P", "/S", "/S")
    assert (tok.unk_token, tok.mask_token) == ("N", "M")
    assert len(tok) == 9 and tok.model_max_length == MAX_TOKENS


def test_single_nucleotides_with_cls_and_sep(tok):
    ids = tok("acgTGCA")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["S", "A", "C", "G", "T", "G", "C", "A", "/S"]


def test_iupac_letters_that_look_like_special_tokens_become_n(tok):
    # S (G/C), M (A/C), N, P and "/S" inside a sequence are bases or junk, never special tokens.
    ids = tok("ASMNP/SRYKx")["input_ids"]
    assert ids == [ID["S"]] + [ID["A"]] + [ID["N"]] * 10 + [ID["/S"]]
    assert ID["M"] not in ids[1:-1] and ID["S"] not in ids[1:-1] and ID["P"] not in ids


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ACGTacgtSMNPRYKWBDHV/ -\n", max_size=300))
def test_tokenizer_matches_per_letter_mapping(seq):
    assert TOKENIZER(seq)["input_ids"] == expected_ids(seq)


def test_save_and_load_round_trip(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    seqs = ["ACGTNSMacgt", "SSSS", "/S/SM", "A" * 5]
    assert loaded(seqs, padding=True)["input_ids"] == tok(seqs, padding=True)["input_ids"]
    assert loaded.get_vocab() == tok.get_vocab() and loaded.all_special_tokens == tok.all_special_tokens
    padded = loaded(["ACGT", "A"], padding=True)
    assert padded["input_ids"][1] == [ID["S"], ID["A"], ID["/S"], ID["P"], ID["P"], ID["P"]]
    assert padded["attention_mask"][1] == [1, 1, 1, 0, 0, 0]


def test_truncation_keeps_cls_and_sep_within_512(tok):
    ids = tok("ACGT" * 300, truncation=True)["input_ids"]
    assert len(ids) == MAX_TOKENS and ids[0] == ID["S"] and ids[-1] == ID["/S"]
    assert ids[1:5] == [ID["A"], ID["C"], ID["G"], ID["T"]]


def test_base_config_is_roberta_base_with_vocab_9():
    cfg = lolbert_config("base")
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (12, 768, 12, 3072)
    assert cfg.hidden_act == "gelu" and cfg.layer_norm_eps == 1e-12
    assert cfg.hidden_dropout_prob == cfg.attention_probs_dropout_prob == 0.1
    assert cfg.max_position_embeddings == 514 and cfg.vocab_size == 9 and cfg.pad_token_id == ID["P"]
    with torch.device("meta"):
        ours = sum(p.numel() for p in RobertaModel(cfg).parameters())
        # roberta-base: vocab 50,265, 514 positions, one token type; only the vocabulary differs.
        base = RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1)
        reference = sum(p.numel() for p in RobertaModel(base).parameters())
    assert ours == reference - (50265 - 9) * 768
    assert 85e6 < ours < 87e6


def test_mini_config_is_smaller_and_unknown_size_fails():
    mini = lolbert_config("mini")
    assert mini.vocab_size == 9 and mini.max_position_embeddings == 514
    assert mini.hidden_size < 768 and mini.num_hidden_layers < 12
    with pytest.raises(FileNotFoundError, match="huge"):
        lolbert_config("huge")


def test_masking_targets_only_bases_and_is_seeded(tok):
    ids = torch.tensor(tok(["ACGTNACGTACGTACGTTT" * 10, "ACG"], padding=True)["input_ids"])
    special = ids < ID["G"]
    masked, labels = mask_tokens(ids, special, 0.5, torch.Generator().manual_seed(1))
    target = labels != -100
    assert target.any() and not (target & special).any()
    assert torch.equal(labels[target], ids[target])
    assert torch.equal(masked[~target], ids[~target])
    assert set(masked[target].tolist()) <= {ID["M"], ID["G"], ID["A"], ID["C"], ID["T"]}
    again, labels2 = mask_tokens(ids, special, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(again, masked) and torch.equal(labels2, labels)
    all_masked, labels3 = mask_tokens(ids, special, 0.5, torch.Generator().manual_seed(1), mask_all=True)
    assert (all_masked[labels3 != -100] == ID["M"]).all()


def test_tiny_lolbert_fixture_loads(tiny_lolbert):
    model = AutoModelForMaskedLM.from_pretrained(tiny_lolbert)
    tok = AutoTokenizer.from_pretrained(tiny_lolbert)
    batch = tok(["ACGTSM", "AC"], padding=True, return_tensors="pt")
    logits = model(**batch).logits
    assert logits.shape == (2, 8, 9) and torch.isfinite(logits).all()
    assert batch["input_ids"][0].tolist() == expected_ids("ACGTSM")
