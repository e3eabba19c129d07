"""Few-step sampling against the teacher (docs/few_step.md): 4 images, the teacher at 25 guided DDIM steps
(2 U-Net rows per image per step) against its consistency-distilled student at 4 LCMScheduler steps (one
row, w embedded), interleaved pairs, the median of the per-pair ratios, in each mode: fp32, bf16 (U-Net and
τ_θ bf16, autoencoder and sampler fp32; skipped where bf16 is emulated unless --force-bf16) and compiled bf16
(torch.compile of both U-Nets, fullgraph).

The student is --student (a folder saved by training/distill.py; default: the bundled models/hfldm-emoji-lcm
when it is there), else the teacher's U-Net with a zero-initialised w-embedding: the same computation as a
trained student's, so the same time.

    python benchmarks/bench_few_step.py [--modes fp32,bf16,bf16-compiled] [--out docs/few_step_speed]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch
from bench_unet import interleaved_pairs
from diffusers import LCMScheduler

from hfldm.eval.outputs import output_file, run_benchmark
from hfldm.pipelines.loading import load_pipeline
from hfldm.pipelines.pipeline_latent_diffusion import LatentDiffusionPipeline
from hfldm.precision import half_precision, has_fast_bf16
from hfldm.schedulers.ddim import DDIMScheduler
from hfldm.training.consistency import student_from_teacher

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["grinning face", "red apple", "cat face", "rocket"]
MODES = {
    "fp32": (torch.float32, False),
    "bf16": (torch.bfloat16, False),
    "bf16-compiled": (torch.bfloat16, True),
}


def pipelines(teacher: str, student: str | None) -> tuple[LatentDiffusionPipeline, LatentDiffusionPipeline]:
    """(the teacher with DDIM, the student with LCMScheduler), fp32, no progress bars."""
    pipe = load_pipeline(teacher)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    if student:
        fast = load_pipeline(student)
    else:
        unet = student_from_teacher(pipe.unet, time_cond_proj_dim=256).eval()
        fast = LatentDiffusionPipeline(**(pipe.components | {"unet": unet}))
        fast.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    for p in (pipe, fast):
        p.set_progress_bar_config(disable=True)
    return pipe, fast


def call(pipe, steps: int):
    return lambda: pipe(
        PROMPTS, num_inference_steps=steps, guidance_scale=3.0, generator=torch.Generator().manual_seed(0)
    )


def mode_pairs(args, mode: str) -> dict:
    """Median seconds of each side and the median of the per-pair ratios student / teacher in `mode`."""
    dtype, compiled = MODES[mode]
    teacher, student = pipelines(args.teacher, args.student)
    if dtype != torch.float32:
        teacher, student = half_precision(teacher, dtype), half_precision(student, dtype)
    if compiled:
        teacher.unet = torch.compile(teacher.unet, fullgraph=True)
        student.unet = torch.compile(student.unet, fullgraph=True)
    steps = {"teacher 25 guided": call(teacher, 25), "student 4": call(student, 4)}
    for fn in steps.values():  # warm-up (compiles)
        fn()
    pairs = interleaved_pairs(steps, args.reps, args.stall)
    ratios = [p["student 4"][0] / p["teacher 25 guided"][0] for p in pairs]
    seconds = {name: statistics.median(p[name][0] for p in pairs) for name in steps}
    return {
        **seconds,
        "ratio student / teacher (median of pairs)": statistics.median(ratios),
        "pairs": len(pairs),
    }


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else the machine type."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default=str(ROOT / "models" / "hfldm-emoji"))
    bundled = ROOT / "models" / "hfldm-emoji-lcm"
    default_student = str(bundled) if (bundled / "model_index.json").is_file() else None
    parser.add_argument("--student", default=default_student, help="a distilled student folder (see above)")
    parser.add_argument("--modes", default="fp32,bf16,bf16-compiled")
    parser.add_argument("--force-bf16", action="store_true", help="time bf16 even where it is emulated")
    parser.add_argument("--reps", type=int, default=9, help="interleaved pairs per mode")
    parser.add_argument(
        "--stall", type=float, default=1.5, help="drop a pair if a probe exceeds this × its min"
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "few_step_speed"), help="prefix of the .json")
    args = parser.parse_args()
    results = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "fast_bf16": has_fast_bf16()}
    for mode in args.modes.split(","):
        if MODES[mode][0] == torch.bfloat16 and not (has_fast_bf16() or args.force_bf16):
            results[mode] = "skipped: no AVX512-BF16 / AMX on this CPU (bf16 emulated); --force-bf16 runs it"
            continue
        results[mode] = mode_pairs(args, mode)
        print(mode, json.dumps(results[mode]), flush=True)
    out = output_file(Path(args.out), ".json")
    previous = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps(previous | results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    run_benchmark(main)
