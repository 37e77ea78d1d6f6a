"""The Table 5 LLM harness: answer parsing and scoring, prompts in every input mode (leak-free except the
labelled paper mode), retrieval evidence, fitting DNA to a token budget, the resumable answer cache (also
sharded over processes) and the real SmolLM2 backend. The OpenAI-compatible backend against a real
llama-cpp-python server is in test_llm_server.py."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import polars as pl
import pytest
import torch
from fixtures.scripts import load_script
from hypothesis import given
from hypothesis import strategies as st

from biotalk.config import load_config
from biotalk.data import load_benchmark
from biotalk.ec import is_full_ec
from biotalk.llm import (
    GenerationSettings,
    HFChatBackend,
    ResponseCache,
    SearchSettings,
    build_conversations,
    build_prompts,
    cache_key,
    candidate_ecs,
    draw_examples,
    ecs_in_text,
    generate_cached,
    nearest_training_genes,
    parse_answer,
    parse_choice,
    score_answers,
)
from biotalk.llm.backends import (
    choose_device_map,
    load_chat_tokenizer,
    load_dtype,
    parameter_count,
    resolve_model,
)
from biotalk.llm.prompts import FEW_SHOT_TASK, MIN_NT, SYSTEM, ZERO_SHOT_TASK, example_pool
from biotalk.metrics import score_genes, score_predictions

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "llm" / "mini.yaml"
SHORT = GenerationSettings(max_new_tokens=12)
COLUMNS = ["RecordId", "EC", "Sequence", "IsDuplicate", "Description", "DescriptionMasked", "EmblCdsId", "Protein"]
GENE_RE = re.compile(r"^Gene \((?:first (\d+) of )?(\d+) nt\): ([ACGTN]+)$")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


# ---------------------------------------------------------------- parsing and scoring


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("The EC number is 1.2.3.4.", "1.2.3.4"),
        ("EC 1.02.-.-", "1.2.-.-"),  # partial, normalised
        ("EC:3.5.1.n3", "3.5.1.n3"),
        ("(2.7.1.1), or maybe 2.7.1.2", "2.7.1.1"),  # the first one
        ("1.-.3.4 is wrong, 4.1.1.15 is right", "4.1.1.15"),  # first *valid* one
        ("The enzyme has the EC number of 1000", None),
        ("1.2.3", None),
        ("version 1.2.3.4.5", None),
        ("__import__('os').getcwd()", None),
        ("", None),
    ],
)
def test_parse_answer(answer, expected):
    assert parse_answer(answer) == expected


def test_constrained_choice_takes_the_first_candidate_named():
    candidates = ["2.7.1.1", "3.1.1.1"]
    assert parse_choice("Not 1.1.1.1 but EC 3.1.1.1, or 2.7.1.1", candidates) == "3.1.1.1"
    assert parse_choice("1.1.1.1", candidates) is None  # off the list: no prediction
    assert parse_choice("2.7.-.-", candidates) is None and parse_choice("", []) is None


@given(
    levels=st.lists(st.integers(0, 150), min_size=1, max_size=4),
    before=st.text(alphabet="abcXYZ :,()\n", max_size=20),
    after=st.text(alphabet="abcXYZ :,()\n", max_size=20),
)
def test_parse_answer_finds_an_ec_anywhere_in_prose(levels, before, after):
    ec = ".".join([str(v) for v in levels] + ["-"] * (4 - len(levels)))
    assert parse_answer(f"{before} {ec} {after}") == ec


def test_llm_scores_are_the_shared_metric_block_plus_the_partial_rate():
    true, parsed = ["1.2.3.4", "2.7.1.1", "3.1.1.1"], ["1.2.3.4", "2.7.-.-", None]
    got = score_answers(true, parsed)
    assert got == {**score_predictions(true, parsed), "n_genes": 3, "partial": pytest.approx(1 / 3)}
    genes, identity = ["g1", "g1", "g2"], [0.4, 0.4, None]  # one gene with two ECs, answered twice
    assert score_answers(true, parsed, genes, identity) == {**score_genes(genes, true, parsed, identity),
                                                            "partial": pytest.approx(1 / 3)}
    assert (got["hP"], got["hR"]) == (1.0, 0.5)  # 6/6 predicted nodes right, 6/12 found
    assert got["accuracy"] == pytest.approx(1 / 3) and got["coverage"] == pytest.approx(2 / 3)  # coverage: answers with an EC
    assert got["level_accuracy"] == pytest.approx([2 / 3, 2 / 3, 1 / 3, 1 / 3])
    assert {k: score_answers(["1.2.3.4"], [None])[k] for k in ("hP", "hR", "hF")} == {"hP": 0.0, "hR": 0.0, "hF": 0.0}


# ---------------------------------------------------------------- prompts


@pytest.fixture(scope="module")
def splits(mini_benchmark):
    data = load_benchmark(mini_benchmark, "III")
    return {name: data[name].select_columns(COLUMNS).to_list() for name in ("train", "test1", "test2")}


@pytest.mark.parametrize("shots", [0, 3])
@pytest.mark.parametrize("split", ["test1", "test2"])
def test_no_prompt_shows_the_query_ec_or_description(splits, split, shots):
    queries, train = splits[split], splits["train"]
    train_ecs: dict[str, set[str]] = {}  # a gene with two ECs is two training records
    for r in train:
        train_ecs.setdefault(r["Sequence"][:150], set()).add(r["EC"])
    conversations = build_conversations(queries, train, shots, dna_max_nt=150, seed=0)
    assert len(conversations) == len(queries)
    for query, messages in zip(queries, conversations, strict=True):
        text = "\n".join(m["content"] for m in messages)
        assert query["EC"] not in ecs_in_text(messages[-1]["content"]), query["RecordId"]  # the query turn
        for field in ("Description", "DescriptionMasked"):
            assert query[field] and query[field] not in text
        # the only free text is ours; users show genes, assistants show example ECs
        assert messages[0] == {"role": "system", "content": f"{SYSTEM}\n{FEW_SHOT_TASK if shots else ZERO_SHOT_TASK}"}
        assert [m["role"] for m in messages[1:]] == ["user", "assistant"] * shots + ["user"]
        cut, length, dna = GENE_RE.match(messages[-1]["content"]).groups()
        assert dna == query["Sequence"][:150] and int(length) == len(query["Sequence"])
        assert (cut is not None) == (len(query["Sequence"]) > 150)
        genes = [GENE_RE.match(m["content"]).group(3) for m in messages[1:-1:2]]
        shown = [m["content"] for m in messages[2:-1:2]]
        assert all(ec in train_ecs[gene] for gene, ec in zip(genes, shown, strict=True))  # real training pairs
        assert len(set(shown)) == shots  # 3 really means 3, all distinct


def test_examples_depend_only_on_seed_and_record(splits):
    queries, train = splits["test1"][:10], splits["train"]
    full = build_conversations(queries, train, 3, 150, seed=0)
    reordered = build_conversations(queries[::-1][:5], train[::-1], 3, 150, seed=0)
    assert reordered == full[::-1][:5]  # neither limit, query order nor file order changes a prompt
    assert build_conversations(queries, train, 3, 150, seed=1) != full  # the seed does
    # the examples never look at the query's label: give each query its first example's EC, same prompts
    relabelled = [dict(q, EC=messages[2]["content"]) for q, messages in zip(queries, full, strict=True)]
    assert build_conversations(relabelled, train, 3, 150, seed=0) == full
    two_ecs = [r for r in train if r["EC"] in {train[0]["EC"], next(r["EC"] for r in train if r["EC"] != train[0]["EC"])}]
    with pytest.raises(ValueError, match="has only 2 ECs, 3 examples needed"):
        draw_examples(two_ecs, queries[0]["RecordId"], 3, 0)


@pytest.fixture(scope="module")
def evidence(splits):
    """Nearest training genes (MMseqs2) of every Test-I record and every possible example."""
    search, pool = SearchSettings(), example_pool(splits["train"])
    found = {}
    for rows in (splits["test1"], pool):
        found |= {r["RecordId"]: n for r, n in zip(rows, nearest_training_genes(rows, splits["train"], 3, search), strict=True)}
    return found


@pytest.mark.parametrize("shots", [0, 3])
def test_neighbour_evidence_is_training_genes_only(splits, evidence, shots):
    queries, train = splits["test1"], splits["train"]
    masked = {r["RecordId"]: r["DescriptionMasked"] for r in train}
    prompts = build_prompts(queries, train, shots, 150, 0, "dna+neighbours", "random", evidence, SearchSettings())
    assert any(evidence[q["RecordId"]] for q in queries) and not all(evidence[q["RecordId"]] for q in queries)
    for query, prompt in zip(queries, prompts, strict=True):
        text = "\n".join(m["content"] for m in prompt.messages)
        ours = text
        for record_id in [query["RecordId"], *prompt.examples]:  # a neighbour of the same EC may have the same text
            for n in evidence[record_id]:
                ours = ours.replace(n.description, "")
        assert query["Description"] not in text and query["DescriptionMasked"] not in ours
        assert ecs_in_text(text) <= {r["EC"] for r in train}  # every EC shown is a training label
        assert prompt.candidates == candidate_ecs(evidence[query["RecordId"]])
        assert len(prompt.examples) == shots and len(prompt.messages) == 2 + 2 * shots
        for n in evidence[query["RecordId"]]:  # real training genes with their own masked text, never the query
            assert n.gene != query["EmblCdsId"] and n.description == masked[n.record_ids[0]] in text


def test_paper_mode_is_the_leaky_single_message_with_two_examples(splits):
    queries, train = splits["test2"][:20], splits["train"]
    for shots, shown in ((0, 0), (3, 2)):
        for query, prompt in zip(queries, build_prompts(queries, train, shots, 150, 0, "paper"), strict=True):
            (message,) = prompt.messages
            assert message["role"] == "user" and query["Description"] in message["content"]
            assert query["EC"] in ecs_in_text(message["content"])  # the label is in the prompt: leaky, as labelled
            assert len(prompt.examples) == shown and message["content"].count("Text description:") == shown + 1


def test_nearest_examples_are_exactly_k_and_never_read_the_label(splits, evidence):
    queries, train = splits["test1"], splits["train"]
    args = (train, 3, 150, 0, "dna", "nearest", None, None, {k: v[:3] for k, v in evidence.items()})
    prompts = build_prompts(queries, *args)
    assert all(len(p.examples) == 3 == len(set(p.examples)) for p in prompts)
    for query, prompt in zip(queries, prompts, strict=True):
        found = [n.record_ids[0] for n in evidence[query["RecordId"]]]
        assert prompt.examples[: len(found)] == found  # nearest first, then filled at random
    relabelled = [dict(q, EC="9.9.9.9") for q in queries]
    assert [p.messages for p in build_prompts(relabelled, *args)] == [p.messages for p in prompts]


def test_select_queries_is_a_stable_prefix(splits):
    script = load_script("prompt_llm.py")
    split = [dict(r, IsDuplicate=False) for r in splits["test2"]]
    assert script.select_queries(split, 7, 0) == script.select_queries(split, 20, 0)[:7]
    assert script.select_queries(split, 7, 0) != script.select_queries(split, 7, 1)
    assert len(script.select_queries(split, 0, 0)) == len(split)


# ---------------------------------------------------------------- cache (no model needed)


def test_cache_survives_a_line_cut_short_by_a_kill(tmp_path):
    path = tmp_path / "responses.jsonl"
    cache = ResponseCache(path)
    cache.add([{"key": "a", "response": "1.1.1.1"}, {"key": "b", "response": "no idea"}])
    with path.open("a") as f:
        f.write('{"key": "c", "resp')  # killed mid-write
    reread = ResponseCache(path)
    assert (len(reread), reread.skipped, reread["b"]) == (2, 1, "no idea")
    reread.add([{"key": "d", "response": "2.7.-.-"}])
    again = ResponseCache(path)
    assert (len(again), again.skipped, again["d"]) == (3, 1, "2.7.-.-")
    key = cache_key("m", "p", SHORT)
    assert key != cache_key("m", "p", GenerationSettings(max_new_tokens=13)) != cache_key("m2", "p", SHORT)


def test_shard_parts_are_read_and_merged_once(tmp_path):
    path = tmp_path / "responses.jsonl"
    ResponseCache(path).add([{"key": "a", "response": "1.1.1.1"}])
    ResponseCache(path, part=0).add([{"key": "b", "response": "x", "rank": 0}])
    ResponseCache(path, part=1).add([{"key": "c", "response": "y", "rank": 1}, {"key": "a", "response": "1.1.1.1"}])
    reader = ResponseCache(path)
    assert {k: reader[k] for k in "abc"} == {"a": "1.1.1.1", "b": "x", "c": "y"}
    assert reader.merge_parts() == 2 and not reader.parts()  # "a" was already there
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["key"] for e in lines] == ["a", "b", "c"] and ResponseCache(path).responses == reader.responses


# ---------------------------------------------------------------- GPU code paths that run on a CPU


def test_dtype_and_device_map_rules():
    assert load_dtype("auto", torch.device("cuda")) == torch.bfloat16 and load_dtype("auto", torch.device("cpu")) == torch.float32
    assert load_dtype("float16", torch.device("cpu")) == torch.float16
    gib = 2**30
    assert choose_device_map(16 * gib, []) is None  # no GPU
    assert choose_device_map(16 * gib, [80 * gib] * 8, processes=8) is None  # 8B bf16: one copy per GPU
    assert choose_device_map(140 * gib, [80 * gib] * 8) == "auto"  # 70B bf16: spread over the node
    with pytest.raises(ValueError, match="run one process"):
        choose_device_map(140 * gib, [80 * gib] * 8, processes=8)
    path, gguf = resolve_model("smollm2")
    assert 130e6 < parameter_count(path, gguf) < 140e6  # SmolLM2-135M, read from the GGUF header


# ---------------------------------------------------------------- the real SmolLM2-135M-Instruct


@pytest.fixture(scope="module")
def smollm2():
    """The real GGUF model, loaded once (~25 s): every test below generates a dozen tokens or so."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield HFChatBackend("smollm2")
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_batched_left_padded_generation_matches_one_at_a_time(smollm2, splits):
    queries = [splits["test1"][i] for i in (0, 1, 2)]
    prompts = [smollm2.render(c) for c in build_conversations(queries, [], 0, 150, 0)]
    prompts[1] = prompts[1].replace("Gene (", "Here is the gene. Gene (")  # unequal lengths: padding matters
    assert smollm2.tokenizer.padding_side == "left"
    batched = smollm2.generate(prompts, SHORT)
    assert batched == [smollm2.generate([p], SHORT)[0] for p in prompts]
    assert all(isinstance(a, str) and a and "<|im_end|>" not in a for a in batched)


