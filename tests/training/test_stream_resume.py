"""Exact streaming resume (issue 34): each process's stream position, shuffle buffer and generator are in the
checkpoint, so a resumed stream draws the batches of an uninterrupted one and reads none of its rows again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from hfldm.data.arguments import DataArguments
from hfldm.data.loader import collate_fn, load_image_dataset
from hfldm.training.checkpoints import list_checkpoints
from hfldm.training.state_files import load_tensors
from hfldm.training.stream import StreamLoader, check_stream_state
from tests._training_helpers import ENV, ROOT, flags, ldm_args, max_difference
from tests.training.test_train_ldm import free_port


def stream(digits):
    data = DataArguments(train_data_dir=str(digits), resolution=16, streaming=True, label_column="label")
    return load_image_dataset(data)[0]


def loader(digits, rank=0, world_size=1, buffer_size=16) -> StreamLoader:
    return StreamLoader(
        stream(digits), 4, collate_fn, seed=3, buffer_size=buffer_size, rank=rank, world_size=world_size
    )


def batches(source: StreamLoader, n: int) -> list[dict]:
    endless = source.endless()
    return [next(endless) for _ in range(n)]


@pytest.mark.parametrize("world_size", [1, 2])
def test_a_stream_resumed_from_its_state_draws_the_uninterrupted_batches_and_rereads_nothing(
    digits, tmp_path, world_size
):
    """Per rank: 30 batches straight, against 7 batches, save, a new loader that loads and draws 23 more
    (across the end of the first epoch: 96 rows are 24 batches of 4 on one process, 12–13 on each of two).
    The resumed loader reads exactly the rows the uninterrupted one read after the save: none twice."""
    for rank in range(world_size):
        straight = loader(digits, rank, world_size)
        reference = batches(straight, 30)
        first = loader(digits, rank, world_size)
        head = batches(first, 7)
        read_before = first.rows_read
        first.save(tmp_path / f"ckpt{rank}")
        resumed = loader(digits, rank, world_size)
        check_stream_state(tmp_path / f"ckpt{rank}", resumed) if world_size == 1 else None
        resumed.load(tmp_path / f"ckpt{rank}")
        tail = batches(resumed, 23)
        for a, b in zip(reference, head + tail, strict=True):
            assert torch.equal(a["pixel_values"], b["pixel_values"]) and torch.equal(a["labels"], b["labels"])
        assert read_before + resumed.rows_read == straight.rows_read  # no row read twice
        assert read_before >= 7 * 4 + 16 - 4  # the buffer was full: the state held its 16 rows


def test_a_stream_state_of_another_world_size_or_batch_is_refused_in_one_line(digits, tmp_path):
    """Saved by 2 processes, resumed by 1 (or another batch / buffer size): one line naming the mismatch."""
    for rank in (0, 1):
        saver = loader(digits, rank, 2)
        batches(saver, 3)
        saver.save(tmp_path / "checkpoint-3")
    with pytest.raises(
        ValueError,
        match=r"^--resume_from_checkpoint: checkpoint-3 holds the stream positions of "
        r"2 process\(es\); .* this one has 1: launch it with --num_processes 2$",
    ):
        check_stream_state(tmp_path / "checkpoint-3", loader(digits))
    check_stream_state(tmp_path / "checkpoint-3", loader(digits, 1, 2))  # the same shape: fine
    with pytest.raises(ValueError, match=r"^--shuffle_buffer_size: checkpoint-3 shuffled the stream with a "):
        check_stream_state(tmp_path / "checkpoint-3", loader(digits, 1, 2, buffer_size=8))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"^--resume_from_checkpoint: empty holds no stream position"):
        check_stream_state(tmp_path / "empty", loader(digits))


def train_command(processes: int, out: Path, args: list[str]) -> list[str]:
    """train_ldm.py with `args` on `processes` CPU processes (accelerate launch, gloo, when more than one)."""
    script = str(ROOT / "training/train_ldm.py")
    if processes == 1:
        return [sys.executable, script, *args]
    launch = [
        "--multi_gpu",
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
    ]
    return [sys.executable, "-m", "accelerate.commands.launch", *launch, script, *args]


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL to `process` and all its descendants: torch's elastic agent starts each rank in a session of
    its own, so killing the launcher's process group would leave the ranks training on."""
    try:
        family = [*psutil.Process(process.pid).children(recursive=True), psutil.Process(process.pid)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        try:
            member.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    process.wait()


def rows_read(checkpoint: Path) -> list[int]:
    """Rows each process had read from the stream since it started, at `checkpoint`."""
    files = sorted(checkpoint.glob("stream_state_*.safetensors"))
    return [load_tensors(f)[1]["rows_read"] for f in files]


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_streaming_resume_after_sigkill_matches_the_uninterrupted_run(
    digits, autoencoder, tmp_path, processes
):
    """--streaming with a 16-row shuffle buffer, kill -9 after a checkpoint, resume with `latest`: the U-Net
    equals the uninterrupted run's, across the end of an epoch (96 rows: 24 steps of 4 on 1 process, 12 on
    2), and the resumed run reads only the rows the uninterrupted one read after that checkpoint."""
    extra = flags(streaming=True, shuffle_buffer_size=16, label_column="label", train_batch_size=4)
    extra += flags(max_train_steps=28 if processes == 1 else 16, checkpointing_steps=4, cond_drop_prob=0.2)
    args_for = lambda out: ldm_args(digits, autoencoder, out, *extra)  # noqa: E731
    ref, run = tmp_path / "ref", tmp_path / "run"
    quiet = dict(
        cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    reference = subprocess.Popen(train_command(processes, ref, args_for(ref)), **quiet)
    victim = subprocess.Popen(train_command(processes, run, args_for(run)), **quiet)
    try:
        deadline = time.time() + 240
        while not (run / "checkpoint-4").is_dir() and victim.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        kill_tree(victim)
        assert not (run / "model_index.json").exists(), "the run ended before it could be killed"
        resumed_from = list_checkpoints(run)[-1]
        result = subprocess.run(
            train_command(processes, run, [*args_for(run), "--resume_from_checkpoint", "latest"]),
            cwd=ROOT,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert reference.wait(timeout=240) == 0
    finally:
        for process in (reference, victim):
            kill_tree(process)
    last = f"checkpoint-{28 if processes == 1 else 16}"
    for name in (f"{last}/model.safetensors", "unet/diffusion_pytorch_model.safetensors"):
        difference = max_difference(load_file(ref / name), load_file(run / name))
        print(f"{processes} process(es), resumed from {resumed_from.name}: max |Δ| {name} = {difference:.3g}")
        assert difference <= 1e-6, name
    before = rows_read(resumed_from)  # what the killed run had read when it saved
    assert before == rows_read(ref / resumed_from.name)
    total, after = rows_read(ref / last), rows_read(run / last)
    print(
        f"rows read by the resumed run: {after} (uninterrupted after {resumed_from.name}: "
        f"{[t - b for t, b in zip(total, before)]}; the old skip re-read {before} first)"
    )
    assert after == [t - b for t, b in zip(total, before)]  # nothing of the consumed stream read again
