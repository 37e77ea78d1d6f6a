"""Issue 14: every trainer under real launchers (``accelerate launch``, two CPU processes, gloo; DDP and
DeepSpeed), on tiny models, so what breaks or hangs on GPUs breaks here first.

A hang is a failure: every launch runs under a timeout, and on timeout the launcher and the workers it
started are killed by process id. Each multi-process test failed before its fix: the CLIP text tower's
unused pooler (DDP error at step 2), uneven batches in fine-tuning (rank 0 waits forever), DeepSpeed's
"auto" batch size without a DataLoader (no start), DeepSpeed's "auto" clipping (always 1.0), and one dropout
stream on every rank. Items 6, 7, 9 and 10: DeepSpeed bf16 weights saved and reloaded in float32 with
their own text-cache key, evaluation shared by the processes, node-local output folders (the main process
chooses the checkpoint, every machine resumes from its own copy, a process that cannot see the folder
stops the run), loader workers.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
import yaml
from fixtures.scripts import load_script
from safetensors import safe_open
from safetensors.torch import load_file
from test_train_clip import ENZCLASS, ENZYME_DAT, SEEN, UNSEEN, ZERO_SHOT_VALID, _enzyme_subset, _records
from transformers import RobertaForMaskedLM

from biotalk.config import load_config
from biotalk.data import load_benchmark
from biotalk.data.enzyme import load_enzyme
from biotalk.models.clip import BioTalkClipModel, build_clip_model, default_text_encoder
from biotalk.models.lolbert import LolbertArch, build_lolbert_tokenizer, roberta_config

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]
TINY = LolbertArch(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                   hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # no dropout: no RNG draws
PRETRAIN_TINY = [f"raw_dir={ROOT / 'data/raw'}", "heldout_benchmark=null", *(f"model.{k}={v}" for k, v in vars(TINY).items()),
                 "batch_size=8", "max_nt=80", "eval_fragments=16", "eval_batch_size=16", "steps=2", "warmup_steps=1",
                 "log_every=1", "eval_every=2", "save_every=2", "threads=1"]  # fmt: skip

finetune = load_script("scripts/finetune_lolbert.py")
pretrain = load_script("scripts/pretrain_lolbert.py")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddp() -> list[str]:
    return [*ACCELERATE, "--config_file", str(ROOT / "configs/accelerate/cpu_two_process.yaml"),
            "--main_process_port", str(_port())]  # fmt: skip


def deepspeed() -> list[str]:
    pytest.importorskip("deepspeed")
    return [*ACCELERATE, "--config_file", str(ROOT / "configs/accelerate/deepspeed_zero2.yaml"),
            "--num_processes", "2", "--main_process_port", str(_port())]  # fmt: skip


def launch(cmd: list[str], timeout: float = 420, cwd: Path = ROOT, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``cmd``; past ``timeout`` (a hang) kill it and every process it started, then fail; with ``check``
    a non-zero exit fails too."""
    return finish(start(cmd, cwd), timeout, check)


