"""load_dna_encoder on tiny random checkpoints of each architecture saved with save_pretrained, and pooling."""

import json

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertForMaskedLM,
    EsmConfig,
    EsmForMaskedLM,
    PreTrainedTokenizerFast,
    RobertaForMaskedLM,
)

from biotalk.models import load_dna_encoder, pool
from biotalk.models.encoders import KmerSpectrumEncoder
from biotalk.models.kmer import DNABERT_SPECIALS, KmerTokenizerFast, all_kmers, build_nt_tokenizer

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
GENES = ["ATGAAACGCATTAGCACCACCATTACCACCACCATCACCATTACCACAGGTAACGGTGCGGGCTGA",
         "ATGCGTGTTTTGAAGTTCGGCGGTACATCAGTGGCAAATGCAGAACGTTTTCTGCGTGTTGCCGATATT"]


def make_dnabert(path, max_positions=64):
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=4101, max_position_embeddings=max_positions, **SMALL)).eval()
    model.save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(DNABERT_SPECIALS + all_kmers(6)) + "\n")
    return model


def make_nt(path):
    torch.manual_seed(0)
    tok = build_nt_tokenizer()
    config = EsmConfig(vocab_size=len(tok), max_position_embeddings=66, pad_token_id=tok.pad_token_id,
                       mask_token_id=tok.mask_token_id, position_embedding_type="absolute", **SMALL)
    model = EsmForMaskedLM(config).eval()
    model.save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(tok.convert_ids_to_tokens(list(range(len(tok))))) + "\n")
    return model, tok


