"""Tiny random super-resolution pipelines: hfldm's (KL, f = 2, 4 latent channels, U-Net 4 + 3 channels) and
diffusers' LDMSuperResolutionPipeline (VQModel with 3 latent channels, UNet2DModel with 6 input channels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import torch
from _ldm_fixtures import perturb, tiny_vae
from diffusers import DDIMScheduler, LDMSuperResolutionPipeline, UNet2DModel, VQModel

from hfldm import ConditionalUNet, LatentDiffusionSuperResolutionPipeline

LOW_RES = 8  # pixels of the hfldm pipeline's low-resolution images (its U-Net takes multiples of 2)
DIFFUSERS_LOW_RES = 32  # diffusers' pipeline resizes PIL images to multiples of 32

# in a fresh interpreter: load argv[1] with remote code, upscale the images in argv[2] with seeds 0 and 1
FRESH_LOADER = """
import sys, numpy as np, torch
from diffusers import DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True)
pipe.set_progress_bar_config(disable=True)
low_res = list(np.load(sys.argv[2]))
generators = [torch.Generator().manual_seed(s) for s in (0, 1)]
out = pipe(low_res, num_inference_steps=4, generator=generators, output_type="np").images
np.save(sys.argv[3], out)
print(type(pipe).__name__, type(pipe).__module__)
"""


def sr_unet(block_out_channels=(8, 16), in_channels: int = 7) -> ConditionalUNet:
    torch.manual_seed(3)
    unet = ConditionalUNet(
        sample_size=LOW_RES,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=block_out_channels,
        layers_per_block=1,
        attention_levels=False,
        num_attention_heads=2,
        norm_num_groups=4,
    )
    return perturb(unet, seed=3).eval()


def sr_pipeline(scale_latents: bool = True, **unet_kwargs) -> LatentDiffusionSuperResolutionPipeline:
    scheduler = DDIMScheduler(num_train_timesteps=100, clip_sample=False)  # the plain ODE step (η = 0)
    pipe = LatentDiffusionSuperResolutionPipeline(
        vae=tiny_vae("kl"), unet=sr_unet(**unet_kwargs), scheduler=scheduler, scale_latents=scale_latents
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def low_res_images(n: int, size: int = LOW_RES, seed: int = 0) -> list[PIL.Image.Image]:
    rng = np.random.RandomState(seed)
    return [PIL.Image.fromarray((rng.rand(size, size, 3) * 255).astype(np.uint8)) for _ in range(n)]


def upscale(pipe, image, seed=0, steps: int = 4, **kwargs) -> np.ndarray:
    """pipe(image).images as (N, H, W, 3) in [0, 1]; `seed` an int or a list (one generator per image)."""
    seeds = seed if isinstance(seed, list) else [seed]
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    generator = generators if isinstance(seed, list) else generators[0]
    return pipe(image, num_inference_steps=steps, generator=generator, output_type="np", **kwargs).images


def save_diffusers_ldm_sr(folder: Path) -> Path:
    """A tiny random diffusers LDMSuperResolutionPipeline, laid out like CompVis/ldm-super-resolution-4x-
    openimages (vqvae, unet with 6 input channels, scheduler), saved by diffusers itself."""
    torch.manual_seed(0)
    vqvae = VQModel(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=3,
        num_vq_embeddings=32,
        norm_num_groups=4,
    )
    unet = UNet2DModel(
        sample_size=DIFFUSERS_LOW_RES,
        in_channels=6,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        attention_head_dim=4,
    )
    scheduler = DDIMScheduler(num_train_timesteps=100, beta_schedule="scaled_linear", clip_sample=False)
    LDMSuperResolutionPipeline(vqvae=vqvae, unet=unet, scheduler=scheduler).save_pretrained(folder)
    return folder
