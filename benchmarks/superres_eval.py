"""Super-resolution on the held-out emoji (LDM §4.4): the SR model against bicubic upsampling, with the
autoencoder's reconstruction D(E(x)) as the ceiling of any model decoded by it.

    python benchmarks/superres_eval.py --model models/hfldm-emoji-sr --dataset data/emoji/64 \
        --out docs/superres

Every held-out image x (64 px) is bicubically downsampled by s (antialiased, no noise: the clean version of
the training degradation) to y; each method maps y back to 64 px. Reported against x, in [0, 1]:
- PSNR and SSIM (`hfldm.eval.reconstruction`);
- FID / KID with the project's offline feature network (`hfldm eval`'s), against the images of
  --reference-split (default train: unpaired real 64 px emoji, so that a method is not compared with its own
  targets, whose features it nearly reproduces). The network sees 32 px: whole images are resized to 32 px
  (antialiased) and mostly measure what y already holds; "patch FID" feeds the four 32 px quadrants of every
  image at their native resolution instead. The "real" row (held-out x against the reference) is the floor.
- Both FIDs use a network trained to match images with captions, which barely sees sharpness; so also the
  distances of local patch statistics at the 64 px level of a Laplacian pyramid (`hfldm.eval.swd`: SWD of
  Karras et al. 2018 and the Fréchet distance of the same 7×7 patches), which is the band that 2×
  super-resolution fills in, with no learnt features.
The autoencoder row encodes x itself (posterior mean): it is an upper bound for SR, not a competitor.
Writes OUT.json, OUT.md (the table) and OUT.png (16 images: low-res | bicubic | SR | D(E(x)) | real).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import datasets
import numpy as np
import torch

from hfldm.autoencoders.latent_space import latent_space
from hfldm.commands.eval import load_feature_model
from hfldm.eval.fid import compute_fid_kid
from hfldm.eval.outputs import output_file, run_benchmark
from hfldm.eval.reconstruction import psnr, ssim
from hfldm.eval.swd import swd
from hfldm.pipelines.loading import load_pipeline
from hfldm.pipelines.pipeline_latent_diffusion_superres import LatentDiffusionSuperResolutionPipeline
from hfldm.resources import bundled
from hfldm.training.superres import bicubic_down, bicubic_up
from hfldm.training.validation import comparison_grid


def load_images(dataset: str, split: str, num_images: int | None) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] of the first `num_images` (None: all) of the split."""
    rows = datasets.load_from_disk(dataset)[split]
    rows = rows.select(range(min(num_images or len(rows), len(rows))))
    arrays = [np.asarray(image.convert("RGB"), dtype=np.float32) for image in rows["image"]]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1


@torch.no_grad()
def super_resolve(pipe, y: torch.Tensor, steps: int, seed: int, batch_size: int) -> torch.Tensor:
    """SR(y) in [-1, 1], image i drawn with a generator seeded by seed + i (as `hfldm upscale`)."""
    out = []
    for start in range(0, len(y), batch_size):
        batch = y[start : start + batch_size]
        generators = [torch.Generator().manual_seed(seed + start + i) for i in range(len(batch))]
        images = pipe((batch + 1) / 2, num_inference_steps=steps, generator=generators, output_type="pt")
        out.append(images.images.float().cpu() * 2 - 1)
    return torch.cat(out)