@pytest.mark.slow
def test_resume_generates_only_the_missing_answers(smollm2, splits, tmp_path):
    conversations = build_conversations(splits["test2"][:5], splits["train"], 3, 60, seed=0)
    prompts = [smollm2.render(c) for c in conversations]
    cache_path = tmp_path / "responses.jsonl"
    start = smollm2.n_generated
    first, generated = generate_cached(smollm2, prompts[:3], SHORT, ResponseCache(cache_path), batch_size=2)
    assert generated == 3 and smollm2.n_generated - start == 3
    resumed, generated = generate_cached(smollm2, prompts, SHORT, ResponseCache(cache_path), batch_size=2)
    assert generated == 2 and smollm2.n_generated - start == 5  # only the 2 new records
    assert resumed[:3] == first
    again, generated = generate_cached(smollm2, prompts, SHORT, ResponseCache(cache_path), batch_size=2)
    assert (again, generated, smollm2.n_generated - start) == (resumed, 0, 5)


@pytest.mark.slow
def test_prompt_llm_end_to_end_scores_what_it_writes(smollm2, mini_benchmark, tmp_path):
    script = load_script("prompt_llm.py")
    overrides = [f"data={mini_benchmark}", "split=test1", "shots=3", "limit=3", "dna_max_nt=60",
                 "generation.max_new_tokens=12", f"cache={tmp_path / 'cache.jsonl'}"]
    metrics = script.main(load_config(script.LLMConfig, CONFIG, [*overrides, f"out={tmp_path / 'a'}"]), smollm2)
    preds = pl.read_csv(tmp_path / "a" / "predictions.tsv", separator="\t", infer_schema=False)
    assert preds.columns == ["id", "true_ec", "answer", "parsed_ec", "dna_nt_shown", "dna_nt", "candidates",
                             "examples"] and len(preds) == 3
    assert all(preds["dna_nt_shown"] <= 60) and all(len(e.split(",")) == 3 for e in preds["examples"])
    parsed = [parse_answer(a or "") for a in preds["answer"]]
    assert parsed == preds["parsed_ec"].to_list()
    assert all(p is None or is_full_ec(p) or p.endswith("-") for p in parsed)
    on_disk = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    recomputed = score_answers(preds["true_ec"].to_list(), parsed)
    assert {k: on_disk[k] for k in recomputed} == json.loads(json.dumps(recomputed))
    assert (on_disk["generated"], on_disk["n"], on_disk["shots"]) == (3, 3, 3)
    prompts = [json.loads(line) for line in (tmp_path / "a" / "prompts.jsonl").read_text().splitlines()]
    for row, prompt in zip(preds.iter_rows(named=True), prompts, strict=True):
        assert row["id"] == prompt["id"] and row["true_ec"] not in ecs_in_text(prompt["prompt"])
    # a rerun reads every answer from the cache and writes the same predictions
    rerun = script.main(load_config(script.LLMConfig, CONFIG, [*overrides, f"out={tmp_path / 'b'}"]), smollm2)
    assert (rerun["generated"], rerun["from_cache"]) == (0, 3)
    assert (tmp_path / "b" / "predictions.tsv").read_bytes() == (tmp_path / "a" / "predictions.tsv").read_bytes()


