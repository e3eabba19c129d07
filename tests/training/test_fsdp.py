"""FSDP2 (issue 34): the U-Net sharded with `fully_shard` over 2 CPU processes (gloo) trains like DDP, and a
`torch.distributed.checkpoint` save / load in the middle resumes exactly."""

from __future__ import annotations

import json

import pytest

from tests._training_helpers import ROOT
from tests.training.test_scaling import launch

FSDP_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[2])  # the repository, for tests._training_helpers
import torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from hfldm.training.fsdp import full_weights, load_sharded, save_sharded, shard_unet
from tests._jitter import jitter
from tests._training_helpers import tiny_unet

dist.init_process_group("gloo")
rank, out, steps, saved_at = dist.get_rank(), sys.argv[1], 6, 3

def unet():
    return jitter(tiny_unet(), everywhere=True).train()  # the same start on every process

def train(model, optimizer, first, last):
    for step in range(first, last):  # each process its own batch of each step: x, t, ε
        g = torch.Generator().manual_seed(1000 * step + rank)
        x, eps = torch.randn(4, 2, 8, 8, generator=g), torch.randn(4, 2, 8, 8, generator=g)
        t = torch.randint(0, 1000, (4,), generator=g)
        torch.nn.functional.mse_loss(model(x, t).sample, eps).backward()
        optimizer.step()
        optimizer.zero_grad()

adamw = lambda model: torch.optim.AdamW(model.parameters(), lr=1e-3)
ddp = DistributedDataParallel(unet())
optimizer = adamw(ddp)
train(ddp, optimizer, 0, steps)
fsdp = shard_unet(unet())
optimizer = adamw(fsdp)
train(fsdp, optimizer, 0, steps)
straight = full_weights(fsdp)
first = shard_unet(unet())
optimizer = adamw(first)
train(first, optimizer, 0, saved_at)
save_sharded(first, optimizer, f"{out}/checkpoint")
resumed = shard_unet(unet())
optimizer = adamw(resumed)
load_sharded(resumed, optimizer, f"{out}/checkpoint")
train(resumed, optimizer, saved_at, steps)
after = full_weights(resumed)
if rank == 0:
    reference = ddp.module.state_dict()
    diff = lambda a, b: max((a[k] - b[k]).abs().max().item() for k in a)
    moved = max((reference[k] - v).abs().max().item() for k, v in unet().state_dict().items())
    json.dump(dict(vs_ddp=diff(straight, reference), resumed=diff(after, straight), moved=moved,
                   sharded=len(list((__import__("pathlib").Path(out) / "checkpoint").glob("*.distcp")))),
              open(f"{out}/fsdp.json", "w"))
"""


@pytest.mark.slow
def test_fsdp2_on_two_cpu_processes_trains_like_ddp_and_resumes_exactly(tmp_path):
    """6 AdamW steps of the tiny U-Net, each process its own batches: FSDP2's gathered weights equal DDP's
    within float summation order; saved with DCP after 3 steps (one file per process), loaded into a fresh
    sharded U-Net and optimiser, 3 more steps give the uninterrupted weights exactly."""
    script = tmp_path / "fsdp.py"
    script.write_text(FSDP_SCRIPT)
    launch(2, script, str(tmp_path), str(ROOT))
    result = json.loads((tmp_path / "fsdp.json").read_text())
    print(f"FSDP2 vs DDP after 6 steps: max |Δ| {result['vs_ddp']:.3g}; resumed {result['resumed']:.3g}")
    assert result["moved"] > 1e-3  # the steps changed the weights
    assert result["vs_ddp"] < 1e-5
    assert result["resumed"] == 0
    assert result["sharded"] == 2


def test_fsdp_with_one_process_is_refused_in_one_line():
    from hfldm.training.fsdp import check_fsdp_processes

    with pytest.raises(ValueError, match=r"^--fsdp: FSDP with a single process shards nothing; launch with "):
        check_fsdp_processes(1)
    check_fsdp_processes(2)
