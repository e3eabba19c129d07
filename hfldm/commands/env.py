"""`hfldm env`: what to paste into a bug report (as `diffusers-cli env`): versions, CPU features, threads."""

from __future__ import annotations

import argparse
import os
import platform
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("hfldm", "torch", "diffusers", "transformers", "accelerate", "datasets", "peft", "gradio")
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")  # what bf16 speed depends on


def register(subparsers) -> None:
    parser = subparsers.add_parser("env", help="versions, CPU features and threads, for bug reports")
    parser.set_defaults(func=run)


def cpu_flags() -> list[str]:
    """The CPU_FLAGS this machine's /proc/cpuinfo lists (Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return [flag for flag in CPU_FLAGS if flag in flags]


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def report() -> dict[str, str]:
    """The lines of `hfldm env`, as {name: value}."""
    import torch

    lines = {f"{name} version": package_version(name) for name in PACKAGES}
    lines["Python"] = platform.python_version()
    lines["Platform"] = platform.platform()
    lines["CPU"] = platform.processor() or platform.machine()
    lines["CPU features (bf16)"] = ", ".join(cpu_flags()) or "none of " + ", ".join(CPU_FLAGS)
    lines["torch bf16 kernels (AVX512-BF16 / AMX)"] = str(
        torch.backends.mkldnn.is_available() and torch.cpu._is_avx512_bf16_supported()
    )
    from hfldm.precision import describe

    lines["default inference dtype (hfldm generate, demo, Space)"] = describe("cpu")
    lines["torch threads"] = str(torch.get_num_threads())
    lines["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", "unset")
    lines["CUDA"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "not available"
    return lines


def run(args: argparse.Namespace) -> int:
    for name, value in report().items():
        print(f"- {name}: {value}")
    return 0
