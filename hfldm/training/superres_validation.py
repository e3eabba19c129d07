"""Validation of the super-resolution task: the pipeline of the training components, and a grid
low-res | bicubic | SR | real of fixed images with the PSNR of SR and of bicubic upsampling.
Call these on the main process only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from accelerate import Accelerator

from hfldm.eval.reconstruction import psnr
from hfldm.training.superres import CONDITION_LAYOUT, bicubic_down
from hfldm.training.validation import comparison_grid


def assemble_superres_pipeline(accelerator: Accelerator, vae, unet, scheduler):
    """A LatentDiffusionSuperResolutionPipeline of the (unwrapped) training components: scaled latents, y by
    space-to-depth, a DDIM scheduler of the training noise schedule, progress bar off."""
    from hfldm.pipelines.pipeline_latent_diffusion_superres import LatentDiffusionSuperResolutionPipeline
    from hfldm.schedulers.ddim import DDIMScheduler

    pipeline = LatentDiffusionSuperResolutionPipeline(
        vae, accelerator.unwrap_model(unet), DDIMScheduler.from_config(scheduler.config),
        scale_latents=True, condition_layout=CONDITION_LAYOUT,
    )  # fmt: skip
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def bicubic_up(y: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, h·factor, w·factor), bicubic, clamped to [-1, 1]: the baseline."""
    return F.interpolate(y, scale_factor=factor, mode="bicubic", align_corners=False).clamp(-1, 1)


@torch.no_grad()
def upscale(pipeline, x: torch.Tensor, sr_factor: int, seed: int, num_inference_steps: int) -> tuple:
    """(y, bicubic(y), SR(y)) of high-res images x (B, 3, H, W) in [-1, 1], y their clean bicubic
    downsampling; all in [-1, 1], on CPU."""
    y = bicubic_down(x.float(), sr_factor).clamp(-1, 1)
    generators = [torch.Generator().manual_seed(seed + i) for i in range(len(x))]
    sr = pipeline((y.cpu() + 1) / 2, num_inference_steps=num_inference_steps, generator=generators,
                  output_type="pt").images  # fmt: skip
    return y.cpu(), bicubic_up(y, sr_factor).cpu(), sr.float().cpu() * 2 - 1


def superres_grid(pipeline, x: torch.Tensor, sr_factor: int, seed: int, num_inference_steps: int):
    """(grid, one row per image: low-res (nearest) | bicubic | SR | real; {"psnr_sr", "psnr_bicubic"})."""
    y, bicubic, sr = upscale(pipeline, x, sr_factor, seed, num_inference_steps)
    x = x.float().cpu()
    metrics = {
        "psnr_sr": psnr(sr, x, value_range=(-1, 1)),
        "psnr_bicubic": psnr(bicubic, x, value_range=(-1, 1)),
    }
    nearest = F.interpolate(y, scale_factor=sr_factor, mode="nearest")
    grid = comparison_grid([nearest, bicubic, sr, x])
    return grid, metrics
