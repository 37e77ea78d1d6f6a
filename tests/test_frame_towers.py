"""Frame-aware DNA towers (biotalk.models.frame) on real genes of the mini benchmark: the amino-acid spectrum is
the spectrum of the builder's checked translation, synonymous codons change nothing an ``aa`` tower sees, the
CNN tower learns inside a CLIP model and both round-trip through ``save_pretrained``."""

from collections import Counter

import polars as pl
import pytest
import torch

from biotalk.losses import ClipLoss
from biotalk.models.clip import BioTalkClipModel, build_clip_model
from biotalk.models.encoders import is_named_encoder, load_dna_encoder
from biotalk.models.frame import AMINO_ACIDS, build_codon_tokenizer

TEXTS = ["Catalyses the oxidation of an alcohol.", "A kinase acting on sugars.", "Hydrolyses peptide bonds.",
         "Transfers a methyl group to DNA."]


@pytest.fixture(scope="module")
def genes(mini_benchmark) -> pl.DataFrame:
    """Real training genes, selenoproteins (U: TGA read through by /transl_except) left out."""
    train = pl.read_parquet(mini_benchmark / "Benchmark-I" / "Train.parquet")
    return train.filter(~pl.col("Protein").str.contains("U")).unique("Sequence", keep="first").sort("RecordId")


def _ids(encoder, seqs):
    enc = encoder.tokenize(seqs)
    return enc["input_ids"], enc["attention_mask"]


def _spectrum(protein: str, k: int) -> torch.Tensor:
    counts = Counter(protein[i : i + k] for i in range(len(protein) - k + 1))
    vector = torch.zeros(len(AMINO_ACIDS) ** k)
    for kmer, n in counts.items():
        vector[sum(AMINO_ACIDS.index(a) * len(AMINO_ACIDS) ** (k - 1 - j) for j, a in enumerate(kmer))] = n
    return vector / vector.sum()


def _synonymous(dna: str) -> str:
    """Every inner codon replaced by another codon of the same amino acid where there is one."""
    from Bio.Data.CodonTable import unambiguous_dna_by_id

    table = unambiguous_dna_by_id[11].forward_table
    codons = [dna[i : i + 3] for i in range(0, len(dna), 3)]
    swap = {c: next((o for o in sorted(table) if table[o] == table[c] and o != c), c) for c in table}
    return codons[0] + "".join(swap.get(c, c) for c in codons[1:-1]) + codons[-1]


def test_codon_tokenizer_reads_in_frame_and_marks_partial_or_unknown_codons():
    tok = build_codon_tokenizer()
    ids = tok("ATGNCAGGTAC", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["ATG", "[UNK]", "GGT", "[UNK]"]  # NCA and the trailing AC


def test_aa_spectrum_is_the_spectrum_of_the_builders_translation(genes):
    rows = genes.head(60)
    encoder = load_dna_encoder("aakmer:1,2,3")
    assert encoder.hidden_size == 20 + 400 + 8000
    with torch.no_grad():
        feats = encoder(*_ids(encoder, rows["Sequence"].to_list()))
    for i, protein in enumerate(rows["Protein"].to_list()):
        protein = protein.rstrip("*")
        expected = torch.cat([_spectrum(protein, k) for k in (1, 2, 3)])
        assert torch.allclose(feats[i], expected, atol=1e-6), rows["RecordId"][i]


def test_synonymous_codons_change_aa_towers_but_not_dna_towers(genes):
    dna = genes["Sequence"][0]
    recoded = _synonymous(dna)
    assert recoded != dna
    with torch.no_grad():
        for name, same in (("aakmer:2,3:l2", True), ("cnn:aa:dim=16:blocks=2", True), ("kmer:6", False),
                           ("cnn:codon:dim=16:blocks=2", False)):
            encoder = load_dna_encoder(name).eval()
            a, b = (encoder.embed_batch(*_ids(encoder, [s]), None, [encoder.poolings[0]])[encoder.poolings[0]]
                    for s in (dna, recoded))
            assert torch.allclose(a, b, atol=1e-5) == same, name


def test_cnn_states_do_not_depend_on_batch_padding(genes):
    torch.manual_seed(0)
    encoder = load_dna_encoder("cnn:aa:dim=16:blocks=3:kernel=3").eval()
    seqs = genes["Sequence"].head(4).to_list()
    with torch.no_grad():
        batch = encoder(*_ids(encoder, seqs))
        for i, seq in enumerate(seqs):
            alone = encoder(*_ids(encoder, [seq]))[0]
            assert torch.allclose(batch[i, : len(alone)], alone, atol=1e-5)
            assert not batch[i, len(alone) :].any()


@pytest.mark.parametrize("name", ["aakmer:4", "aakmer:1,1", "aakmer:x", "aakmer:1:l1", "cnn", "cnn:dna",
                                  "cnn:aa:kernel=4", "cnn:aa:width=8", "cnn:aa:dim=x"])
def test_bad_frame_tower_names_are_rejected(name):
    assert is_named_encoder(name)
    with pytest.raises(ValueError, match="encoder name"):
        load_dna_encoder(name)


def test_cnn_tower_learns_in_clip_and_round_trips(genes, tmp_path):
    """The tower's own weights get gradients and the contrastive loss falls; saved and reloaded, the model
    embeds the same genes identically from its dna_encoder/ folder."""
    torch.manual_seed(0)
    model = build_clip_model("cnn:aa:dim=16:blocks=2:dropout=0", projection_dim=8, dna_head="mlp", head_hidden=16,
                             window_nt=0, dna_pooling="max")
    seqs = [s[:450] for s in genes["Sequence"].head(len(TEXTS))]  # gene starts, in frame: a fast test
    texts, labels = model.embed_texts(TEXTS), torch.arange(len(TEXTS))
    enc = model.dna_encoder.tokenize(seqs)
    batch = {k: enc[k] for k in ("input_ids", "attention_mask", "special_tokens_mask")}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    before = model.dna_encoder.model.blocks[0].conv.weight.detach().clone()
    losses = []
    model.train()
    for _ in range(15):
        out = model(**batch, text_features=texts)
        loss = ClipLoss()(out.dna_embeds, out.text_embeds, out.logit_scale, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert not torch.equal(before, model.dna_encoder.model.blocks[0].conv.weight)
    model.eval()
    model.save_pretrained(tmp_path / "cnn")
    assert (tmp_path / "cnn" / "dna_encoder" / "model.safetensors").is_file()
    loaded = BioTalkClipModel.from_pretrained(tmp_path / "cnn")
    assert torch.allclose(model.get_dna_features(seqs), loaded.get_dna_features(seqs), atol=1e-6)


def test_aa_spectrum_tower_is_stored_by_name_and_reloads(genes, tmp_path):
    torch.manual_seed(0)
    model = build_clip_model("aakmer:1,2", projection_dim=8, dna_head="mlp", head_hidden=16, window_nt=0).eval()
    model.save_pretrained(tmp_path / "aa")
    loaded = BioTalkClipModel.from_pretrained(tmp_path / "aa")
    assert loaded.config.dna_encoder == "aakmer:1,2"
    seqs = genes["Sequence"].head(3).to_list()
    assert torch.allclose(model.get_dna_features(seqs), loaded.get_dna_features(seqs), atol=1e-6)
    model.dna_encoder.save_pretrained(tmp_path / "tower")
    assert load_dna_encoder(tmp_path / "tower").name == "aakmer:1,2"
