"""The few-step figure of docs/few_step.md: held-out captions (rows) drawn by the teacher at 25 DDIM steps and
by its consistency-distilled student at 1, 2, 4 and 8 LCMScheduler steps (columns), w = 3, the same seed per
row in every column.

    python benchmarks/few_step_figure.py --teacher models/hfldm-emoji --student runs/emoji32-lcm \
        --out docs/few_step_samples.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from hfldm.data.grid import image_grid
from hfldm.eval.outputs import run_benchmark
from hfldm.pipelines.loading import load_pipeline
from hfldm.schedulers.ddim import DDIMScheduler

ROOT = Path(__file__).resolve().parents[1]


def draw(pipe, prompts: list[str], steps: int, seed: int) -> list:
    """One image per prompt, prompt i from generator seed + i."""
    generators = [torch.Generator().manual_seed(seed + i) for i in range(len(prompts))]
    return pipe(prompts, num_inference_steps=steps, guidance_scale=3.0, generator=generators).images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default=str(ROOT / "models" / "hfldm-emoji"))
    parser.add_argument("--student", required=True, help="a folder saved by training/distill.py")
    parser.add_argument(
        "--num-captions", type=int, default=8, help="held-out captions (example_captions.txt)"
    )
    parser.add_argument("--steps", default="1,2,4,8", help="the student's step counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "docs" / "few_step_samples.png"))
    args = parser.parse_args()
    captions = (Path(args.teacher) / "example_captions.txt").read_text().split("\n")
    prompts = [c.strip() for c in captions if c.strip()][: args.num_captions]
    teacher, student = load_pipeline(args.teacher, "--teacher"), load_pipeline(args.student, "--student")
    teacher.scheduler = DDIMScheduler.from_config(teacher.scheduler.config)
    for pipe in (teacher, student):
        pipe.set_progress_bar_config(disable=True)
    columns = {"teacher, 25 DDIM": draw(teacher, prompts, 25, args.seed)}
    for steps in (int(s) for s in args.steps.split(",")):
        columns[f"student, {steps} LCM"] = draw(student, prompts, steps, args.seed)
    images = [columns[name][row] for row in range(len(prompts)) for name in columns]
    labels = [f"{prompts[row]} · {name}" for row in range(len(prompts)) for name in columns]
    image_grid(images, labels, columns=len(columns)).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_benchmark(main)
