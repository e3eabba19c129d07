"""Checkpoints under hostile conditions: kill -9 during saves with a total limit of 1, damaged files,
planted pickles."""

from __future__ import annotations

import json
import pickle
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _training_helpers import ENV, ROOT, ema_shadow, flags, ldm_args, max_difference, run_script
from safetensors.torch import load_file

from hfldm.training.checkpoints import checkpoint_problem, checkpoint_step, list_checkpoints, pick_checkpoint

INTERVAL = 1  # --checkpointing_steps: every step is a save, so most kills land in or near one
TRIALS = 6
UNBUFFERED = {**ENV, "PYTHONUNBUFFERED": "1"}  # the log must hold what the killed run printed


def partial_saves(out) -> set[int]:
    """Steps of the checkpoints being written now (`.checkpoint-<step>.partial`)."""
    return {int(re.search(r"-(\d+)\.", p.name).group(1)) for p in out.glob(".checkpoint-*.partial")}


@pytest.mark.slow
def test_sigkill_during_saves_with_limit_1_never_loses_more_than_one_interval(digits, autoencoder, tmp_path):
    """Six seeded trials: a run resumed from `latest` is killed at a random moment after a save starts; the
    newest complete checkpoint is never more than one interval behind that save, and the next run resumes
    from it (the old code pruned before saving and left only the .partial folder)."""
    rng = random.Random(15)
    out, log = tmp_path / "run", tmp_path / "log.txt"
    extra = flags(max_samples=32, train_batch_size=8, max_train_steps=10_000, scaling_factor=0.5)
    extra += flags(checkpointing_steps=INTERVAL, checkpoints_total_limit=1, resume_from_checkpoint="latest")
    command = [
        sys.executable,
        str(ROOT / "training/train_ldm.py"),
        *ldm_args(digits, autoencoder, out, *extra),
    ]
    resumed_at = 0
    for trial in range(TRIALS):
        with log.open("w") as stdout:
            victim = subprocess.Popen(
                command, cwd=ROOT, env=UNBUFFERED, stdout=stdout, stderr=subprocess.STDOUT
            )
        wait_saves, deadline = rng.randint(1, 4), time.time() + 120
        after = max({resumed_at} | partial_saves(out))  # a killed run may have left its .partial
        seen: set[int] = set()
        while len(seen) < wait_saves and time.time() < deadline and victim.poll() is None:
            seen.update(step for step in partial_saves(out) if step > after)
            time.sleep(0.0005)
        saving = max(seen)
        time.sleep(rng.uniform(0, 0.05))  # a save of this run takes ~30-100 ms: anywhere in it, or just after
        victim.send_signal(signal.SIGKILL)
        assert victim.wait() == -signal.SIGKILL, log.read_text()[-2000:]
        text = log.read_text()
        if resumed_at:
            assert f"(step {resumed_at})" in text, text[-2000:]
        complete = [checkpoint_step(p) for p in list_checkpoints(out)]
        newest = max(complete, default=0)  # 0: a fresh start, fine while the first save was the one killed
        assert newest >= saving - INTERVAL, (trial, saving, complete)
        assert len(complete) <= 2  # the limit, plus the one a kill before pruning leaves
        resumed_at = newest


@pytest.fixture(scope="module")
def finished_run(digits, autoencoder, tmp_path_factory) -> tuple[Path, list[str]]:
    """A 4-step train_ldm.py run with checkpoint-2 and checkpoint-4, and the flags that made it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    extra = flags(max_samples=32, train_batch_size=8, max_train_steps=4, checkpointing_steps=2)
    args = ldm_args(digits, autoencoder, out, *extra, *flags(scaling_factor=0.5, lr_scheduler="cosine"))
    run_script("train_ldm.py", *args)
    return out, args


def copy_run(finished_run, tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of the finished run's checkpoints in tmp_path/run, with flags that point at it."""
    out, args = finished_run
    copy = tmp_path / "run"
    for checkpoint in list_checkpoints(out):
        shutil.copytree(checkpoint, copy / checkpoint.name)
    return copy, [str(copy) if a == str(out) else a for a in args]


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def overwrite_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[8:40] = b"#" * 32  # the same size, an unreadable JSON header
    path.write_bytes(bytes(data))