# ---------------------------------------------------------------- a tiny random chat model (code paths only)


@pytest.fixture(scope="session")
def tiny_chat(tmp_path_factory) -> Path:
    """A seeded random 2-layer Llama with SmolLM2's tokenizer and chat template: loads in a second; its
    answers are noise, for code paths only."""
    from transformers import LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("tiny_chat")
    tok = load_chat_tokenizer("smollm2")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.slow
def test_cache_is_keyed_by_dtype_and_device(tiny_chat):
    fp32, bf16 = HFChatBackend(str(tiny_chat), "cpu", "auto"), HFChatBackend(str(tiny_chat), "cpu", "bfloat16")
    assert fp32.cache_id.endswith("|float32|cpu") and bf16.cache_id.endswith("|bfloat16|cpu")
    assert next(bf16.model.parameters()).dtype == torch.bfloat16  # loaded in bf16, not cast after an fp32 load
    assert cache_key(fp32.cache_id, "p", SHORT) != cache_key(bf16.cache_id, "p", SHORT)


@pytest.mark.slow
def test_dna_is_cut_to_the_token_budget_and_the_cut_recorded(tiny_chat, splits):
    backend, queries = HFChatBackend(str(tiny_chat), "cpu"), splits["test1"][:4]
    whole = build_prompts(queries, [], 0, 0, 0, count=backend.count_tokens, budget=None)
    assert all(p.nt_cap == 0 and not p.truncated for p in whole)
    budget = 250  # the zero-shot instructions take ~130 tokens; genes of ~1 kb need ~550 more
    for query, prompt in zip(queries, build_prompts(queries, [], 0, 0, 0, count=backend.count_tokens, budget=budget), strict=True):
        cut, length, dna = GENE_RE.match(prompt.messages[-1]["content"]).groups()
        assert prompt.truncated and int(cut) == prompt.nt_cap and int(length) == len(query["Sequence"]) == prompt.query_nt
        assert backend.count_tokens(prompt.messages) <= budget  # fits ...
        longer = build_prompts([query], [], 0, prompt.nt_cap + 1, 0)[0].messages
        assert backend.count_tokens(longer) > budget  # ... and is the longest cut that does
    with pytest.raises(ValueError, match=f"{MIN_NT} nt per gene"):
        build_prompts(queries, [], 0, 0, 0, count=backend.count_tokens, budget=40)


@pytest.mark.slow
def test_prompts_sharded_over_two_processes_are_each_generated_once(tiny_chat, mini_benchmark, tmp_path):
    from test_distributed import ddp, launch

    common = ["--config", str(CONFIG), f"data={mini_benchmark}", f"model={tiny_chat}", "limit=5", "shots=3",
              "dna_max_nt=40", "batch_size=1", "generation.max_new_tokens=4", "threads=1"]
    launch([*ddp(), "prompt_llm.py", *common, f"cache={tmp_path / 'two.jsonl'}", f"out={tmp_path / 'two'}"])
    launch([sys.executable, "prompt_llm.py", *common, f"cache={tmp_path / 'one.jsonl'}", f"out={tmp_path / 'one'}"])
    entries = [json.loads(line) for line in (tmp_path / "two.jsonl").read_text().splitlines()]
    assert sorted(e["rank"] for e in entries) == [0, 0, 0, 1, 1]  # 5 prompts dealt 3 + 2, each asked once
    assert not list(tmp_path.glob("two.jsonl.part-*"))  # merged into the cache
    two, one = (pl.read_csv(tmp_path / d / "predictions.tsv", separator="\t") for d in ("two", "one"))
    assert two.equals(one)
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["generated"] == 5
