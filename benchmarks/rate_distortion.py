"""Rate–distortion along the reverse process (LDM Fig. 2; Ho et al. 2020 §4.3) of trained pipelines on the
held-out emoji, with the autoencoder's own reconstruction error marked.

    python benchmarks/rate_distortion.py --model "LDM (bundled, f = 4)=models/hfldm-emoji" \
        --dataset data/emoji/32 --out docs/rate_distortion

For each pipeline and each of --timesteps log-spaced timesteps k: z_k = √ᾱ_k z_0 + √(1 − ᾱ_k) ε for every
held-out image (z_0 = E(x)·scale; ε from a generator seeded by k), the model's ẑ_0 conditioned on the
image's caption (no guidance), and
- its MSE m_k in the model's own space, from which `hfldm.eval.rate_distortion` sums the bound's KL terms
  into the rate R(k) in bits per model dimension (per latent dimension for an LDM) and per pixel dimension
  (× dims / (3·H·W));
- the distortion: RMSE of D(ẑ_0 / scale) against x, on the 0–255 scale (in pixel space for every model).
A pixel-space model (an f = 1 first stage) gives the paper's curve (a); an LDM's curve starts where its
autoencoder's D(E(x)) error lies (the dashed line). Writes OUT.json, OUT.md and OUT.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from hfldm.eval.emoji_split import load_emoji_split
from hfldm.eval.outputs import output_file, run_benchmark
from hfldm.eval.rate_distortion import log_spaced_timesteps, prior_kl_bits, rate_distortion
from hfldm.pipelines.loading import load_pipeline
from hfldm.schedulers.ddpm import DDPMScheduler
from hfldm.schedulers.prediction import predict_x0_and_eps


def rmse_255(a: torch.Tensor, b: torch.Tensor) -> float:
    """RMSE of images in [-1, 1], on the 0–255 scale."""
    return float(((a.float() - b.float()) ** 2).mean().sqrt()) * 127.5


@torch.no_grad()
def curve(pipe, x: torch.Tensor, captions: list[str], count: int, batch_size: int) -> dict:
    """The rate–distortion points of `pipe` on x (N, 3, H, W) in [-1, 1]; see the module doc."""
    ae, scheduler = pipe.latent_space, DDPMScheduler.from_config(pipe.scheduler.config)
    abar = scheduler.alphas_cumprod.double()
    z0 = torch.cat([ae.scale_latents(ae.latents(b)) for b in x.split(batch_size)])
    timesteps = log_spaced_timesteps(len(abar), count)
    latent_mse, distortion = [], []
    for k in timesteps:
        g = torch.Generator().manual_seed(k)
        eps = torch.randn(z0.shape, generator=g)
        a = abar[k].float()
        z_k = a.sqrt() * z0 + (1 - a).sqrt() * eps  # DDPM eq. 4
        squared, decoded = 0.0, []
        for s in range(0, len(x), batch_size):
            b = slice(s, s + batch_size)
            kwargs = (
                pipe.encode_conditions(captions[b], None, None, 1, 1.0)[2] if pipe.is_text_conditional else {}
            )
            out = pipe.unet(z_k[b], torch.full((len(z_k[b]),), k), **kwargs).sample
            z0_hat, _ = predict_x0_and_eps(out, z_k[b], a, scheduler.config.prediction_type)
            squared += float(((z0_hat - z0[b]) ** 2).double().sum())
            decoded.append(ae.decode_latents(ae.unscale_latents(z0_hat)).clamp(-1, 1))
        latent_mse.append(squared / z0.numel())
        distortion.append(rmse_255(torch.cat(decoded), x))
        print(
            f"k = {k:4d}: model-space MSE {latent_mse[-1]:.5f}, pixel RMSE {distortion[-1]:.2f}", flush=True
        )
    points = rate_distortion(
        timesteps, np.array(latent_mse), abar.numpy(), prior_kl_bits(z0, float(abar[-1]))
    )
    per_pixel = z0[0].numel() / x[0].numel()
    by_k = dict(zip(timesteps, distortion))
    reconstruction = torch.cat([ae.decode_latents(ae.latents(b)).clamp(-1, 1) for b in x.split(batch_size)])
    return {
        "timestep": points["timestep"],
        "rate_bits_per_model_dim": points["rate_bits_per_dim"],
        "rate_bits_per_pixel_dim": [r * per_pixel for r in points["rate_bits_per_dim"]],
        "distortion_rmse": [by_k[k] for k in points["timestep"]],
        "autoencoder_rmse": rmse_255(reconstruction, x),
        "model_dims_per_pixel_dim": per_pixel,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", action="append", required=True, help="LABEL=FOLDER of a trained pipeline")
    parser.add_argument("--dataset", default="data/emoji/32")
    parser.add_argument("--num-images", type=int, default=None, help="first N held-out images (default all)")
    parser.add_argument("--timesteps", type=int, default=40, help="log-spaced timesteps measured")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="docs/rate_distortion")
    args = parser.parse_args()
    test = load_emoji_split(args.dataset)["test"]
    n = min(args.num_images or len(test.images), len(test.images))
    x, captions = test.images[:n] * 2 - 1, test.captions[:n]
    curves = {}
    for item in args.model:
        label, folder = item.rsplit("=", 1)  # labels may hold "=", folders rarely do
        pipe = load_pipeline(folder, "--model")
        curves[label] = curve(pipe, x, captions, args.timesteps, args.batch_size)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    output_file(out, ".json").write_text(json.dumps({"num_images": n, "curves": curves}, indent=2) + "\n")
    lines = [f"Rate–distortion on {n} held-out emoji of {args.dataset}", ""]
    for label, c in curves.items():
        lines += [
            f"**{label}** (autoencoder D(E(x)) RMSE {c['autoencoder_rmse']:.2f})",
            "",
            "| t | rate (bits / model dim) | rate (bits / pixel dim) | RMSE (0–255) |",
            "|---|---|---|---|",
        ]
        for k, r, rp, d in zip(
            c["timestep"], c["rate_bits_per_model_dim"], c["rate_bits_per_pixel_dim"], c["distortion_rmse"]
        ):
            lines.append(f"| {k} | {r:.4f} | {rp:.4f} | {d:.2f} |")
        lines.append("")
    output_file(out, ".md").write_text("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, c in curves.items():
        (line,) = ax.plot(c["rate_bits_per_pixel_dim"], c["distortion_rmse"], marker=".", label=label)
        ax.axhline(
            c["autoencoder_rmse"], ls="--", color=line.get_color(), lw=1, label=f"{label}: autoencoder RMSE"
        )
    ax.set(
        xlabel="rate (bits per pixel dimension)",
        ylabel="distortion (RMSE, 0–255)",
        title="Rate–distortion along the reverse process",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(output_file(out, ".png"), dpi=120)
    print("\n".join(lines))


if __name__ == "__main__":
    run_benchmark(main)
