"""#36, training: a run owns its --output_dir (a second run, a fresh run over old checkpoints, an unwritable
folder are refused before any step), checkpoints are verified by content and resume at their manifest's
step. Each test failed on 7e03a4a (the commit before #36)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _training_helpers import ENV, ROOT, flags, ldm_args, run_script
from safetensors.torch import load_file

from hfldm.training.checkpoints import checkpoint_problem, pick_checkpoint

SHORT = flags(max_samples=32, train_batch_size=8, scaling_factor=0.5)
LATEST = ("--resume_from_checkpoint", "latest")


@pytest.fixture(scope="module")
def finished(digits, autoencoder, tmp_path_factory) -> tuple[Path, list[str]]:
    """A 4-step train_ldm.py run with checkpoint-2 and checkpoint-4, and the flags that made it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    args = ldm_args(digits, autoencoder, out, *SHORT, *flags(max_train_steps=4, checkpointing_steps=2))
    run_script("train_ldm.py", *args)
    return out, args


def copied(finished, tmp_path: Path) -> tuple[Path, list[str]]:
    out, args = finished
    shutil.copytree(out, tmp_path / "run")
    return tmp_path / "run", [str(tmp_path / "run") if a == str(out) else a for a in args]


def test_item1_a_second_run_on_a_busy_output_dir_is_refused(digits, autoencoder, tmp_path):
    """Two trainings on one --output_dir: the second exits 2 in one line naming the first's pid; the first
    one's checkpoints are untouched (before: the second pruned the first's in-progress save)."""
    out = tmp_path / "run"
    args = ldm_args(digits, autoencoder, out, *SHORT, *flags(max_train_steps=10_000, checkpointing_steps=1))
    script = [sys.executable, str(ROOT / "training/train_ldm.py")]
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = subprocess.Popen([*script, *args], cwd=ROOT, env=ENV, **quiet)
    try:
        deadline = time.time() + 120
        while not (out / "checkpoint-1").is_dir() and time.time() < deadline and first.poll() is None:
            time.sleep(0.05)
        second = run_script("train_ldm.py", *args, "--seed", "1", rc=2)
        busy = f"--output_dir: {out} is in use by another training run (pid {first.pid} "
        assert second.stderr.strip().splitlines()[-1].startswith(f"train_ldm.py: error: {busy}")
        assert first.poll() is None  # the first run goes on
        assert json.loads((out / "run.json").read_text())["seed"] == 0
    finally:
        first.kill()
        first.wait()
    # a killed run's lock is taken over: resuming works
    run_script(
        "train_ldm.py", *[a if a != "10000" else "3" for a in args], "--resume_from_checkpoint", "latest"
    )


def test_item2_a_fresh_run_over_old_checkpoints_is_refused_unless_told(finished, tmp_path):
    """A fresh run into a used --output_dir: refused, naming the old checkpoints and both ways out (before:
    it overwrote checkpoint-2 and -4 silently, and `latest` later picked the old run's newer ones).
    --overwrite_output_dir removes them first; resume with another --seed is refused; resume says what it
    continues."""
    out, args = copied(finished, tmp_path)
    before = load_file(out / "checkpoint-4" / "model.safetensors")
    refused = run_script("train_ldm.py", *args, "--seed", "1", rc=2)
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith(
        f"train_ldm.py: error: --output_dir: {out} holds another run's output (checkpoint-2"
    )
    assert "--resume_from_checkpoint latest" in line and "--overwrite_output_dir" in line
    after = load_file(out / "checkpoint-4" / "model.safetensors")
    assert all((before[k] == after[k]).all() for k in before)

    seed = run_script("train_ldm.py", *args, "--seed", "1", "--resume_from_checkpoint", "latest", rc=2)
    assert "error: --seed: the checkpoints in" in seed.stderr and "--seed 0, this run has 1" in seed.stderr

    resumed = run_script(
        "train_ldm.py", *args, "--max_train_steps", "5", "--resume_from_checkpoint", "latest"
    )
    assert "continuing the run of seed 0 started" in resumed.stderr and "changed: " not in resumed.stderr

    fresh = run_script("train_ldm.py", *args, *flags(seed=1, max_train_steps=2, overwrite_output_dir="true"))
    assert "--overwrite_output_dir: removing checkpoint-2, checkpoint-4" in fresh.stderr
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    assert json.loads((out / "run.json").read_text())["seed"] == 1