@torch.no_grad()
def reconstruct(vae, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """D(E(x)) with the posterior mean, in [-1, 1]."""
    ae = latent_space(vae)
    return torch.cat([ae.decode_latents(ae.latents(b)).clamp(-1, 1) for b in x.split(batch_size)])


def quadrants(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (4N, C, H/2, W/2): the four corners of every image."""
    h, w = images.shape[-2] // 2, images.shape[-1] // 2
    return torch.cat([images[..., i : i + h, j : j + w] for i in (0, h) for j in (0, w)])


def scores(method: torch.Tensor, x: torch.Tensor, reference: torch.Tensor, features, kid_subset_size: int):
    """PSNR / SSIM against the targets x; FID / KID, patch FID and the finest Laplacian level's patch
    distances against the unpaired `reference`."""
    whole = compute_fid_kid(reference, method, features, kid_subset_size, value_range=(-1, 1))
    patches = compute_fid_kid(
        quadrants(reference), quadrants(method), features, kid_subset_size, value_range=(-1, 1)
    )
    return {
        "psnr": psnr(method, x, value_range=(-1, 1)),
        "ssim": ssim(method, x, value_range=(-1, 1)),
        "fid": whole["fid"],
        "kid": whole["kid_mean"],
        "patch_fid": patches["fid"],
        "laplacian_levels": swd(reference, method),  # finest (64 px) level first
        "feature_network": whole["feature_network"],
    }


def table(results: dict, header: str) -> str:
    lines = [
        header,
        "",
        "| method | PSNR (dB) ↑ | SSIM ↑ | FID vs real ↓ | KID vs real ↓ | patch FID vs real ↓ "
        "| SWD ×10³, 64 px level ↓ | patch Fréchet, 64 px level ↓ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        cells = [f"{r['psnr']:.2f}", f"{r['ssim']:.4f}", f"{r['fid']:.2f}", f"{r['kid']:.4f}"]
        finest = r["laplacian_levels"]
        cells += [f"{r['patch_fid']:.2f}", f"{finest['swd'][0]:.1f}", f"{finest['frechet'][0]:.2f}"]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(bundled("hfldm-emoji-sr")), help="SR pipeline folder")
    parser.add_argument("--dataset", default="data/emoji/64", help="save_to_disk folder of high-res images")
    parser.add_argument("--split", default="test")
    parser.add_argument("--reference-split", default="train", help="real images FID is measured against")
    parser.add_argument("--num-images", type=int, default=None, help="first N of the split (default: all)")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps of the SR model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--feature-model", default="models/hfldm-textimage")
    parser.add_argument("--figure-images", type=int, default=16)
    parser.add_argument("--out", default="docs/superres", help="writes OUT.json, OUT.md, OUT.png")
    args = parser.parse_args()

    pipe = load_pipeline(args.model, "--model", pipeline_class=LatentDiffusionSuperResolutionPipeline)
    pipe.set_progress_bar_config(disable=True)
    x = load_images(args.dataset, args.split, args.num_images)
    s = pipe.upscale_factor
    y = bicubic_down(x, s).clamp(-1, 1)
    start = time.perf_counter()
    sr = super_resolve(pipe, y, args.steps, args.seed, args.batch_size)
    seconds = time.perf_counter() - start
    methods = {
        "bicubic": bicubic_up(y, s),
        f"hfldm SR ({args.steps} DDIM steps)": sr,
        "autoencoder D(E(x)) (ceiling)": reconstruct(pipe.vae, x, args.batch_size),
    }
    _, features = load_feature_model(args.feature_model)
    kid_subset_size = min(100, len(x))
    reference = load_images(args.dataset, args.reference_split, None)
    results = {
        name: scores(images, x, reference, features, kid_subset_size) for name, images in methods.items()
    }
    results["real held-out x (floor)"] = scores(x, x, reference, features, kid_subset_size)
    results["real held-out x (floor)"]["psnr"] = float("inf")
    header = (
        f"{len(x)} images of {args.dataset} [{args.split}], {x.shape[-1]} px from {x.shape[-1] // s} px "
        f"(bicubic {s}x down); SR model {args.model}, seed {args.seed}; {seconds / len(x):.2f} s per image "
        f"on this machine; FID / KID against the {len(reference)} images of [{args.reference_split}], "
        f"feature network `{results['bicubic']['feature_network']}`; SWD / patch Fréchet from 128 random "
        f"7×7 patches per image of the finest Laplacian level, against an equal-size seeded subsample of the "
        f"reference"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    output_file(out, ".json").write_text(json.dumps({"header": header, "results": results}, indent=2))
    output_file(out, ".md").write_text(table(results, header))
    k = args.figure_images
    low = torch.nn.functional.interpolate(y[:k], scale_factor=s, mode="nearest")
    comparison_grid([low, *(m[:k] for m in methods.values()), x[:k]]).save(output_file(out, ".png"))
    print(table(results, header))


if __name__ == "__main__":
    run_benchmark(main)
