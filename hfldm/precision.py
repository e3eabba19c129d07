"""Which dtype pays on this machine: bf16 where the hardware computes in it, fp32 elsewhere.

bf16 halves the bytes of weights and activations, and runs at up to twice fp32's speed where the hardware
has bf16 arithmetic: CUDA GPUs of compute capability 8 and up, CPUs with AVX512-BF16 or AMX (Intel Xeons
since Cooper Lake / Sapphire Rapids, AMD Zen 4+). Elsewhere torch emulates it: on an AVX2-only CPU a bf16
matmul took 100× the fp32 one (docs/speed.md). `default_dtype` chooses from these features; `hfldm env`
prints the choice. Pipelines keep z_t and the scheduler's arithmetic in fp32 whatever the U-Net's dtype,
and `half_precision` keeps the autoencoder's decode in fp32 (its output is the image).
"""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def has_fast_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether `device` computes bf16 natively (not emulated)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.cpu._is_avx512_bf16_supported()) or bool(
            torch.cpu._is_amx_tile_supported()
        )
    return False


def default_dtype(device: str | torch.device = "cpu") -> torch.dtype:
    """bf16 where `device` has bf16 arithmetic, else fp32."""
    return torch.bfloat16 if has_fast_bf16(device) else torch.float32


def resolve_dtype(name: str, argument: str = "--dtype", device: str | torch.device = "cpu") -> torch.dtype:
    """ "auto" (`default_dtype`), "float32", "bfloat16" or "float16" -> the torch dtype; a ValueError naming
    `argument` for any other name, and for float16 on a CPU (torch's CPU fp16 convolutions are slow)."""
    if name == "auto":
        return default_dtype(device)
    if name not in DTYPES:
        raise ValueError(f"{argument}: expected auto, {', '.join(DTYPES)}; got {name!r}")
    if name == "float16" and torch.device(device).type == "cpu":
        raise ValueError(f"{argument}: float16 needs a GPU; use bfloat16 (or auto) on a CPU")
    return DTYPES[name]


def half_precision(pipe, dtype: torch.dtype):
    """`pipe` with its U-Net and text encoder in `dtype` and the autoencoder in fp32; returns `pipe`."""
    # torch's Module.to: diffusers' ModelMixin.to adds only a warning, printed on every dtype cast (0.42)
    for name in ("unet", "text_encoder"):
        module = getattr(pipe, name, None)
        if module is not None:
            torch.nn.Module.to(module, dtype=dtype)
    torch.nn.Module.to(pipe.vae, dtype=torch.float32)
    return pipe


def describe(device: str | torch.device = "cpu") -> str:
    """One line for `hfldm env`: the default dtype and why."""
    if has_fast_bf16(device):
        return f"bfloat16 ({torch.device(device).type} has bf16 arithmetic)"
    return f"float32 (no bf16 arithmetic on {torch.device(device).type}: bf16 would be emulated, slower)"