def test_item12_an_unwritable_output_dir_fails_before_any_step(digits, autoencoder, tmp_path):
    """--output_dir under a file, or on a read-only file system: one line before training (before: every
    step ran, then the final save failed)."""
    (tmp_path / "file").write_text("x")
    for out, why in ((tmp_path / "file" / "run", "Not a directory"), (Path("/proc/hfldm-run"), "")):
        args = ldm_args(digits, autoencoder, out, *SHORT, *flags(max_train_steps=3, checkpointing_steps=100))
        failed = run_script("train_ldm.py", *args, rc=2)
        line = failed.stderr.strip().splitlines()[-1]
        assert line.startswith(f"train_ldm.py: error: --output_dir: cannot write to {out} ({why}"), line
        assert "latent scale" not in failed.stdout  # nothing was computed


def overwrite_tensor_bytes(path: Path) -> None:
    """The same size, a valid header, other numbers: the last 64 bytes of the data flipped."""
    data = bytearray(path.read_bytes())
    data[-64:] = bytes(b ^ 0xFF for b in data[-64:])
    path.write_bytes(bytes(data))


def test_item5_checkpoints_are_verified_by_content(finished, tmp_path, capsys):
    """One tensor's bytes overwritten in place (same size): the checkpoint is damaged, `latest` falls back
    loudly (before: resumed silently, loss 0.24 -> 1.03)."""
    out, _ = copied(finished, tmp_path)
    overwrite_tensor_bytes(out / "checkpoint-4" / "model.safetensors")
    assert checkpoint_problem(out / "checkpoint-4") == (
        "model.safetensors is damaged (its content differs from the SHA-256 in checkpoint.json)"
    )
    assert pick_checkpoint(out, "latest") == out / "checkpoint-2"
    assert "checkpoint-4 is damaged" in capsys.readouterr().err


def test_item5_the_step_comes_from_the_manifest_not_the_folder_name(finished, tmp_path):
    """checkpoint-2 copied to checkpoint-35: resumes at step 2 with a note (before: 'step 35')."""
    out, args = copied(finished, tmp_path)
    shutil.copytree(out / "checkpoint-2", out / "checkpoint-35")
    resumed = run_script(
        "train_ldm.py", *args, "--max_train_steps", "3", "--resume_from_checkpoint", "latest"
    )
    assert f"resuming from {out / 'checkpoint-35'} (step 2)" in resumed.stdout
    assert "holds step 2 (its checkpoint.json), not what its name says" in resumed.stderr
    assert (out / "checkpoint-3").is_dir() is False and (out / "model_index.json").is_file()


def test_item17_one_line_and_exit_2_under_the_launcher(digits, autoencoder, tmp_path):
    """`python -m hfldm.training.launch` (accelerate launch's flags and config): a bad argument ends with
    the script's one line and exit code 2 (before, under `accelerate launch`: a 15-line CalledProcessError
    traceback after it, and exit code 1)."""
    launcher = [
        sys.executable,
        "-m",
        "hfldm.training.launch",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    args = ldm_args(digits, autoencoder, tmp_path / "run", *flags(beta_end=5.0))
    failed = run_script("train_ldm.py", *args, launcher=launcher, rc=2)
    assert "Traceback" not in failed.stderr and "CalledProcessError" not in failed.stderr
    assert failed.stderr.strip().splitlines()[-1].startswith("train_ldm.py: error: beta_start/beta_end: β_")