def start(cmd: list[str], cwd: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_tree(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and every process it started; workers run in sessions of their own, so they are found
    by parentage and killed by id."""
    try:
        started = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        started = []
    for p in [*started, proc]:
        try:
            p.kill()
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass


def finish(proc: subprocess.Popen, timeout: float, check: bool = True) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        out, err = proc.communicate()
        pytest.fail(f"ran past {timeout} s (hung): {' '.join(map(str, proc.args))}\n{err[-3000:]}")
    assert proc.returncode == 0 or not check, err[-4000:]
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def _ds_config(checkpoint: Path) -> dict:
    """The DeepSpeed config the engine ran with, as DeepSpeed stored it in its ZeRO checkpoint."""
    (path,) = sorted(checkpoint.rglob("zero_pp_rank_0_*optim_states.pt"))
    return torch.load(path, map_location="cpu", weights_only=False)["ds_config"]


def assert_own_dropout_streams(checkpoint: Path, seed: int | None) -> None:
    """The two ranks' saved torch RNG states (Accelerate's save_state) draw different dropout masks. With
    ``seed`` (dropout off, nothing else drawing from torch's RNG after set-up) each state is exactly the one
    the rule gives: ``seed + rank``, rank 0 as a one-process run."""
    masks = []
    for rank in (0, 1):
        state = torch.load(checkpoint / f"random_states_{rank}.pkl", weights_only=False)["torch_manual_seed"]
        if seed is not None:
            assert torch.equal(state, torch.manual_seed(seed + rank).get_state()), f"rank {rank}"
        torch.set_rng_state(state)
        masks.append(torch.nn.functional.dropout(torch.ones(256), 0.5) == 0)
    assert not torch.equal(masks[0], masks[1])


@pytest.fixture(scope="module")
def tiny_lolbert_no_dropout(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lolbert_no_dropout")
    torch.manual_seed(0)
    RobertaForMaskedLM(roberta_config(TINY)).save_pretrained(path)
    build_lolbert_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clip_bench(tmp_path_factory, tiny_lolbert_no_dropout) -> dict:
    """test_train_clip's small benchmark (real ENZYME descriptions, random genes) and its arguments."""
    root = tmp_path_factory.mktemp("clip_dist")
    db, rng, bench = load_enzyme(ENZYME_DAT, ENZCLASS), np.random.default_rng(0), root / "bench"
    (bench / "Benchmark-III").mkdir(parents=True)
    (bench / "Test").mkdir()
    _records(SEEN, 6, db, rng, "tr").write_parquet(bench / "Benchmark-III" / "Train.parquet")
    _records(SEEN, 1, db, rng, "va").write_parquet(bench / "Benchmark-III" / "Valid.parquet")
    _records(SEEN, 1, db, rng, "t1").write_parquet(bench / "Test" / "test1.parquet")
    _records(UNSEEN, 1, db, rng, "t2").write_parquet(bench / "Test" / "test2.parquet")
    _records(ZERO_SHOT_VALID, 1, db, rng, "v2").write_parquet(bench / "Test" / "valid2.parquet")
    _enzyme_subset(root / "enzyme.dat", SEEN + UNSEEN + ZERO_SHOT_VALID)
    return {"root": root, "args": [
        f"data.path={bench}", "data.benchmark=III", f"data.enzyme_dat={root / 'enzyme.dat'}",
        f"data.enzclass=[{ENZCLASS}]", f"model.dna_encoder={tiny_lolbert_no_dropout}", f"cache_dir={root / 'cache'}",
        "model.projection_dim=16", "model.window_nt=60", "optim.batch_size=8", "optim.lr=0.001", "optim.warmup_steps=1",
        "trackers=[]", "eval.batch_size=16", "eval.knn_k=[1]", "eval.zero_shot_templates=[0]",
    ]}  # fmt: skip


# -- item 1: a trainable text tower has no parameter outside the forward ----------------------------------
def test_every_trainable_clip_parameter_gets_a_gradient(tiny_lolbert_no_dropout):
    """DDP requires it (a parameter without a gradient stops the second step); the BERT pooler of the
    text tower is never part of a sentence embedding, so it must not be trainable."""
    model = build_clip_model(str(tiny_lolbert_no_dropout), projection_dim=8, freeze_text=False).train()
    dna = model.dna_encoder.tokenize(["ACGTACGTTGCA", "GGCATTACA"])
    text = model.text_encoder.preprocess(["an oxidoreductase acting on NAD", "a kinase"])
    out = model(dna["input_ids"], dna["attention_mask"], dna["special_tokens_mask"], text_inputs=text)
    (out.dna_embeds @ out.text_embeds.T * out.logit_scale).sum().backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("text_encoder.") for n in trainable)  # the tower does train
    assert [n for n, p in trainable.items() if p.grad is None] == []


@pytest.mark.slow
def test_clip_trains_its_text_tower_under_ddp(clip_bench):
    out = clip_bench["root"] / "text_tower"
    launch([*ddp(), str(ROOT / "train_clip.py"), f"out={out}", *clip_bench["args"], "model.freeze_text=false",
            "optim.epochs=1", "eval.each_epoch=false", "eval.select=last"])  # fmt: skip
    assert [r["step"] for r in _log(out)] == list(range(1, 7))  # 48 records / 8, past the step-2 crash
    before = load_file(Path(default_text_encoder()) / "model.safetensors")
    after = load_file(out / "final" / "text_encoder" / "model.safetensors")
    changed = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert any("encoder.layer" in k for k in changed)  # the live tower's weights were trained
    assert not any("pooler" in k for k in changed)  # the unused pooler stayed as it was


@pytest.mark.slow
def test_clip_under_deepspeed_clips_at_max_grad_norm_with_own_dropout_per_rank(clip_bench):
    out = clip_bench["root"] / "clip_ds"
    launch([*deepspeed(), str(ROOT / "train_clip.py"), f"out={out}", *clip_bench["args"], "optim.epochs=1",
            "optim.max_grad_norm=0.3", "checkpoint_every=6", "eval.each_epoch=false", "eval.select=last"])  # fmt: skip
    assert _ds_config(out / "checkpoints" / "step_6")["gradient_clipping"] == 0.3
    assert_own_dropout_streams(out / "checkpoints" / "step_6", seed=None)  # its DataLoader draws from torch's RNG


# -- item 2: every rank gets the same number of fine-tuning batches ----------------------------------------
@pytest.mark.parametrize(("n", "batch", "world"), [(163, 8, 2), (163, 16, 2), (10, 4, 3), (5, 8, 4), (7, 3, 1)])
def test_finetune_deals_every_process_the_same_batches(n, batch, world):
    order = np.random.default_rng(0).permutation(n)
    dealt = [finetune.deal_batches(order, batch, rank, world) for rank in range(world)]
    assert len({len(d) for d in dealt}) == 1 and len(dealt[0]) == -(-n // (batch * world))
    seen = np.concatenate([b for d in dealt for b in d])
    assert set(seen.tolist()) == set(range(n))  # every record in every epoch; padding repeats the first ones
    if world == 1:  # one process: the plain batches, the last one short
        assert [b.tolist() for b in dealt[0]] == [order[i : i + batch].tolist() for i in range(0, n, batch)]
    else:
        assert all(len(b) == batch for d in dealt for b in d)


@pytest.mark.slow
def test_finetune_on_two_processes_with_uneven_batches_finishes(mini_benchmark, tiny_lolbert_no_dropout, tmp_path):
    """Mini Benchmark-III on two processes in batches whose number is odd: before, rank 0 got one batch more
    and waited forever in its all-reduce."""
    n = len(load_benchmark(mini_benchmark, "III")["train"])
    batch = next(b for b in range(8, 17) if -(-n // b) % 2)  # an odd number of batches
    out = tmp_path / "ft"
    launch([*ddp(), str(ROOT / "scripts/finetune_lolbert.py"), "--config", str(ROOT / "configs/lolbert/finetune_mini.yaml"),
            f"model={tiny_lolbert_no_dropout}", f"data={mini_benchmark}", f"out={out}", "epochs=1", f"batch_size={batch}",
            "max_nt=60", "seed=3"], timeout=300)  # fmt: skip
    steps = -(-n // (2 * batch))
    assert [(r["epoch"], r["step"]) for r in _log(out)] == [(1, steps)]
    assert_own_dropout_streams(out / "checkpoints" / f"step_{steps}", seed=3)  # item 8


# -- items 3, 5 and 8 under DeepSpeed ----------------------------------------------------------------------
@pytest.mark.slow
def test_pretrain_under_deepspeed_takes_batch_and_clipping_from_the_trainer(tmp_path):
    out = tmp_path / "pt"
    launch([*deepspeed(), str(ROOT / "scripts/pretrain_lolbert.py"), *PRETRAIN_TINY, "grad_clip=0.25", "seed=5",
            f"out={out}"])  # fmt: skip
    ds = _ds_config(out / "checkpoints" / "step_2")
    assert ds["gradient_clipping"] == 0.25  # the trainer's grad_clip, not DeepSpeed's "auto" 1.0
    assert ds["train_micro_batch_size_per_gpu"] == 8 and ds["train_batch_size"] == 16
    assert_own_dropout_streams(out / "checkpoints" / "step_2", seed=5)
    assert (out / "final" / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_deepspeed_config_that_contradicts_the_trainer_stops_the_run(tmp_path):
    """A number written in the DeepSpeed file is not silently replaced, nor silently used: both are named."""
    pytest.importorskip("deepspeed")
    ds = json.loads((ROOT / "configs/deepspeed/zero2.json").read_text()) | {"gradient_clipping": 1.0}
    (tmp_path / "ds.json").write_text(json.dumps(ds))
    launcher = yaml.safe_load((ROOT / "configs/accelerate/deepspeed_zero2.yaml").read_text())
    launcher["deepspeed_config"]["deepspeed_config_file"] = str(tmp_path / "ds.json")
    (tmp_path / "launcher.yaml").write_text(yaml.safe_dump(launcher))
    cmd = [*ACCELERATE, "--config_file", str(tmp_path / "launcher.yaml"), "--num_processes", "1",
           "--main_process_port", str(_port()), str(ROOT / "scripts/pretrain_lolbert.py"), *PRETRAIN_TINY,
           "grad_clip=0.25", f"out={tmp_path / 'pt'}"]  # fmt: skip
    done = launch(cmd, timeout=300, check=False)
    assert done.returncode != 0
    assert "error: the DeepSpeed config disagrees with the trainer" in done.stderr
    assert "gradient_clipping: 1.0 in the DeepSpeed config, 0.25 from the trainer" in done.stderr
    assert not (tmp_path / "pt" / "checkpoints").exists()


@pytest.mark.slow
def test_finetune_under_deepspeed(mini_benchmark, tiny_lolbert_no_dropout, tmp_path):
    out = tmp_path / "ft"
    launch([*deepspeed(), str(ROOT / "scripts/finetune_lolbert.py"), "--config", str(ROOT / "configs/lolbert/finetune_mini.yaml"),
            f"model={tiny_lolbert_no_dropout}", f"data={mini_benchmark}", f"out={out}", "epochs=1", "batch_size=4",
            "max_steps_per_epoch=2", "max_nt=60", "grad_clip=0.5"], timeout=300)  # fmt: skip
    ds = _ds_config(out / "checkpoints" / "step_2")
    assert ds["gradient_clipping"] == 0.5 and ds["train_micro_batch_size_per_gpu"] == 4 and ds["train_batch_size"] == 8
    assert (out / "model" / "model.safetensors").is_file()


# -- item 4: the base config is a whole run that writes where the GPU CLIP config reads ---------------------
def test_base_config_sets_every_key_and_writes_where_clip_reads():
    base = yaml.safe_load((ROOT / "configs/lolbert/base.yaml").read_text())
    fields = set(pretrain.PretrainConfig.__dataclass_fields__)
    assert fields - set(base) == set()  # nothing falls back to the mini defaults
    cfg = load_config(pretrain.PretrainConfig, ROOT / "configs/lolbert/base.yaml")
    mini = load_config(pretrain.PretrainConfig, ROOT / "configs/lolbert/mini.yaml")
    assert cfg.out != mini.out and cfg.max_nt == 510 and cfg.model.hidden_size == 768
    clip = yaml.safe_load((ROOT / "configs/clip/gpu_benchmark1.yaml").read_text())
    assert Path(clip["model"]["dna_encoder"]) == cfg.out / "final"


@pytest.mark.slow
def test_base_config_run_writes_its_own_folder(tmp_path):
    """A (shrunken) base run from a fresh working folder writes runs/lolbert-base, never runs/lolbert-mini."""
    cmd = [sys.executable, str(ROOT / "scripts/pretrain_lolbert.py"), "--config", str(ROOT / "configs/lolbert/base.yaml"),
           *PRETRAIN_TINY, "steps=1", "save_every=1"]  # fmt: skip
    launch(cmd, timeout=300, cwd=tmp_path)
    assert (tmp_path / "runs/lolbert-base/final/model.safetensors").is_file()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["lolbert-base"]


# -- launchers: the two-machine configs, each machine played by one CPU process on this one ------------------
@pytest.mark.slow
@pytest.mark.parametrize("config", ["two_nodes_ddp.yaml", "two_nodes_deepspeed.yaml"])
def test_two_machine_launcher_configs_start_and_train(config, tmp_path):
    if "deepspeed" in config:
        pytest.importorskip("deepspeed")
    port, out = str(_port()), tmp_path / "pt"
    machines = [start([*ACCELERATE, "--config_file", str(ROOT / "configs/accelerate" / config), "--num_processes", "2",
                       "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", port,
                       str(ROOT / "scripts/pretrain_lolbert.py"), *PRETRAIN_TINY, f"out={out}"])
                for rank in (0, 1)]  # fmt: skip
    try:
        for proc in machines:
            finish(proc, timeout=300)
    finally:
        for proc in machines:
            if proc.poll() is None:  # the other machine failed or hung: this one would wait forever
                kill_tree(proc)
    assert [r["step"] for r in _log(out)] == [1, 2]
    assert sorted(p.name for p in (out / "checkpoints" / "step_2").glob("random_states_*")) == [
        "random_states_0.pkl", "random_states_1.pkl"]  # one group of two processes, not two runs alone


# -- items 6, 7, 9 and 10 -------------------------------------------------------------------------------------
PROBE = """
import json, sys
from pathlib import Path
import numpy as np, torch, torch.distributed as dist
from biotalk.clip_eval import embed_genes
from biotalk.models.clip import build_clip_model
from biotalk.training import CheckpointManager, make_accelerator, output_folder

root, lolbert = Path(sys.argv[1]), sys.argv[2]
acc = make_accelerator(timeout_s=1234)
rank = acc.process_index
report = {"timeout": dist.group.WORLD._get_backend(torch.device("cpu")).options._timeout.total_seconds()}
torch.manual_seed(0)
model = build_clip_model(lolbert, projection_dim=8, window_nt=40).eval()
np.save(root / f"genes_{rank}.npy", embed_genes(model, json.loads((root / "seqs.json").read_text()), 3, acc))
report["writer"] = output_folder(acc, root / "shared")
report["save_on_each_node"] = acc.project_configuration.save_on_each_node
try:
    output_folder(acc, root / f"own_{rank}")  # rank 1 is no machine's main process: it sees no folder
    report["blind"] = None
except RuntimeError as err:
    report["blind"] = str(err)
for case in ("ahead", "behind"):
    try:
        report[case] = str(CheckpointManager(acc, root / case / f"r{rank}", 2).find("latest"))
    except FileNotFoundError as err:
        report[case] = "error: " + str(err)
(root / f"report_{rank}.json").write_text(json.dumps(report))
"""
SEQS = ["ATG" + "ACGTTGCA"[i % 8 :] * (i + 1) for i in range(11)]  # 11 genes of many lengths: shares of 6 and 5


def _checkpoints(root: Path, steps: list[int]) -> None:
    for step in steps:
        (root / f"step_{step}").mkdir(parents=True)
        (root / f"step_{step}" / "state.json").write_text(json.dumps({"step": step}))


@pytest.fixture(scope="module")
def probe(tmp_path_factory, tiny_lolbert_no_dropout) -> dict:
    """One two-process launch (gloo) of PROBE: the process group, shared embedding, output folders, resume."""
    root = tmp_path_factory.mktemp("probe")
    (root / "probe.py").write_text(PROBE)
    (root / "seqs.json").write_text(json.dumps(SEQS))
    _checkpoints(root / "ahead" / "r0", [3, 6])
    _checkpoints(root / "ahead" / "r1", [3, 6, 9])  # rank 1 alone would resume from 9
    _checkpoints(root / "behind" / "r0", [3, 6])
    _checkpoints(root / "behind" / "r1", [3])  # rank 1 lacks the checkpoint rank 0 chooses
    launch([*ddp(), str(root / "probe.py"), str(root), str(tiny_lolbert_no_dropout)], timeout=300)
    reports = [json.loads((root / f"report_{rank}.json").read_text()) for rank in (0, 1)]
    return {"root": root, "reports": reports, "lolbert": tiny_lolbert_no_dropout}


def test_process_group_has_the_trainer_timeout(probe):
    assert [r["timeout"] for r in probe["reports"]] == [1234, 1234]


def test_genes_embedded_in_shares_equal_one_process(probe):
    torch.manual_seed(0)
    model = build_clip_model(str(probe["lolbert"]), projection_dim=8, window_nt=40).eval()
    expected = model.get_dna_features(SEQS, 3).numpy()
    for rank in (0, 1):  # every process gets every row, in input order
        assert np.allclose(np.load(probe["root"] / f"genes_{rank}.npy"), expected, atol=1e-6), rank


def test_output_folder_writer_and_blind_process(probe):
    r0, r1 = probe["reports"]
    assert (r0["writer"], r1["writer"]) == (True, False) and not r0["save_on_each_node"]  # one shared folder
    assert all("processes [1] cannot see the output folder" in r["blind"] for r in (r0, r1))  # both stop


def test_resume_takes_the_main_process_checkpoint(probe):
    r0, r1 = probe["reports"]
    root = probe["root"]
    assert (r0["ahead"], r1["ahead"]) == (str(root / "ahead/r0/step_6"), str(root / "ahead/r1/step_6"))
    assert all("resumes from step_6; processes [1] have no complete copy" in r["behind"] for r in (r0, r1))  # no hang


def _two_machines(args: list[str], outs: list[Path], config: str = "two_nodes_ddp.yaml", check: bool = True):
    """train_clip.py on two "machines" (one process each, num_machines 2, 127.0.0.1), each with its own out."""
    port = str(_port())
    procs = [start([*ACCELERATE, "--config_file", str(ROOT / "configs/accelerate" / config), "--num_processes", "2",
                    "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", port,
                    str(ROOT / "train_clip.py"), f"out={outs[rank]}", *args]) for rank in (0, 1)]  # fmt: skip
    try:
        return [finish(proc, timeout=400, check=check) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                kill_tree(proc)


@pytest.mark.slow
def test_two_machines_with_node_local_folders_resume_together(clip_bench, tmp_path):
    """Item 9: each machine writes its own folder (checkpoints with model and optimiser, train log, best epoch);
    on resume the main process's checkpoint wins on both (machine 1 alone would take its newer step_12, and
    before the fix a machine without a complete copy started at step 0); a machine without it stops both."""
    outs = [tmp_path / "machine0", tmp_path / "machine1"]
    args = [*clip_bench["args"], "optim.epochs=2", "checkpoint_every=3", "keep_checkpoints=5"]
    _two_machines(args, outs)
    full = _log(outs[0])
    for out in outs:
        assert [r["step"] for r in _log(out)] == list(range(1, 13))
        assert [p.name for p in sorted((out / "checkpoints").glob("step_*/model.safetensors"))] == ["model.safetensors"] * 4
        assert (out / "best_epoch.safetensors").is_file()
    assert (outs[0] / "metrics.json").is_file() and not (outs[1] / "metrics.json").exists()
    selected = json.loads((outs[0] / "metrics.json").read_text())["selected"]
    for path in (outs[0] / "final", outs[0] / "metrics.json", outs[0] / "checkpoints" / "step_12"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    _two_machines([*args, "resume=latest"], outs)  # machine 0 resumes from step 9; so must machine 1
    for out in outs:
        resumed = _log(out)
        assert [r["step"] for r in resumed] == list(range(1, 13))
        assert np.allclose([r["loss"] for r in resumed], [r["loss"] for r in full], rtol=1e-5, atol=1e-6)
    assert json.loads((outs[0] / "metrics.json").read_text())["selected"] == selected
    for step in (6, 9, 12):
        shutil.rmtree(outs[1] / "checkpoints" / f"step_{step}")
    done = _two_machines([*args, "resume=latest"], outs, check=False)
    assert all(d.returncode != 0 for d in done)
    assert all("resumes from step_12; processes [1] have no complete copy" in d.stderr for d in done)


@pytest.mark.slow
def test_clip_under_deepspeed_bf16_saves_float32_and_keys_its_text_cache(clip_bench, tmp_path):
    """Item 6 with real DeepSpeed bf16 (DeepSpeed runs bf16 on the CPU): the towers, heads and temperature
    were bf16 while training; final/ is float32 and reloads as float32; the text features the bf16 tower
    computed are cached under its own key."""
    pytest.importorskip("deepspeed")
    ds = json.loads((ROOT / "configs/deepspeed/zero2.json").read_text()) | {"bf16": {"enabled": True}}
    (tmp_path / "ds.json").write_text(json.dumps(ds))
    launcher = yaml.safe_load((ROOT / "configs/accelerate/deepspeed_zero2.yaml").read_text())
    launcher["deepspeed_config"]["deepspeed_config_file"] = str(tmp_path / "ds.json")
    (tmp_path / "launcher.yaml").write_text(yaml.safe_dump(launcher))
    out, cache = tmp_path / "clip", tmp_path / "cache"
    launch([*ACCELERATE, "--config_file", str(tmp_path / "launcher.yaml"), "--num_processes", "2",
            "--main_process_port", str(_port()), str(ROOT / "train_clip.py"), f"out={out}", *clip_bench["args"],
            f"cache_dir={cache}", "optim.epochs=1", "eval.each_epoch=false", "eval.select=last"])  # fmt: skip
    keys = {json.loads(p.read_text())["encoder"] for p in cache.glob("text_features-*.json")}
    assert keys and all(k.endswith("|weights=bfloat16") for k in keys)  # the run was bf16, and says so
    for path in (out / "final").rglob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}, path
    model = BioTalkClipModel.from_pretrained(out / "final")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model.text_cache_key().endswith("|float32")  # reloaded in float32: its own cache entry
