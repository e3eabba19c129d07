"""Shared pieces of the training-script tests: tiny models, flags, running a script."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from hfldm import ConditionalUNet, KLAutoencoder
from hfldm.training.state_files import load_tensors

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
RESOLUTION = 16


def tiny_autoencoder() -> KLAutoencoder:
    torch.manual_seed(0)
    return KLAutoencoder(
        block_out_channels=(8, 16), layers_per_block=1, latent_channels=2, norm_num_groups=8, sample_size=16
    )


def flags(**values) -> list[str]:
    """Command-line flags: flags(max_train_steps=3) -> ["--max_train_steps", "3"]."""
    return [item for name, value in values.items() for item in (f"--{name}", str(value))]


def run_script(
    script: str, *args: str, launcher: list[str] | None = None, rc: int = 0
) -> subprocess.CompletedProcess:
    """Run training/<script> with `args`; asserts its exit code is `rc`."""
    command = [*(launcher or [sys.executable]), str(ROOT / "training" / script), *args]
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == rc, result.stderr[-3000:]
    return result


def ldm_args(digits: Path, autoencoder: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--autoencoder",
        str(autoencoder),
        "--train_data_dir",
        str(digits),
        "--resolution",
        str(RESOLUTION),
        "--unet_config",
        str(ROOT / "training/configs/unet_tiny.yaml"),
        "--output_dir",
        str(out),
        "--report_to",
        "none",
        "--validation_steps",
        "0",
        "--learning_rate",
        "1e-3",
        "--scale_estimation_images",
        "32",
        *extra,
    ]


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def ema_shadow(checkpoint: Path) -> dict:
    tensors, state = load_tensors(checkpoint / "ema.safetensors")  # diffusers' EMAModel state
    return {"step": state["optimization_step"], **{k.split(".")[-1]: p for k, p in tensors.items()}}


def tiny_unet(block_out_channels=(8, 16), **kwargs) -> ConditionalUNet:
    torch.manual_seed(0)
    config = dict(in_channels=2, out_channels=2, block_out_channels=block_out_channels, layers_per_block=1)
    unet = ConditionalUNet(
        **config, attention_levels=(False, True), num_attention_heads=2, norm_num_groups=4, **kwargs
    )
    torch.nn.init.normal_(unet.conv_out.weight, std=0.1)  # zero-initialised: make ε_θ depend on its input
    return unet.eval()


def killed_and_resumed(
    args_for: Callable[[Path], list[str]],
    tmp: Path,
    checkpoint: str = "checkpoint-4",
    script: str = "train_ldm.py",
):
    """train_ldm.py (or `script`) twice with the flags `args_for(output_dir)`: tmp/ref runs to the end;
    tmp/run is killed with SIGKILL as soon as its `checkpoint` exists (before it saved a pipeline), then
    resumed with `--resume_from_checkpoint latest`. Returns (ref, run) once both have finished."""
    name, script = script, [sys.executable, str(ROOT / "training" / script)]
    quiet = dict(cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, text=True)
    ref, run = tmp / "ref", tmp / "run"
    reference = subprocess.Popen([*script, *args_for(ref)], stderr=subprocess.PIPE, **quiet)
    victim = subprocess.Popen([*script, *args_for(run)], stderr=subprocess.DEVNULL, **quiet)
    deadline = time.time() + 300
    while not (run / checkpoint).is_dir() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (run / "model_index.json").exists()
    resumed = run_script(name, *args_for(run), "--resume_from_checkpoint", "latest")
    assert "resuming from" in resumed.stdout + resumed.stderr
    _, stderr = reference.communicate(timeout=600)
    assert reference.returncode == 0, stderr[-3000:]
    return ref, run
