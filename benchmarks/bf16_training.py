"""Does bf16 training keep the loss? A class-conditional digits LDM trained 500 steps in fp32 and in bf16
autocast (`--mixed_precision bf16`, accelerate) from the same seed, against the seed-to-seed spread of fp32.

Stages, in --work (each skipped when its output exists): 16 px digits data; the KL autoencoder (300 steps,
as the demo's fallback); three LDM runs of training/configs/ldm_digits.yaml for --steps steps: fp32 seed 0,
fp32 seed 1, bf16 seed 0. Each final U-Net is scored in fp32 on the same fixed draws: DDPM's simplified
objective (unweighted ‖ε − ε̂‖², LDM eq. 2) over all 1,797 digits, each with its label and one (t, ε) from
a generator seeded by its index (as benchmarks/inpaint_init_curve.py). bf16 "holds" when its gap to fp32
seed 0 is within the gap between the two fp32 seeds.

    python benchmarks/bf16_training.py --work runs/bf16-digits --out docs/bf16_training
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from inpaint_init_curve import draws

from hfldm.data.digits import load_digits_dataset
from hfldm.data.images import to_tensor
from hfldm.eval.outputs import output_file, run_benchmark
from hfldm.pipelines.loading import load_pipeline
from hfldm.precision import has_fast_bf16
from hfldm.schedulers.ddpm import DDPMScheduler
from hfldm.training.losses import diffusion_loss

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "training" / "configs"
QUICK = ["--validation_steps", "0", "--report_to", "none"]
RUNS = {"fp32, seed 0": ("no", 0), "fp32, seed 1": ("no", 1), "bf16, seed 0": ("bf16", 0)}


def run(command: list[str]) -> float:
    """Runs a training command; returns its wall seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *command], check=True)
    return time.perf_counter() - start


def train(work: Path, steps: int) -> dict[str, float]:
    """The data, the autoencoder and the three LDM runs; {run: seconds} of the LDM runs trained now."""
    data, autoencoder = work / "data", work / "autoencoder"
    if not (data / "16").is_dir():
        run(["-m", "hfldm.cli", "data", "digits", "--out", str(data), "--resolution", "16"])
    if not (autoencoder / "config.json").is_file():
        run(
            [
                str(ROOT / "training" / "train_autoencoder.py"),
                "--config",
                str(CONFIGS / "autoencoder_digits.yaml"),
                "--train_data_dir",
                str(data / "16"),
                "--max_train_steps",
                "300",
                "--disc_start",
                "100000",
                "--checkpointing_steps",
                "100000",
                "--output_dir",
                str(autoencoder),
                *QUICK,
            ]
        )
    seconds = {}
    for name, (precision, seed) in RUNS.items():
        out = work / run_folder(name)
        if (out / "model_index.json").is_file():
            continue
        seconds[name] = run(
            [
                str(ROOT / "training" / "train_ldm.py"),
                "--config",
                str(CONFIGS / "ldm_digits.yaml"),
                "--autoencoder",
                str(autoencoder),
                "--train_data_dir",
                str(data / "16"),
                "--max_train_steps",
                str(steps),
                "--checkpointing_steps",
                "100",
                "--mixed_precision",
                precision,
                "--seed",
                str(seed),
                "--output_dir",
                str(out),
                "--resume_from_checkpoint",
                "latest",
                *QUICK,
            ]
        )
    return seconds


def run_folder(name: str) -> str:
    return "ldm-" + name.replace(", ", "-").replace(" ", "")


@torch.no_grad()
def final_loss(folder: Path, batch_size: int = 256) -> float:
    """Mean unweighted diffusion loss of the saved U-Net (fp32) over all digits, fixed draws."""
    pipe = load_pipeline(str(folder))
    data = load_digits_dataset(16)
    x = torch.stack([to_tensor(image.convert("RGB")) for image in data["image"]])  # [-1, 1]
    labels = torch.tensor(data["label"])
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    z0 = pipe.latent_space.scale_latents(pipe.latent_space.latents(x))
    t, eps = draws(len(x), tuple(z0.shape[1:]), scheduler.config.num_train_timesteps)
    total = 0.0
    for start in range(0, len(x), batch_size):
        s = slice(start, start + batch_size)
        z_t = scheduler.add_noise(z0[s], eps[s], t[s])  # DDPM eq. 4
        prediction = pipe.unet(z_t, t[s], class_labels=labels[s]).sample
        total += float(diffusion_loss(scheduler, prediction, z0[s], eps[s], t[s])) * len(x[s])
    return total / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/bf16-digits")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--out", default="docs/bf16_training")
    args = parser.parse_args()
    work, out = Path(args.work), Path(args.out)
    seconds = train(work, args.steps)
    losses = {name: final_loss(work / run_folder(name)) for name in RUNS}
    seed_gap = abs(losses["fp32, seed 1"] - losses["fp32, seed 0"])
    bf16_gap = abs(losses["bf16, seed 0"] - losses["fp32, seed 0"])
    result = dict(
        steps=args.steps,
        losses=losses,
        train_seconds=seconds,
        seed_gap=seed_gap,
        bf16_gap=bf16_gap,
        holds=bf16_gap <= seed_gap,
        fast_bf16=has_fast_bf16("cpu"),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    output_file(out, ".json").write_text(json.dumps(result, indent=1) + "\n")
    verdict = "within" if result["holds"] else "outside"
    rows = [f"| {n} | {v:.5f} | {seconds.get(n, float('nan')):.0f} |" for n, v in losses.items()]
    lines = [
        f"`python benchmarks/bf16_training.py --work {args.work} --out {args.out}`: class-conditional "
        f"digits LDM (unet_tiny), {args.steps} steps × 32; loss = unweighted ‖ε − ε̂‖² in fp32 over all "
        "1,797 digits, fixed draws.",
        "",
        "| run | final loss | train wall s |",
        "|---|---|---|",
        *rows,
        "",
        f"bf16 − fp32 (same seed): {bf16_gap:.5f}; fp32 seed 1 − seed 0: {seed_gap:.5f} → "
        f"**{verdict} the seed-to-seed spread**",
    ]
    output_file(out, ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    run_benchmark(main)
