"""The gathered contrastive losses under two real processes (torch.distributed, gloo, DDP): 2 processes x
batch b give the loss and the parameter gradients of 1 process x batch 2b, for InfoNCE and SigLIP, with
ECs shared across the two processes' halves (multi-positive pairs that only the gather can see)."""

import os
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from biotalk.losses import ClipLoss, SigLipLoss

B = 4  # per process
LABELS = torch.tensor([0, 1, 2, 0, 1, 3, 3, 5])  # EC 0, 1 and 3 span both halves


class Pair(nn.Module):
    """Two linear heads, a temperature and (SigLIP only, as in the CLIP model: a parameter without gradient
    would keep DDP from averaging) a bias."""

    def __init__(self, bias: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.dna, self.text = nn.Linear(6, 4), nn.Linear(5, 4)
        self.logit_scale = nn.Parameter(torch.tensor([2.0]))
        self.logit_bias = nn.Parameter(torch.tensor([-1.5])) if bias else None

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        norm = nn.functional.normalize
        return norm(self.dna(x), dim=-1), norm(self.text(y), dim=-1), self.logit_scale.exp(), self.logit_bias


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(2 * B, 6, generator=g), torch.randn(2 * B, 5, generator=g)


def _step(model: nn.Module, loss_fn: nn.Module, rows: slice) -> tuple[float, dict[str, torch.Tensor]]:
    x, y = _inputs()
    dna, text, scale, bias = model(x[rows], y[rows])
    loss = loss_fn(dna, text, scale.squeeze(0), LABELS[rows], None if bias is None else bias.squeeze(0))
    loss.backward()
    module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    return loss.item(), {n: p.grad.clone() for n, p in module.named_parameters()}


def _worker(rank: int, store: str, out: str) -> None:
    # A file rendezvous: no port to collide with another test's; a timeout instead of a hang if a peer dies.
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=120))
    results = {}
    for name, loss_fn in (("infonce", ClipLoss(label_smoothing=0.1)), ("siglip", SigLipLoss(label_smoothing=0.1))):
        model = nn.parallel.DistributedDataParallel(Pair(bias=name == "siglip"))
        results[name] = _step(model, loss_fn, slice(rank * B, (rank + 1) * B))
    torch.save(results, f"{out}.{rank}")
    dist.barrier()
    # Exit without tearing the gloo group down: its destructor joins a runloop thread that may be waiting for
    # the GIL the joining thread holds (it hung a full test run). The results are on disk; nothing else to free.
    os._exit(0)


@pytest.mark.parametrize("name", ["infonce", "siglip"])
def test_two_processes_give_the_loss_and_gradients_of_one(name, two_process_results):
    loss_fn = ClipLoss(label_smoothing=0.1) if name == "infonce" else SigLipLoss(label_smoothing=0.1)
    loss, grads = _step(Pair(bias=name == "siglip"), loss_fn, slice(0, 2 * B))
    for rank in (0, 1):
        got_loss, got_grads = two_process_results[rank][name]
        assert got_loss == pytest.approx(loss, rel=1e-5)
        assert got_grads.keys() == grads.keys()
        for key, grad in grads.items():
            assert torch.allclose(got_grads[key], grad, atol=1e-6), (rank, key)
            assert grad.abs().sum() > 0


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("loss")
    out = str(folder / "grads")
    mp.spawn(_worker, args=(str(folder / "rendezvous"), out), nprocs=2, join=True)
    return [torch.load(f"{out}.{rank}", weights_only=True) for rank in (0, 1)]
