"""Where a pipeline call's time goes (docs/few_step.md's profile): cProfile over `--calls` calls of 4 images,
after warm-up, and the share of the total spent in the U-Net, the decoder, τ_θ and diffusers' module-walking
lookups (`_execution_device`, `ModelMixin.dtype`), and what one such lookup costs without the profiler.

    python benchmarks/profile_call.py --model models/hfldm-emoji-lcm --steps 4 --dtype bf16
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import torch
from diffusers import DiffusionPipeline

from hfldm.eval.outputs import run_benchmark
from hfldm.pipelines.loading import load_pipeline
from hfldm.precision import half_precision

PROMPTS = ["grinning face", "red apple", "cat face", "rocket"]
# (what, file suffix, function name) of the functions whose cumulative time is reported
PARTS = [
    ("U-Net", "hfldm/unets/unet.py", "forward"),
    ("decoder", "hfldm/autoencoders/kl.py", "decode_latents"),
    ("τ_θ (encode_prompt)", "pipelines/conditions.py", "encode_prompt"),
    ("diffusers' _execution_device", "diffusers/pipelines/pipeline_utils.py", "_execution_device"),
    ("diffusers' ModelMixin.dtype", "diffusers/models/modeling_utils.py", "dtype"),
]


def shares(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds of each of PARTS (0 when it was not called) and of the whole profile."""
    found = {name: 0.0 for name, _, _ in PARTS}
    for (path, _, function), (_, _, _, cumulative, _) in stats.stats.items():
        for name, suffix, wanted in PARTS:
            if function == wanted and path.endswith(suffix):
                found[name] = max(found[name], cumulative)  # recursive entries repeat the outer time
    return found | {"total": stats.total_tt}


def lookup_ms(lookup, repeats: int = 200) -> float:
    """Milliseconds of one call of `lookup()`, the mean of `repeats` without the profiler."""
    start = time.perf_counter()
    for _ in range(repeats):
        lookup()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/hfldm-emoji-lcm")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--guidance-scale", type=float, default=3.0)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    pipe = load_pipeline(args.model)
    pipe.set_progress_bar_config(disable=True)
    if args.dtype == "bf16":
        pipe = half_precision(pipe, torch.bfloat16)

    def call():
        generator = torch.Generator().manual_seed(0)
        pipe(PROMPTS, num_inference_steps=args.steps, guidance_scale=args.guidance_scale, generator=generator)

    for _ in range(3):
        call()
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.calls):
        call()
    profile.disable()
    found = shares(pstats.Stats(profile))
    total = found.pop("total")
    per_call = total / args.calls * 1e3
    print(f"{args.model}, {args.steps} steps, {args.dtype}: {per_call:.0f} ms a call under the profiler")
    for name, seconds in found.items():
        print(f"  {name:32s} {seconds / total:6.1%}")
    device = lookup_ms(lambda: DiffusionPipeline._execution_device.fget(pipe))
    dtype = lookup_ms(lambda: pipe.unet.dtype)
    print(f"one lookup, unprofiled: _execution_device {device:.2f} ms, U-Net dtype {dtype:.2f} ms")


if __name__ == "__main__":
    run_benchmark(main)
