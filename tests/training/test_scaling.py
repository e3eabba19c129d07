"""Past one machine (issue 34): each process reads its own part of a stream, a requested FSDP never becomes
DDP silently, and a two-machine launch on localhost trains like one machine with two processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests._training_helpers import ENV, ROOT, ldm_args
from tests.training.test_train_ldm import free_port

# every row's pixels (as a hash) that one process draws in one epoch of the stream, in order
EPOCH_SCRIPT = """
import hashlib, json, sys
from hfldm.data.arguments import DataArguments
from hfldm.data.loader import load_image_dataset
from hfldm.training.args import TrainingArguments
from hfldm.training.runtime import make_accelerator, make_dataloader

train = TrainingArguments(output_dir=sys.argv[2], report_to="none")
accelerator = make_accelerator(train, seed=0)
data = DataArguments(train_data_dir=sys.argv[1], resolution=16, streaming=True, label_column="label")
loader = accelerator.prepare(make_dataloader(load_image_dataset(data)[0], batch_size=4, seed=0))
loader.set_epoch(0)
rows = [hashlib.sha1(x.numpy().tobytes()).hexdigest() for b in loader for x in b["pixel_values"]]
out = f"{sys.argv[2]}/rank{accelerator.process_index}-of-{accelerator.num_processes}.json"
open(out, "w").write(json.dumps(rows))
"""


def launch(num_processes: int, script: Path, *args: str, timeout: float = 120) -> None:
    """`accelerate launch` of `script` on `num_processes` CPU processes (gloo); kills them on a timeout."""
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        str(num_processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        *(["--multi_gpu", "--main_process_port", str(free_port())] if num_processes > 1 else []),
        str(script),
        *args,
    ]
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            output, _ = process.communicate(timeout=timeout)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, output[-3000:]


def test_two_processes_read_disjoint_parts_of_a_stream_that_cover_it(digits, tmp_path):
    """--streaming on 2 processes: the ranks' rows in one epoch are disjoint and together are exactly the
    96 rows one process reads (no rank reads and broadcasts the other's batches, no row is repeated);
    each step still draws one batch per process, so the global batch is num_processes × batch_size."""
    script = tmp_path / "epoch.py"
    script.write_text(EPOCH_SCRIPT)
    launch(1, script, str(digits), str(tmp_path))
    launch(2, script, str(digits), str(tmp_path))
    one = json.loads((tmp_path / "rank0-of-1.json").read_text())
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}-of-2.json").read_text()) for r in (0, 1))
    assert len(one) == 96 and min(len(rank0), len(rank1)) >= 40  # whole shards each: 50 + 46 here
    assert sorted(rank0 + rank1) == sorted(one)  # a multiset: a row read twice would show


def test_fsdp_on_cpu_or_one_process_is_refused_in_one_line(monkeypatch):
    """A requested FSDP (ACCELERATE_USE_FSDP, set by `accelerate launch --use_fsdp`) never becomes DDP."""
    from hfldm.training.args import check_fsdp_request

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "false")
    check_fsdp_request()  # not asked: nothing to say
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"^--use_fsdp: FSDP needs CUDA GPUs; on CPU .* plain DDP"):
        check_fsdp_request()
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    check_fsdp_request()  # GPUs and 2 processes: accelerate's own FSDP applies
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(ValueError, match=r"^--use_fsdp: FSDP with a single process shards nothing"):
        check_fsdp_request()


def test_launch_with_fsdp_on_cpu_fails_before_any_work(digits, autoencoder, tmp_path):
    """`accelerate launch --use_fsdp` of train_ldm.py on 2 CPU processes: exit 2, the one line, no output."""
    command = [
        sys.executable,
        "-m",
        "hfldm.training.launch",
        "--use_fsdp",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        str(ROOT / "training/train_ldm.py"),
        *ldm_args(digits, autoencoder, tmp_path / "run", "--max_train_steps", "1"),
    ]
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--use_fsdp: FSDP needs CUDA GPUs; on CPU accelerate would silently run plain DDP" in result.stderr
    assert not (tmp_path / "run").exists()


def accelerate_launch(*flags: str) -> list[str]:
    """The `accelerate launch` command of CPU processes (gloo) with `flags` added."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        *flags,
    ]


def wait_all(processes: list[subprocess.Popen], timeout: float) -> None:
    """Waits for `processes` (each its own session); on a timeout or a failure kills every one of them."""
    try:
        for process in processes:
            output, _ = process.communicate(timeout=timeout)
            assert process.returncode == 0, output[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.mark.slow
def test_two_machines_on_localhost_train_like_one_machine_with_two_processes(digits, autoencoder, tmp_path):
    """Two `accelerate launch --num_machines 2 --machine_rank {0,1}` commands on 127.0.0.1 (one process
    each) give the weights of `--num_processes 2` on one machine: a multi-node launch that has run."""
    from safetensors.torch import load_file

    from tests._training_helpers import max_difference

    def train(out: Path, *launch_flags: str) -> subprocess.Popen:
        command = [
            *accelerate_launch(*launch_flags),
            str(ROOT / "training/train_ldm.py"),
            *ldm_args(
                digits,
                autoencoder,
                out,
                "--max_samples",
                "32",
                "--max_train_steps",
                "3",
                "--checkpointing_steps",
                "3",
                "--train_batch_size",
                "4",
            ),
        ]
        quiet = dict(cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return subprocess.Popen(command, start_new_session=True, **quiet)

    one_machine = ("--num_processes", "2", "--num_machines", "1", "--main_process_port", str(free_port()))
    wait_all([train(tmp_path / "one", *one_machine)], timeout=120)
    port = str(free_port())
    nodes = [
        train(
            tmp_path / "two",
            "--num_processes",
            "2",
            "--num_machines",
            "2",
            "--machine_rank",
            str(rank),
            "--main_process_ip",
            "127.0.0.1",
            "--main_process_port",
            port,
        )
        for rank in (0, 1)
    ]
    wait_all(nodes, timeout=120)
    one = load_file(tmp_path / "one" / "checkpoint-3" / "model.safetensors")
    two = load_file(tmp_path / "two" / "checkpoint-3" / "model.safetensors")
    assert one["conv_out.weight"].abs().max() > 0  # zero-initialised, moved by the 3 steps: trained
    assert max_difference(one, two) < 1e-6  # the same 2 ranks, the same data and noise: equal weights
    print(f"max |Δ| two machines vs one machine: {max_difference(one, two):.3g}")


def test_the_launcher_reports_the_rank_that_failed_on_its_own():
    """Rank 1 exits 2 with its one line, then the elastic agent stops rank 0 (SIGTERM, exit code -15):
    the launcher's exit code is 2, whichever rank holds the smaller index (CI saw 1 before this)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from hfldm.training.launch import child_exit_code

    stopped, failed = (ProcessFailure(rank, 100 + rank, code, "") for rank, code in [(0, -15), (1, 2)])
    assert child_exit_code(ChildFailedError("train_ldm.py", {0: stopped, 1: failed})) == 2
    assert child_exit_code(ChildFailedError("train_ldm.py", {0: stopped})) == 1  # killed only: no code
