"""Validation during training: reconstruction metrics and grids for the autoencoder, comparison grids, and
`save_and_log` of any grid (each LDM task's own validation lives with the task). Grids are written as PNG
under output_dir/validation/ and logged to the trackers (tensorboard) at the same step. Call these on the
main process only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from PIL import Image

from hfldm.atomic import save_image
from hfldm.autoencoders.latent_space import latent_space
from hfldm.data.grid import tile
from hfldm.eval.reconstruction import codebook_usage, psnr, ssim


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """Images (B, 3, H, W) in [-1, 1] -> list of B RGB PIL images."""
    array = ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in array]


def comparison_grid(columns: list[torch.Tensor], scale: int = 1) -> Image.Image:
    """One row per image, one column per method: `columns` are (B, 3, H, W) in [-1, 1], all the same shape;
    the grid enlarged `scale`× with nearest neighbours, so small images stay crisp."""
    rows = [cell for row in zip(*(to_pil(c) for c in columns)) for cell in row]
    grid = tile(rows, len(columns))
    return grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST) if scale != 1 else grid


def reconstruction_grid(x: torch.Tensor, x_hat: torch.Tensor, pairs_per_row: int = 4) -> Image.Image:
    """One image of `input | reconstruction` pairs side by side, `pairs_per_row` pairs per row."""
    pairs = [cell for pair in zip(to_pil(x), to_pil(x_hat)) for cell in pair]
    return tile(pairs, 2 * pairs_per_row)


@torch.no_grad()
def evaluate_reconstructions(autoencoder, loader, max_images: int) -> tuple[dict, Image.Image]:
    """PSNR / SSIM (and VQ codebook usage) of `autoencoder` on up to `max_images` held-out images of `loader`
    (batches with pixel_values), reconstructed through the posterior mean (KL) or the quantiser (VQ).

    Returns (metrics dict, grid of the first 16 input | reconstruction pairs)."""
    ae = latent_space(autoencoder)
    xs, x_hats, codes = [], [], []
    for batch in loader:
        x = batch["pixel_values"]
        z = ae.latents(x)  # the posterior mean (KL) or the pre-quantisation code (VQ)
        x_hat = ae.decode_latents(z)
        if ae.codebook_size is not None:
            codes.append(ae.codebook_indices(z))
        xs.append(x.float().cpu())
        x_hats.append(x_hat.float().cpu())
        if sum(len(b) for b in xs) >= max_images:
            break
    x, x_hat = torch.cat(xs)[:max_images], torch.cat(x_hats)[:max_images]
    metrics = {"psnr": psnr(x_hat, x, value_range=(-1, 1)), "ssim": ssim(x_hat, x, value_range=(-1, 1))}
    if codes:
        usage = codebook_usage(torch.cat(codes), ae.codebook_size)
        metrics.update(codebook_perplexity=usage["perplexity"], codebook_usage=usage["usage"])
    return metrics, reconstruction_grid(x[:16], x_hat[:16])


def save_and_log(accelerator: Accelerator, image: Image.Image, output_dir: str, name: str, step: int) -> Path:
    """Write `image` to output_dir/validation/<name>-<step>.png, log it to the trackers; returns the path."""
    path = Path(output_dir) / "validation" / f"{name}-{step:06d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(image, path, "--output_dir")
    for tracker in accelerator.trackers:  # whichever trackers --report_to started
        if tracker.name == "tensorboard":
            tracker.writer.add_image(name, np.asarray(image), step, dataformats="HWC")
        elif hasattr(tracker, "log_images"):  # wandb, comet_ml, aim, ...: their own image logging
            tracker.log_images({name: [np.asarray(image)]}, step)
    return path