DAMAGES = {
    "truncated model.safetensors": ("model.safetensors", truncate),
    "truncated optimizer.bin": ("optimizer.bin", truncate),
    "truncated EMA": ("ema.safetensors", truncate),
    "deleted model.safetensors": ("model.safetensors", Path.unlink),
    "header of model.safetensors": ("model.safetensors", overwrite_header),
    "truncated RNG state": ("rng_state_0.safetensors", truncate),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_checkpoint_is_named_and_latest_falls_back_to_the_previous(
    finished_run, tmp_path, capsys, damage
):
    name, spoil = DAMAGES[damage]
    out, _ = copy_run(finished_run, tmp_path)
    spoil(out / "checkpoint-4" / name)
    assert checkpoint_problem(out / "checkpoint-2") is None
    assert checkpoint_problem(out / "checkpoint-4").startswith(f"{name} is ")
    assert pick_checkpoint(out, "latest") == out / "checkpoint-2"
    warning = capsys.readouterr().err
    assert "WARNING" in warning and "checkpoint-4 is damaged" in warning and name in warning
    with pytest.raises(ValueError, match=rf"^--resume_from_checkpoint: .*checkpoint-4: {name} is "):
        pick_checkpoint(out, str(out / "checkpoint-4"))


@pytest.mark.slow
def test_resume_names_a_damaged_checkpoint_in_one_line_and_latest_resumes_exactly_from_the_previous(
    finished_run, tmp_path
):
    """A named checkpoint without its weights: exit 2, one line naming model.safetensors (accelerate's
    loader named pytorch_model.bin). `latest` with a truncated optimizer.bin: resumes from checkpoint-2, and
    its re-saved checkpoint-4 holds the weights the undamaged run saved, bit for bit."""
    out, args = copy_run(finished_run, tmp_path)
    (out / "checkpoint-2" / "model.safetensors").unlink()
    failed = run_script("train_ldm.py", *args, "--resume_from_checkpoint", str(out / "checkpoint-2"), rc=2)
    assert "Traceback" not in failed.stderr and "pytorch_model.bin" not in failed.stderr
    assert failed.stderr.strip().splitlines()[-1] == (
        f"train_ldm.py: error: --resume_from_checkpoint: {out / 'checkpoint-2'}: model.safetensors is missing"
    )

    out, args = copy_run(finished_run, tmp_path / "fallback")
    truncate(out / "checkpoint-4" / "optimizer.bin")
    resumed = run_script("train_ldm.py", *args, "--resume_from_checkpoint", "latest")
    assert "checkpoint-4 is damaged, optimizer.bin is damaged" in resumed.stderr
    assert f"resuming from {out / 'checkpoint-2'} (step 2)" in resumed.stdout
    original = load_file(finished_run[0] / "checkpoint-4" / "model.safetensors")
    assert max_difference(original, load_file(out / "checkpoint-4" / "model.safetensors")) == 0


class Marker:
    """A pickle whose loading creates `path`: what a malicious checkpoint would run instead."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_resume_never_unpickles_a_planted_pickle(finished_run, tmp_path):
    """accelerate's load_state unpickled custom_checkpoint_*.pkl with weights_only=False (the EMA); now the
    EMA and RNG states are safetensors, a folder holding .pkl files is refused, and a planted optimizer.bin
    (with a matching checkpoint.json) fails weights_only loading: the marker file is never created."""
    out, _ = copy_run(finished_run, tmp_path)
    marker = tmp_path / "pwned"
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl"):
        with (out / "checkpoint-4" / name).open("wb") as f:
            pickle.dump(Marker(marker), f)
    planted = r"holds pickle files \(custom_checkpoint_0.pkl, random_states_0.pkl\)"
    with pytest.raises(ValueError, match=planted):
        pick_checkpoint(out, str(out / "checkpoint-4"))
    assert pick_checkpoint(out, "latest") == out / "checkpoint-2"

    checkpoint = out / "checkpoint-2"
    torch.save({"state": Marker(marker)}, checkpoint / "optimizer.bin")
    manifest = json.loads((checkpoint / "checkpoint.json").read_text())
    manifest["files"]["optimizer.bin"] = (checkpoint / "optimizer.bin").stat().st_size
    (checkpoint / "checkpoint.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"optimizer.bin is damaged \(Weights only load failed"):
        pick_checkpoint(out, str(checkpoint))
    assert not marker.exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_processes() -> list[str]:
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
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
    ]


@pytest.mark.slow
def test_resume_across_world_sizes_continues_exactly_or_refuses(digits, autoencoder, tmp_path):
    """1 process × 8 and 2 processes × 4 train alike; a checkpoint of either resumes on the other and ends
    where both uninterrupted runs end (linear LR decay with warm-up: the prepared schedule counts process
    steps, so its position is rescaled). A different global batch is refused in one line."""
    extra = flags(label_column="label", max_samples=64, max_train_steps=4, checkpointing_steps=2)
    extra += flags(cond_drop_prob=0.5, lr_scheduler="linear", lr_warmup_steps=1, scaling_factor=0.5)

    def train(name: str, processes: int, *more: str) -> Path:
        batch = flags(train_batch_size=8 // processes)
        launcher = two_processes() if processes == 2 else None
        run_script(
            "train_ldm.py",
            *ldm_args(digits, autoencoder, tmp_path / name, *extra, *batch, *more),
            launcher=launcher,
        )
        return tmp_path / name

    def resumed(name: str, processes: int, checkpoint: Path) -> Path:
        shutil.copytree(checkpoint, tmp_path / name / checkpoint.name)
        return train(name, processes, "--resume_from_checkpoint", "latest")

    one, two = train("one", 1), train("two", 2)
    two_then_one, one_then_two = (
        resumed("2to1", 1, two / "checkpoint-2"),
        resumed("1to2", 2, one / "checkpoint-2"),
    )
    final = {
        run: load_file(run / "checkpoint-4" / "model.safetensors")
        for run in (one, two, two_then_one, one_then_two)
    }
    for run in (two, two_then_one, one_then_two):
        assert max_difference(final[one], final[run]) < 1e-5, run.name  # 3e-4 with the LR schedule off
        ema_one, ema_run = ema_shadow(one / "checkpoint-4"), ema_shadow(run / "checkpoint-4")
        assert ema_one.pop("step") == ema_run.pop("step") == 4
        assert max_difference(ema_one, ema_run) < 1e-5

    shutil.copytree(one / "checkpoint-2", tmp_path / "refused" / "checkpoint-2")
    args = ldm_args(digits, autoencoder, tmp_path / "refused", *extra, *flags(train_batch_size=4))
    failed = run_script("train_ldm.py", *args, "--resume_from_checkpoint", "latest", rc=2)
    line = failed.stderr.strip().splitlines()[-1]
    assert line.startswith(
        "train_ldm.py: error: --resume_from_checkpoint: checkpoint-2 was trained by 1 process"
    )
    assert line.endswith("use --train_batch_size 8 --gradient_accumulation_steps 1 with 1 process(es)")


@pytest.mark.slow
def test_autoencoder_resumes_exactly_from_its_checkpoint(digits, tmp_path):
    """train_autoencoder.py has two models, two optimisers and two LR schedules (the PatchGAN's from step
    3): resumed from a copy of checkpoint-2, its checkpoint-4 equals the uninterrupted run's, bit for bit.
    (Not with --random_flip: this script flips in the loader with torch's global RNG, and the batches a
    resume skips are never loaded, so the flips differ after it, as they did before these checkpoints.)"""

    def train(out: Path, *more: str) -> None:
        run_script(
            "train_autoencoder.py",
            *flags(
                train_data_dir=digits,
                resolution=16,
                regularizer="kl",
                downsample_factor=2,
                base_channels=8,
                latent_channels=2,
                layers_per_block=1,
                disc_layers=2,
                disc_channels=8,
                disc_start=1,
                max_train_steps=4,
                train_batch_size=8,
                report_to="none",
                validation_steps=0,
                output_dir=out,
                checkpointing_steps=2,
                num_validation_images=8,
                lr_scheduler="cosine",
            ),
            *more,
        )

    train(tmp_path / "ref")
    shutil.copytree(tmp_path / "ref" / "checkpoint-2", tmp_path / "run" / "checkpoint-2")
    train(tmp_path / "run", "--resume_from_checkpoint", "latest")
    for name in ("model.safetensors", "model_1.safetensors"):
        ref, run = (load_file(tmp_path / r / "checkpoint-4" / name) for r in ("ref", "run"))
        assert max_difference(ref, run) == 0, name
    ref, run = (
        torch.load(tmp_path / r / "checkpoint-4" / "optimizer_1.bin", weights_only=True)
        for r in ("ref", "run")
    )
    assert all(torch.equal(ref["state"][k]["exp_avg"], run["state"][k]["exp_avg"]) for k in ref["state"])
