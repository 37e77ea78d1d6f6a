"""Genome regions, held-out fragments and LOLBERT pretraining (tiny model, real genomes)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from fixtures.scripts import load_script
from safetensors.torch import load_file
from transformers import AutoTokenizer, RobertaForMaskedLM

from biotalk.config import load_config
from biotalk.data.errors import InputError
from biotalk.data.fragments import reverse_complement
from biotalk.data.genomes import (
    Region,
    cut_out,
    draw_fragments,
    read_genomes,
    split_regions,
)
from biotalk.data.heldout_genes import Locus, heldout_loci
from biotalk.data.pretrain_batches import build_corpus
from biotalk.models.lolbert import VOCAB

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw"
TINY = [
    "model.num_hidden_layers=1", "model.hidden_size=32", "model.num_attention_heads=2",
    "model.intermediate_size=64", "batch_size=8", "max_nt=80", "eval_fragments=24", "eval_batch_size=16",
    "steps=6", "warmup_steps=2", "log_every=1", "eval_every=3", "save_every=2", "keep_checkpoints=2", "threads=1",
    "context_flank=0", "heldout_benchmark=null",  # no built benchmark on a fresh clone; the cut has its own tests
]  # fmt: skip


pretrain = load_script("scripts/pretrain_lolbert.py")


@pytest.fixture(scope="module")
def genomes():
    regions, skipped = read_genomes(RAW / "genbank")
    return regions


@pytest.fixture(scope="module")
def train(genomes):
    return split_regions(genomes, ["Streptococcus_pyogenes"], 0.0)[0]


@pytest.fixture(scope="module")
def cds_corpus(train):
    return build_corpus("cds", train, RAW / "genbank")


def test_read_genomes_gives_whole_records(genomes):
    sources = {g.source for g in genomes}
    assert len(sources) == 15
    k12 = [g for g in genomes if g.source.startswith("Escherichia_coli_K12")]
    assert len(k12) == 1 and len(k12[0]) == 4_641_652 and k12[0].sequence.startswith("AGCTTTTCATTCTGACTGCA")
    assert all(g.start == 0 and len(g.sequence) == len(g) for g in genomes)


def test_read_genomes_rejects_an_empty_directory(tmp_path):
    with pytest.raises(InputError, match=str(tmp_path)):
        read_genomes(tmp_path)


def test_split_holds_out_named_genomes_and_tails(genomes):
    train, held = split_regions(genomes, ["Streptococcus_pyogenes"], 0.05)
    assert not any("Streptococcus" in r.source for r in train)
    assert [r for r in held if "Streptococcus" in r.source][0].end == 1_852_441
    whole = {(g.source, g.record): g for g in genomes}
    for r in train + held:
        assert r.sequence == whole[(r.source, r.record)].sequence[r.start : r.end]
    tails = {(r.source, r.record): r for r in held if "Streptococcus" not in r.source}
    for r in train:  # each training region ends where its held-out tail begins
        assert r.end == tails[(r.source, r.record)].start
    with pytest.raises(InputError, match="Nonexistent"):
        split_regions(genomes, ["Nonexistent"], 0.0)


def test_fragments_lie_inside_their_region_and_are_seeded(genomes):
    train, held = split_regions(genomes, ["Streptococcus_pyogenes"], 0.05)
    frags = draw_fragments(held, 300, np.random.default_rng(3))
    again = draw_fragments(held, 300, np.random.default_rng(3))
    assert [f for _, f in frags] == [f for _, f in again]
    assert any(f.reverse for _, f in frags) and not all(f.reverse for _, f in frags)
    train_spans = {(r.source, r.record): (r.start, r.end) for r in train}
    for region, frag in frags:
        assert region.start <= frag.start and frag.start + frag.length <= region.end
        forward = region.sequence[frag.start - region.start : frag.start - region.start + frag.length]
        assert frag.sequence == (reverse_complement(forward) if frag.reverse else forward)
        lo, hi = train_spans.get((region.source, region.record), (0, 0))
        assert frag.start >= hi or frag.start + frag.length <= lo  # disjoint from training


def test_cut_out_removes_spans_and_keeps_coordinates(genomes):
    k12 = [g for g in genomes if g.source.startswith("Escherichia_coli_K12")]
    src, rec = k12[0].source, k12[0].record
    loci = [Locus(src, rec, 1000, 2000), Locus(src, rec, 1500, 2500), Locus(src, rec, 10_000, 10_100),
            Locus(src, rec, 4_641_600, 4_641_652), Locus("other.gbk", rec, 0, 4_000_000)]
    pieces, cut = cut_out(k12, loci)
    assert [(p.start, p.end) for p in pieces] == [(0, 1000), (2500, 10_000), (10_100, 4_641_600)]
    assert cut == 1500 + 100 + 52
    assert all(p.sequence == k12[0].sequence[p.start : p.end] for p in pieces)
    short, cut = cut_out(k12, [Locus(src, rec, 200, 4_641_652)])  # a 200-nt piece is too short to read from
    assert short == [] and cut == 4_641_652


def _in_any(seq: str, text: str) -> bool:
    return seq in text or reverse_complement(seq) in text


def test_pretraining_dna_holds_no_evaluation_gene(train, cds_corpus, mini_benchmark):
    """With the benchmark's held-out loci cut out, no Test-I/Test-II/valid2 gene occurs in the training DNA on
    either strand, nor among the CDS or intergenic pieces the cds source reads; without the cut most of them do
    (so the check can fail)."""
    splits = ["test1", "test2", "valid2"]
    loci = heldout_loci(RAW / "genbank", mini_benchmark, splits, 0.5, threads=2, cache_dir=ROOT / "cache" / "clusters")
    genes = sorted({s for split in splits for s in pl.read_parquet(mini_benchmark / "Test" / f"{split}.parquet")["Sequence"]})
    sample = [genes[i] for i in np.random.default_rng(0).choice(len(genes), 80, replace=False)]
    before = "|".join(r.sequence for r in train)
    cut, removed = cut_out(train, loci)
    after = "|".join(r.sequence for r in cut)
    assert len(loci) > len(genes) and removed > sum(map(len, sample))  # homologues in sibling strains go too
    assert sum(_in_any(g, before) for g in sample) > 40
    assert not any(_in_any(g, after) for g in sample)

    uncut_cds = "|".join(c.sequence for c in cds_corpus.cds)
    assert sum(_in_any(g, uncut_cds) for g in sample) > 40
    corpus = build_corpus("cds", cut, RAW / "genbank")
    read = "|".join([c.sequence for c in corpus.cds] + [r.sequence for r in corpus.regions])
    assert not any(_in_any(g, read) for g in sample)
    assert 0.5 * len(cds_corpus.cds) < len(corpus.cds) < len(cds_corpus.cds)
    windows = corpus.draw(200, np.random.default_rng(1), 0.5)
    assert all(_in_any(w, after) for w in windows)  # every window drawn is training DNA after the cut


def test_heldout_set_is_fixed_and_fully_masked(genomes):
    """One held-out protocol for every recipe: the same batches whatever the source, masking and packing."""
    cfg = load_config(pretrain.PretrainConfig, ROOT / "configs/lolbert/mini.yaml", TINY)
    other = load_config(pretrain.PretrainConfig, ROOT / "configs/lolbert/mini.yaml",
                        [*TINY, "source=cds", "masking=span", "packing=true"])  # fmt: skip
    _, held = split_regions(genomes, cfg.heldout_genomes, cfg.heldout_fraction)
    tok = pretrain.build_lolbert_tokenizer()
    first, second = pretrain.eval_set(tok, held, cfg), pretrain.eval_set(tok, held, other)
    assert len(first) == 2
    for a, b in zip(first, second, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
        target = a["labels"] != -100
        assert target.sum() > 0 and (a["input_ids"][target] == VOCAB.index("M")).all()


def test_a_context_count_model_beats_the_majority_base_on_held_out_dna(genomes):
    """The floor LOLBERT must beat to have learnt local context: counted on the first 1 Mb of S. pyogenes, a
    3-neighbour count model predicts masked bases of the rest of that genome better than its base composition."""
    cfg = load_config(pretrain.PretrainConfig, ROOT / "configs/lolbert/mini.yaml", [*TINY, "eval_fragments=256"])
    genome = next(r for r in genomes if r.source.startswith("Streptococcus_pyogenes"))
    first = [Region(genome.source, genome.record, 0, 1_000_000, genome.sequence[:1_000_000])]
    rest = [Region(genome.source, genome.record, 1_000_000, genome.end, genome.sequence[1_000_000:])]
    batches = pretrain.eval_set(pretrain.build_lolbert_tokenizer(), rest, cfg)
    floor = pretrain.context_floor(first, batches, 3)
    assert pretrain.majority_base_accuracy(batches) + 0.01 < floor < 0.5


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


@pytest.mark.parametrize("recipe", [[], ["source=cds", "masking=codon", "packing=true"], ["masking=span"]])
def test_pretrain_checkpoints_and_resume_reproduce_the_uninterrupted_run(tmp_path, recipe):
    cfg_a = load_config(pretrain.PretrainConfig, ROOT / "configs/lolbert/mini.yaml", [*TINY, *recipe, f"out={tmp_path / 'a'}"])
    final_a = pretrain.main(cfg_a)
    ckpts = sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir())
    assert ckpts == ["step_4", "step_6"]  # keep_checkpoints=2 pruned step_2
    assert json.loads((tmp_path / "a" / "checkpoints" / "step_6" / "state.json").read_text()) == {"step": 6}
    log_a = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log_a] == [1, 2, 3, 4, 5, 6]
    assert {"heldout_loss", "heldout_acc"} <= set(log_a[2]) and "heldout_acc" not in log_a[1]
    assert all(np.isfinite(r["train_loss"]) for r in log_a)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["heldout_acc"] == log_a[-1]["heldout_acc"] and summary["resumed_from"] == 0
    assert 0.25 < summary["heldout_majority_base_acc"] < 0.5
    assert (tmp_path / "a" / "curve.png").read_bytes()[:4] == b"\x89PNG"

    # An interrupted run: it got to step 5 (logged) but its last checkpoint is step_4.
    b = tmp_path / "b"
    (b / "checkpoints").mkdir(parents=True)
    shutil.copytree(tmp_path / "a" / "checkpoints" / "step_4", b / "checkpoints" / "step_4")
    (b / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log_a[:5]))
    cfg_b = load_config(pretrain.PretrainConfig, ROOT / "configs/lolbert/mini.yaml", [*TINY, *recipe, f"out={b}", "resume=latest"])
    final_b = pretrain.main(cfg_b)
    log_b = [json.loads(line) for line in (b / "train_log.jsonl").read_text().splitlines()]
    assert log_b == log_a
    wa, wb = _weights(final_a), _weights(final_b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)

    model = RobertaForMaskedLM.from_pretrained(final_a)
    tok = AutoTokenizer.from_pretrained(final_a)
    assert model.config.vocab_size == 9 and model.config.num_hidden_layers == 1
    out = model(**tok(["ACGTACGT"], return_tensors="pt"))
    assert out.logits.shape == (1, 10, 9)


@pytest.mark.slow
def test_accelerate_launch_cli(tmp_path):
    out = tmp_path / "cli"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
        str(ROOT / "scripts" / "pretrain_lolbert.py"), "--config", str(ROOT / "configs/lolbert/mini.yaml"),
        *TINY, "steps=2", f"out={out}",
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "final" / "model.safetensors").is_file() and (out / "checkpoints" / "step_2").is_dir()
    bad = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "pretrain_lolbert.py"), "--config", str(ROOT / "configs/lolbert/mini.yaml"), "nope=1"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "nope" in bad.stderr
