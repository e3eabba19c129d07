"""Twice the resolution for the same diffusion cost (the LDM thesis; #20 experiment 2).

An LDM's cost per step is set by its latent shape, not by the image size: a KL-f8 autoencoder turns 64 px
emoji into the same 8 × 8 × 4 latents as the bundled KL-f4 at 32 px, so the same U-Net trains and samples
64 px emoji at the same cost. This script compares the two models (`--model-64` on `--dataset-64`, and
`--model` on `--dataset`, the bundled 32 px one: text pipelines trained with the same recipe,
ldm_emoji64_f8.yaml and ldm_emoji32.yaml) on their held-out splits:

- seconds per LDM training step of each (U-Net + τ_θ forward, loss, backward, AdamW on a batch of their own
  latents and captions), timed in interleaved pairs, and the encoder pass E(x) each step pays without a cache;
- the autoencoders: PSNR / SSIM of D(E(x)) at each one's resolution;
- samples, one per held-out caption (seeded): FID / KID against the training images and caption retrieval
  with the project's text–image model, whose 32 px input is what both are judged at (64 px images are
  resized to 32 px with an antialiased bilinear filter, `TextImageModel.image_features`), and the 64 px
  detail no 32 px model has: SWD ×10³ / patch Fréchet distance at the finest Laplacian level against the real
  64 px images (`hfldm.eval.swd`), the 32 px samples bicubic-upsampled to 64 px;
- a figure: real 64 px | 64 px model | 32 px model (nearest-neighbour 2×) for 16 held-out captions.

    python benchmarks/double_resolution.py --model-64 runs/ldm-emoji64-f8 --dataset-64 data/emoji/64 \
        --model models/hfldm-emoji --dataset data/emoji/32 --out docs/double_resolution
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

import torch
from bench_unet import interleaved_pairs

from hfldm.commands.eval import add_eval_flags, check_args, guidance_scale, load_eval_set, load_feature_model
from hfldm.commands.shared import load_pipeline
from hfldm.eval.outputs import output_file, run_benchmark

FIGURE_ROWS = 16


def step_function(pipe, captions: list[str], latents: torch.Tensor, seed: int = 0):
    """One training step of `pipe`'s U-Net and τ_θ on (latents, captions), as train_ldm.py takes it: noise
    at random t, ε-prediction loss (LDM eq. 2), backward, AdamW. Returns the step as a callable."""
    from hfldm.training.conditioner import Conditioner
    from hfldm.training.losses import diffusion_loss

    unet, text_encoder, scheduler = pipe.unet.train(), pipe.text_encoder.train(), pipe.scheduler
    condition = Conditioner("text", pipe.tokenizer, text_encoder, train_text_encoder=True)
    params = [*unet.parameters(), *text_encoder.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-6, fused=True)  # train_ldm.py's optimiser
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(latents.shape, generator=g)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(latents),), generator=g)
    drop = torch.zeros(len(latents), dtype=torch.bool)
    z_t = scheduler.add_noise(latents, noise, timesteps)  # z_t = √ᾱ_t z_0 + √(1 − ᾱ_t) ε

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        kwargs = condition({"text": captions}, drop, latents.device)
        prediction = unet(z_t, timesteps, **kwargs).sample
        diffusion_loss(scheduler, prediction, latents, noise, timesteps).backward()
        optimizer.step()

    return step


def ratio_summary(pairs: list[dict], a: str, b: str) -> dict:
    """Median wall seconds of `a` and `b` and the median of the per-pair ratios a / b."""
    return {
        "seconds": {k: statistics.median(p[k][0] for p in pairs) for k in (a, b)},
        "ratio": statistics.median(p[a][0] / p[b][0] for p in pairs),
        "pairs_kept": len(pairs),
    }


def time_steps(pipes: dict, data: dict, batch_size: int, reps: int, stall: float) -> dict:
    """Interleaved training steps and encoder passes of the two models on batches of their own data."""
    from hfldm.autoencoders.latent_space import latent_space

    steps, encodes = {}, {}
    for name, pipe in pipes.items():
        x = 2 * data[name].test_images[:batch_size] - 1  # [0, 1] -> [-1, 1]
        ae = latent_space(pipe.vae)
        with torch.no_grad():
            z0 = ae.latents(x)
        steps[name] = step_function(pipe, data[name].captions[:batch_size], z0)
        encodes[name] = lambda ae=ae, x=x: torch.no_grad()(ae.latents)(x)
    a, b = list(pipes)
    print("training steps (pairs):", file=sys.stderr)
    train = ratio_summary(interleaved_pairs(steps, reps, stall), a, b)
    print("encoder passes E(x) (pairs):", file=sys.stderr)
    encode = ratio_summary(interleaved_pairs(encodes, reps, stall), a, b)
    return {"batch_size": batch_size, "train_step": train, "encode": encode}


def upsample(images: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """[0, 1] images (N, 3, r, r) -> (N, 3, size, size); bicubic output clamped to [0, 1]."""
    if images.shape[-1] == size:
        return images
    out = torch.nn.functional.interpolate(images, size=size, mode=mode)
    return out.clamp(0, 1)


def detail_figures(real: torch.Tensor, fake: torch.Tensor) -> dict:
    """SWD ×10³ and patch Fréchet distance at the finest pyramid level (the image size) of [0, 1] images."""
    from hfldm.eval.swd import swd

    result = swd(real, upsample(fake, real.shape[-1], "bicubic"))
    return {"level_px": result["levels"][0], "swd": result["swd"][0], "frechet": result["frechet"][0]}


def model_row(name: str, pipe, images: torch.Tensor, figures: dict, real_64: torch.Tensor) -> dict:
    """One table row: resolution, latent shape, and the sample figures of the 'all' subset."""
    fid, text = figures["all"]["fid"]["generated_vs_train"], figures["all"]["text_image"]["generated"]
    return {
        "model": name,
        "resolution": images.shape[-1],
        "downsample_factor": pipe.vae_scale_factor,
        "fid": fid["fid"],
        "kid": fid["kid_mean"],
        "clip_score": text["clip_score"],
        "top1": text["top1"],
        "top5": text["top5"],
        "detail_64": detail_figures(real_64, images),
        "floor_fid": figures["all"]["fid"]["floor_vs_train"]["fid"],
    }


def markdown(result: dict) -> str:
    timing, ae = result["timing"], result["autoencoders"]
    (a, b), ts, enc = list(ae), timing["train_step"], timing["encode"]
    lines = [
        f"`{result['command']}`",
        "",
        f"Feature network `{result['feature_network']}` (32 px input); {result['num_samples']} held-out "
        f"captions, DDIM {result['steps']} steps, w = {result['guidance_scale']:g}, seed {result['seed']}.",
        "",
        "| model | image | latent | AE PSNR (dB) ↑ | AE SSIM ↑ | s / train step | FID ↓ | KID ↓ | "
        "CLIP-score ↑ | top-5 ↑ | SWD ×10³, 64 px level ↓ | patch Fréchet, 64 px ↓ |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        name, d = row["model"], row["detail_64"]
        cells = [name, f"{row['resolution']} px", ae[name]["latent_shape"]]
        cells += [f"{ae[name]['psnr']:.2f}", f"{ae[name]['ssim']:.4f}", f"{ts['seconds'][name]:.3f}"]
        cells += [f"{row['fid']:.4g}", f"{row['kid']:.4g}", f"{row['clip_score']:.2f}"]
        cells += [f"{100 * row['top5']:.1f} %", f"{d['swd']:.1f}", f"{d['frechet']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    real = result["real_detail_64"]
    lines += [
        f"| real held-out | 64 px | | | | | {result['rows'][0]['floor_fid']:.4g} (floor) | | | | "
        f"{real['swd']:.1f} | {real['frechet']:.2f} |",
        "",
        f"Train step {a} / {b}, batch {timing['batch_size']}: median per-pair ratio **{ts['ratio']:.3f}** "
        f"({ts['pairs_kept']} pairs kept); encoder pass E(x) without a latent cache: {enc['ratio']:.2f}× "
        f"({1e3 * enc['seconds'][a]:.0f} vs {1e3 * enc['seconds'][b]:.0f} ms).",
    ]
    return "\n".join(lines) + "\n"


def figure(real_64: torch.Tensor, samples: dict[str, torch.Tensor]):
    """real 64 px | each model's samples at 64 px (smaller ones nearest-neighbour), one row per caption."""
    from hfldm.training.validation import comparison_grid

    columns = [real_64] + [upsample(s, real_64.shape[-1], "nearest") for s in samples.values()]
    return comparison_grid([2 * c[:FIGURE_ROWS] - 1 for c in columns], scale=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_eval_flags(parser)  # --model, --dataset: the 32 px f = 4 model (default the bundled one), its data
    parser.add_argument("--model-64", default="runs/ldm-emoji64-f8", help="the 64 px f = 8 text pipeline")
    parser.add_argument("--dataset-64", default="data/emoji/64", help="its data: 64 px images")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps")
    parser.add_argument("--train-batch-size", type=int, default=64, help="of the timed training steps")
    parser.add_argument("--reps", type=int, default=10, help="timed pairs")
    parser.add_argument(
        "--stall", type=float, default=2.0, help="drop pairs whose probe ran this much slower"
    )
    parser.add_argument("--out", default="docs/double_resolution", help="writes OUT.json, OUT.md, OUT.png")
    args = parser.parse_args(argv)
    check_args(args)
    if not Path(args.dataset_64).exists():
        raise FileNotFoundError(f"--dataset-64: no such folder {args.dataset_64}")
    text_image_model, features = load_feature_model(args.feature_model)
    from hfldm.eval.report import evaluate, generate_images, reconstruction_figures

    models = {"f = 8, 64 px": (args.model_64, args.dataset_64), "f = 4, 32 px": (args.model, args.dataset)}
    pipes, data = {}, {}
    for name, (folder, dataset) in models.items():
        pipes[name] = load_pipeline(folder, "ddim", args.device, "--model", dtype=args.dtype)
        if not pipes[name].is_text_conditional:
            raise ValueError(f"--model: {folder} is not a text-conditional pipeline")
        data[name] = load_eval_set(argparse.Namespace(**{**vars(args), "dataset": dataset}), pipes[name])
    real_64 = data["f = 8, 64 px"].test_images
    if real_64.shape[-1] != 64:
        raise ValueError(
            f"--dataset-64: {args.dataset_64} holds {real_64.shape[-1]} px images for this model"
        )

    w = guidance_scale(pipes["f = 4, 32 px"], args.guidance_scale)
    timing = time_steps(pipes, data, args.train_batch_size, args.reps, args.stall)
    autoencoders, rows, samples = {}, [], {}
    for name, pipe in pipes.items():
        print(f"{name}: reconstructions, samples", file=sys.stderr)
        rec = reconstruction_figures(pipe.vae, data[name].test_images, features)
        size = data[name].test_images.shape[-1] // pipe.vae_scale_factor
        shape = f"{size}×{size}×{pipe.unet.config.out_channels}"
        autoencoders[name] = {"psnr": rec["psnr"], "ssim": rec["ssim"], "latent_shape": shape}
        pipe.unet.eval(), pipe.text_encoder.eval()
        images, _ = generate_images(pipe, data[name], args.steps, w, args.seed, args.batch_size)
        figures = evaluate(images, data[name], text_image_model, features)
        rows.append(model_row(name, pipe, images, figures, real_64))
        samples[name] = images
    command = "python benchmarks/double_resolution.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    result = {
        "command": command,
        "feature_network": features.name,
        "num_samples": len(real_64),
        "steps": args.steps,
        "guidance_scale": w,
        "seed": args.seed,
        "timing": timing,
        "autoencoders": autoencoders,
        "rows": rows,
        "real_detail_64": detail_figures(real_64, data["f = 8, 64 px"].train_images),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    output_file(out, ".json").write_text(json.dumps(result, indent=2) + "\n")
    output_file(out, ".md").write_text(markdown(result))
    figure(real_64, samples).save(output_file(out, ".png"))
    print(markdown(result), end="")
    return 0


if __name__ == "__main__":
    run_benchmark(main)