def test_dnabert_checkpoint(tmp_path):
    model = make_dnabert(tmp_path)
    enc = load_dna_encoder(tmp_path)
    assert isinstance(enc.tokenizer, KmerTokenizerFast) and enc.tokenizer.k == 6
    assert (enc.max_tokens, enc.hidden_size) == (64, 32)
    batch = enc.tokenize(GENES)
    assert batch["input_ids"].shape[1] == 64  # truncated to the model's window
    with torch.no_grad():
        expected = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        got = enc(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(got, expected)


def test_nucleotide_transformer_checkpoint(tmp_path):
    model, tok = make_nt(tmp_path)
    enc = load_dna_encoder(tmp_path)
    assert enc.max_tokens == 64  # 66 learned positions, offset by the padding index + 1
    assert enc.tokenizer.convert_ids_to_tokens(enc.tokenize([GENES[0]])["input_ids"][0].tolist())[:3] == [
        "<cls>", "ATGAAA", "CGCATT"]
    batch = enc.tokenize(GENES)
    with torch.no_grad():
        expected = model.esm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        torch.testing.assert_close(enc(batch["input_ids"], batch["attention_mask"]), expected)


def test_lolbert_checkpoint(tiny_lolbert):
    enc = load_dna_encoder(tiny_lolbert)
    assert enc.max_tokens == 512 and enc.hidden_size == 32
    assert enc.tokenizer.convert_ids_to_tokens(enc.prefix_ids + enc.suffix_ids) == ["S", "/S"]
    model = RobertaForMaskedLM.from_pretrained(tiny_lolbert).eval()
    batch = enc.tokenize(GENES)
    assert batch["input_ids"].shape[1] == max(map(len, GENES)) + 2
    with torch.no_grad():
        expected = model.roberta(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        torch.testing.assert_close(enc(batch["input_ids"], batch["attention_mask"]), expected.last_hidden_state)


def test_encoder_save_pretrained_round_trip(tmp_path):
    make_dnabert(tmp_path / "src")
    enc = load_dna_encoder(tmp_path / "src")
    enc.save_pretrained(tmp_path / "copy")
    back = load_dna_encoder(tmp_path / "copy")
    assert isinstance(back.tokenizer, KmerTokenizerFast)
    batch = enc.tokenize(GENES)
    with torch.no_grad():
        torch.testing.assert_close(back(batch["input_ids"], batch["attention_mask"]),
                                   enc(batch["input_ids"], batch["attention_mask"]))
    spectrum = KmerSpectrumEncoder(3, canonical=True)
    spectrum.save_pretrained(tmp_path / "kmer")
    assert load_dna_encoder(tmp_path / "kmer").name == "kmer:3:canonical"


def test_fingerprint_follows_weights(tmp_path):
    make_dnabert(tmp_path / "a")
    first = load_dna_encoder(tmp_path / "a").fingerprint
    assert load_dna_encoder(tmp_path / "a").fingerprint == first
    model = BertForMaskedLM.from_pretrained(tmp_path / "a")
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight[7, 0] += 1.0
    model.save_pretrained(tmp_path / "a")
    assert load_dna_encoder(tmp_path / "a").fingerprint != first


REMOTE_CODE = """
from transformers import BertConfig, BertModel


class TinyDnaConfig(BertConfig):
    model_type = "tinydna"


class TinyDnaModel(BertModel):
    config_class = TinyDnaConfig

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        out = super().forward(input_ids=input_ids, attention_mask=attention_mask)
        return (out.last_hidden_state, None)  # a tuple, as DNABERT-2's own model code returns
"""


def test_remote_code_only_with_consent(tmp_path):
    """A checkpoint that ships its model code (as DNABERT-2 does) runs only with trust_remote_code=True."""
    (tmp_path / "modeling_tinydna.py").write_text(REMOTE_CODE)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=4101, max_position_embeddings=40, **SMALL)
    model = BertForMaskedLM(config).bert.eval()
    model.save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    raw["model_type"] = "tinydna"
    raw["auto_map"] = {"AutoConfig": "modeling_tinydna.TinyDnaConfig", "AutoModel": "modeling_tinydna.TinyDnaModel"}
    (tmp_path / "config.json").write_text(json.dumps(raw))
    (tmp_path / "vocab.txt").write_text("\n".join(DNABERT_SPECIALS + all_kmers(6)) + "\n")
    with pytest.raises(ValueError, match="opt in with the trust_remote_code"):
        load_dna_encoder(tmp_path)
    enc = load_dna_encoder(tmp_path, trust_remote_code=True)
    assert type(enc.model).__name__ == "TinyDnaModel" and enc.max_tokens == 40
    batch = enc.tokenize(GENES)
    with torch.no_grad():
        expected = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        torch.testing.assert_close(enc(batch["input_ids"], batch["attention_mask"]), expected)


def test_generic_checkpoint_with_bpe_tokenizer(tmp_path):
    """A BERT checkpoint with its own BPE tokenizer (DNABERT-2 style, without remote code) loads through Auto*."""
    backend = Tokenizer(models.BPE(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=60, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    backend.train_from_iterator(GENES * 20, trainer)
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                  cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", model_max_length=48)
    tok.save_pretrained(tmp_path)
    BertForMaskedLM(BertConfig(vocab_size=backend.get_vocab_size(), **SMALL)).save_pretrained(tmp_path)
    enc = load_dna_encoder(tmp_path)
    assert enc.max_tokens == 48  # the tokenizer's limit is tighter than the 512 positions
    assert (enc.prefix_ids, enc.suffix_ids) == ([cls_id], [sep_id])
    assert len(enc.sequence_ids([GENES[0]])[0]) < len(GENES[0]) // 2  # BPE merges bases


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    BertForMaskedLM(BertConfig(vocab_size=10, **SMALL)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="cannot infer a tokenizer"):
        load_dna_encoder(tmp_path)


@pytest.mark.parametrize("name", ["zhihan1996/DNA_bert_6", "InstaDeepAI/nucleotide-transformer-2.5b-multi-species"])
def test_hub_names_are_refused(name):
    with pytest.raises(FileNotFoundError, match="Hub downloads are not available"):
        load_dna_encoder(name)


def test_kmer_names():
    assert load_dna_encoder("kmer").hidden_size == 4096
    enc = load_dna_encoder("kmer:5:canonical")
    assert (enc.hidden_size, enc.poolings, enc.max_tokens) == (512, ("spectrum",), None)
    for bad in ["kmer:x", "kmer:0", "kmer:4:sorted"]:
        with pytest.raises(ValueError, match="k-mer encoder name"):
            load_dna_encoder(bad)


def _reference_pool(hidden, keep, method):
    rows = [h[m] for h, m in zip(hidden.numpy(), keep.numpy().astype(bool), strict=True)]
    fn = {"mean": np.mean, "max": np.max, "min": np.min}[method]
    return np.stack([fn(r, axis=0) for r in rows])


@pytest.mark.parametrize("method", ["min", "max", "mean"])
def test_pool_ignores_padding_and_special_tokens(method):
    torch.manual_seed(0)
    hidden = torch.randn(3, 7, 5)
    attention = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0]])
    special = torch.zeros_like(attention, dtype=torch.bool)
    special[:, 0] = True
    special[0, 6], special[1, 3], special[2, 2] = True, True, True
    keep = attention.bool() & ~special
    out = pool(hidden, attention, method, special)
    np.testing.assert_allclose(out.numpy(), _reference_pool(hidden, keep, method), rtol=1e-6)
    garbage = hidden.clone()
    garbage[~keep] = 1e6  # whatever sits at padding and special positions never shows
    torch.testing.assert_close(pool(garbage, attention, method, special), out)
    # without the special-tokens mask every attended token counts, and only those
    np.testing.assert_allclose(pool(hidden, attention, method).numpy(),
                               _reference_pool(hidden, attention.bool(), method), rtol=1e-6)


def test_pool_cls_is_first_attended_token():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    torch.testing.assert_close(pool(hidden, right, "cls"), hidden[:, 0])
    torch.testing.assert_close(pool(hidden, left, "cls"), torch.stack([hidden[0, 1], hidden[1, 0]]))


def test_pool_rejects_rows_without_tokens():
    hidden = torch.zeros(1, 3, 2)
    with pytest.raises(ValueError, match="no non-special token"):
        pool(hidden, torch.tensor([[1, 1, 0]]), "mean", torch.tensor([[1, 1, 0]]))
    with pytest.raises(ValueError, match="unknown pooling"):
        pool(hidden, torch.ones(1, 3), "median")
