"""Every script and trainer fails cleanly on a bad argument.

Each case runs an entry point as a real subprocess, the way a user does, and checks: exit code 2, one
line ``error: ...`` on stderr naming the bad argument (its key, or the path given), no traceback, nothing
on stdout and no output written. Every case fails before the real work starts, so the file stays fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MISSING = "{tmp}/missing"  # a path that does not exist; {tmp} is the case's own temporary folder
MINI = "{mini}"  # the mini benchmark, built once per session
BUILD_HINT = "scripts/build_benchmarks.py"  # a missing benchmark names the command that builds it

# Overrides that send every output of a script into the case's temporary folder.
SANDBOX = {
    "train_clip.py": ["--config", "configs/clip/mini.yaml", "out={tmp}/out", "cache_dir={tmp}/cache"],
    "train_classifier.py": ["--config", "configs/classifier/mini.yaml", "out={tmp}/out", "cache_dir={tmp}/cache"],
    "prompt_llm.py": ["--config", "configs/llm/mini.yaml", "out={tmp}/out", "cache={tmp}/cache.jsonl"],
    "scripts/build_benchmarks.py": ["--config", "configs/data/mini.yaml", "out={tmp}/out", "cache_dir={tmp}/cache"],
    "scripts/retrieve.py": ["--config", "configs/clip/retrieve_mini.yaml", "out={tmp}/out.json",
                            "cache_dir={tmp}/cache"],
    "scripts/embed.py": ["out={tmp}/out", "cache_dir={tmp}/cache"],
    "scripts/eval_embeddings.py": ["--config", "configs/eval/mini.yaml", "out={tmp}/out", "cache_dir={tmp}/cache"],
    "scripts/table4.py": ["--config", "configs/classifier/table4_mini.yaml", "out={tmp}/out", "cache_dir={tmp}/cache"],
    "scripts/table5.py": ["--config", "configs/llm/table5_mini.yaml", "out={tmp}/out", "llm.cache={tmp}/cache.jsonl"],
    "scripts/tune_classifier.py": ["--config", "configs/classifier/tune_mini.yaml", "out={tmp}/out",
                                   "cache_dir={tmp}/cache"],
    "scripts/pretrain_lolbert.py": ["--config", "configs/lolbert/mini.yaml", "out={tmp}/out"],
    "scripts/finetune_lolbert.py": ["--config", "configs/lolbert/finetune_mini.yaml", "out={tmp}/out"],
    "scripts/tune_zero_shot.py": ["out={tmp}/out", "cache_dir={tmp}/cache"],
    "scripts/demo.py": ["benchmark_out={tmp}/bench", "clip_out={tmp}/clip"],
    "scripts/reproduce.py": ["out={tmp}/out", "benchmark={tmp}/bench"],
    "scripts/audit_benchmark.py": ["out={tmp}/report.json"],
    "scripts/index_genes.py": ["--config", "configs/app/index_mini.yaml", "out={tmp}/index", "cache_dir={tmp}/cache"],
    "scripts/app.py": ["--config", "configs/app/mini.yaml", "index={tmp}/index"],
    "scripts/fetch_sources.py": ["--config", "configs/data/sources.yaml", "out={tmp}/out"],
    "scripts/cds_accessions.py": ["--config", "configs/data/uniprot.yaml", "accessions={tmp}/ena.accessions"],
    "scripts/hybrid.py": ["--config", "configs/clip/hybrid_mini.yaml", "out={tmp}/out", "cache_dir={tmp}/cache"],
    "scripts/ablate_clip.py": ["--config", "configs/clip/ablation_mini.yaml", "out={tmp}/out"],
}

# (entry point, overrides after the sandbox, what the error line must contain)
CASES = [
    ("train_clip.py", ["optim.lr_max=1"], "optim.lr_max: unknown key"),
    ("train_clip.py", [f"data.path={MISSING}"], BUILD_HINT),
    ("train_clip.py", [f"data.path={MINI}", f"model.dna_encoder={MISSING}"], MISSING),
    ("train_clip.py", [f"data.path={MINI}", f"resume={MISSING}"], f"resume={MISSING}"),
    ("train_clip.py", [f"data.path={MINI}", "model.dna_encoder=kmer:6", "optim.batch_size=100000"], "lower the batch size"),
    ("train_classifier.py", ["mlp.epochs=ten"], "mlp.epochs: expected an integer, got 'ten'"),
    ("train_classifier.py", [f"data={MISSING}"], BUILD_HINT),
    ("train_classifier.py", ["benchmark=V"], "benchmark: expected one of I, II, III, IV, got 'V'"),
    ("train_classifier.py", [f"data={MINI}", f"encoder={MISSING}"], MISSING),
    ("prompt_llm.py", ["split=test3"], "split: expected one of test1, test2, valid, valid2, got 'test3'"),
    ("prompt_llm.py", [f"model={MISSING}"], MISSING),
    ("prompt_llm.py", ["dtype=float33"], "dtype: expected one of"),
    ("prompt_llm.py", [f"data={MISSING}", "model=smollm2"], BUILD_HINT),
    ("prompt_llm.py", ["inputs=text"], "inputs: expected one of dna, dna+neighbours, paper, got 'text'"),
    ("prompt_llm.py", ["openai.concurrency=many"], "openai.concurrency: expected an integer, got 'many'"),
    ("scripts/build_benchmarks.py", ["seed=abc"], "seed: expected an integer, got 'abc'"),
    ("scripts/build_benchmarks.py", [f"raw_dir={MISSING}"], MISSING),
    ("scripts/build_benchmarks.py", ["--config", f"{MISSING}.yaml"], "--config: file not found"),
    ("scripts/retrieve.py", ["query=catalase", f"model={MISSING}"], MISSING),
    ("scripts/retrieve.py", ["query=catalase", "k=five"], "k: expected an integer, got 'five'"),
    ("scripts/embed.py", [f"encoder={MISSING}"], MISSING),
    ("scripts/embed.py", ["split=tset1"], "split: expected one of train, valid, test1, test2, valid2, got 'tset1'"),
    ("scripts/embed.py", ["encoder=kmer:6", f"data={MISSING}"], BUILD_HINT),
    ("scripts/embed.py", ["truncate=sometimes"], "truncate: expected true or false, got 'sometimes'"),
    ("scripts/eval_embeddings.py", ["metric=l1"], "metric: expected one of cosine, l2, got 'l1'"),
    ("scripts/eval_embeddings.py", ["encoders=[kmer:6]", f"data={MISSING}"], BUILD_HINT),
    ("scripts/table4.py", ["homology.threads=two"], "homology.threads: expected an integer, got 'two'"),
    ("scripts/table4.py", ["encoders=[kmer:6]", f"data={MISSING}"], BUILD_HINT),
    ("scripts/table5.py", ["inputs=[dna,text]"], "inputs[1]: expected one of dna, dna+neighbours, paper, got 'text'"),
    ("scripts/table5.py", [f"llm.data={MISSING}"], BUILD_HINT),
    ("scripts/table5.py", [f"llm.data={MINI}", f"llm.model={MISSING}"], MISSING),
    ("scripts/tune_classifier.py", ["grid.epochs=[ten]"], "grid.epochs[0]: expected an integer, got 'ten'"),
    ("scripts/tune_classifier.py", [f"data={MISSING}"], BUILD_HINT),
    ("scripts/tune_classifier.py", [f"data={MINI}", f"encoder={MISSING}"], MISSING),
    ("scripts/pretrain_lolbert.py", ["steps=1k"], "steps: expected an integer, got '1k'"),
    ("scripts/pretrain_lolbert.py", [f"raw_dir={MISSING}"], MISSING),
    ("scripts/pretrain_lolbert.py", [f"resume={MISSING}"], f"resume={MISSING}"),
    ("scripts/finetune_lolbert.py", [f"model={MISSING}", f"data={MINI}"], MISSING),
    ("scripts/tune_zero_shot.py", [f"model={MISSING}"], MISSING),
    ("scripts/tune_zero_shot.py", ["template_sets=[[zero]]"], "template_sets[0][0]: expected an integer"),
    ("train_clip.py", [f"data.path={MINI}", "model.dna_encoder=kmer:6", "eval.each_epoch=false"], "eval.select=best"),
    ("scripts/finetune_lolbert.py", ["lr=fast"], "lr: expected a number, got 'fast'"),
    ("scripts/demo.py", [f"clip_config={MISSING}.yaml"], MISSING),
    ("scripts/demo.py", ["pretrain_step=10"], "pretrain_step: unknown key; did you mean pretrain_steps?"),
    ("scripts/reproduce.py", ["steps=[table9]"], "steps[0]: expected one of table1"),
    ("scripts/reproduce.py", ["pretrain=false", f"shipped_lolbert={MISSING}"], MISSING),
    ("scripts/audit_benchmark.py", [MISSING], BUILD_HINT),
    ("scripts/audit_benchmark.py", [MINI, "identity=0.7"], "identity: expected one of 0.5, 0.9, 1.0 or null, got '0.7'"),
    ("scripts/index_genes.py", [f"model={MISSING}"], MISSING),
    ("scripts/index_genes.py", ["candidates=some"], "candidates: expected one of all, genes, got 'some'"),
    ("scripts/app.py", [f"model={MISSING}"], MISSING),
    ("scripts/app.py", ["port=http"], "port: expected an integer, got 'http'"),
    ("scripts/fetch_sources.py", ["attempts=many"], "attempts: expected an integer, got 'many'"),
    ("scripts/fetch_sources.py", ["only=[nope]"], "nope"),
    ("scripts/cds_accessions.py", [f"raw_dir={MISSING}"], MISSING),
    ("scripts/hybrid.py", [f"model={MISSING}"], MISSING),
    ("scripts/ablate_clip.py", ["rows_only=[nope]"], "rows_only names ['nope'] not among the rows"),
    ("scripts/ablate_clip.py", [f"data={MISSING}"], BUILD_HINT),
]


def test_every_entry_point_is_covered():
    scripts = {"train_clip.py", "train_classifier.py", "prompt_llm.py"}
    scripts |= {f"scripts/{p.name}" for p in (ROOT / "scripts").glob("*.py")}
    assert scripts == set(SANDBOX) == {script for script, _, _ in CASES}


def run_case(script: str, overrides: list[str], tmp: Path, mini: Path | None) -> subprocess.CompletedProcess:
    args = [a.format(tmp=tmp, mini=mini) for a in SANDBOX[script] + overrides]
    return subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def results(tmp_path_factory, mini_benchmark) -> list[tuple[subprocess.CompletedProcess, Path]]:
    """Every case, one process per core at a time: each spends its few seconds importing torch & co."""
    tmps = [tmp_path_factory.mktemp("case") for _ in CASES]
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        done = pool.map(lambda case, tmp: run_case(case[0], case[1], tmp, mini_benchmark), CASES, tmps)
        return list(zip(done, tmps, strict=True))


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{s} {' '.join(o)}" for s, o, _ in CASES])
def test_bad_argument_fails_cleanly(i, results, mini_benchmark):
    (script, _, expected), (result, tmp) = CASES[i], results[i]
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected.format(tmp=tmp, mini=mini_benchmark) in lines[0]
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert not list(tmp.iterdir()), f"{script} wrote output before failing"


OFFLINE_PROBE = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("entry", sys.argv[1])
sys.modules["entry"] = module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import huggingface_hub.constants as c
print(c.HF_HUB_OFFLINE)
"""


def test_every_entry_point_is_offline_without_the_makefile():
    """Importing any entry point sets the offline Hugging Face switches before a HF library reads them,
    even when the caller's environment (not the Makefile) starts it."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}

    def probe(script: str) -> str:
        done = subprocess.run([sys.executable, "-c", OFFLINE_PROBE, script], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        return done.stdout.strip() or done.stderr

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        found = dict(zip(SANDBOX, pool.map(probe, SANDBOX), strict=True))
    assert found == {script: "True" for script in SANDBOX}
