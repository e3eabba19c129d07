"""Validation of the inpainting task: a grid masked | inpainted | real with the PSNR inside the masks.
Call on the main process only."""

from __future__ import annotations

import torch

from hfldm.data.grid import image_grid
from hfldm.training.validation import to_pil
from hfldm.unets.inpaint_condition import masked_image


def masked_psnr(x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (dB, images in [-1, 1]) over the pixels where `mask` (B, 1, H, W) is 1."""
    m = mask.expand_as(x).bool()
    mse = ((x_hat.float() - x.float())[m] ** 2).mean()
    return float(10 * torch.log10(4 / mse)) if mse > 0 else float("inf")  # peak-to-peak 2 in [-1, 1]


@torch.no_grad()
def inpaint(pipeline, x: torch.Tensor, masks: torch.Tensor, prompts, settings) -> torch.Tensor:
    """The pipeline's inpainting of images x (B, 3, H, W) in [-1, 1] under `masks`, in [-1, 1], image i
    drawn with a generator seeded by settings.seeds[i]."""
    generators = [torch.Generator().manual_seed(s) for s in settings.seeds[: len(x)]]
    out = pipeline(
        prompt=prompts, image=(x + 1) / 2, mask_image=masks, num_inference_steps=settings.num_inference_steps,
        guidance_scale=settings.guidance_scale if prompts else 1.0, generator=generators, output_type="pt",
    )  # fmt: skip
    return out.images.float().cpu() * 2 - 1


def inpaint_grid(pipeline, x: torch.Tensor, masks: torch.Tensor, prompts, settings) -> tuple:
    """(grid with one row per image: masked | inpainted | real, {"psnr_masked"})."""
    filled = inpaint(pipeline, x, masks, prompts, settings)
    shown = masked_image(x, masks) + masks  # the repainted region white, as a user draws it
    cells = [im for row in zip(to_pil(shown), to_pil(filled), to_pil(x)) for im in row]
    captions = [c for p in (prompts or [""] * len(x)) for c in ("masked", p or "inpainted", "real")]
    grid = image_grid(cells, captions, columns=3, cell=max(64, x.shape[-1]))
    return grid, {"psnr_masked": masked_psnr(filled, x, masks)}
