"""The condition of an inpainting LDM (LDM §4.5; CompVis' `inpainting_big`, Stable Diffusion 2's inpainting
model): the encoded masked image and the mask on the latent grid, concatenated to z_t,

    ε_θ([z_t, E(x ⊙ (1 − m))·scale, m↓], t, τ_θ(y)),

with m = 1 where the image is to be repainted (diffusers' convention: white = repaint, black = keep) and the
masked pixels set to 0 (mid-grey in [-1, 1]). m↓, the mask on the latent grid, is the share of each latent
cell's f×f pixels that are masked (area pooling): a cell half covered reads 0.5, so the U-Net knows how
much of it it must invent. Training (`hfldm.training.inpaint`) and the pipeline build it here, alike.
The U-Net then has in_channels = 2c + 1 for c latent channels: c of z_t, c of the masked image, 1 of mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MASK_CHANNELS = 1


def inpaint_condition_channels(latent_channels: int) -> int:
    """Channels concatenated to z_t: the masked image's latent channels plus the mask's one."""
    return latent_channels + MASK_CHANNELS


def masked_image(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x ⊙ (1 − m): images (B, 3, H, W) in [-1, 1] with the masked pixels (m = 1) set to 0."""
    return x * (1 - mask.to(x.dtype))


def mask_to_latent_grid(mask: torch.Tensor, downsample_factor: int) -> torch.Tensor:
    """m↓: a pixel mask (B, 1, H, W) in [0, 1] -> (B, 1, H/f, W/f), the masked share of each f×f cell."""
    if mask.shape[-1] % downsample_factor or mask.shape[-2] % downsample_factor:
        raise ValueError(
            f"mask: {mask.shape[-2]}x{mask.shape[-1]} is not a multiple of the autoencoder's f = "
            f"{downsample_factor}"
        )
    return F.avg_pool2d(mask.float(), downsample_factor).to(mask.dtype)


def inpaint_condition(masked_latents: torch.Tensor, latent_mask: torch.Tensor) -> torch.Tensor:
    """[E(x ⊙ (1 − m))·scale, m↓] along the channels: (B, c + 1, h, w), the condition that
    `hfldm.unets.concat.concat_condition` puts beside z_t."""
    return torch.cat([masked_latents, latent_mask.to(masked_latents.dtype)], dim=1)
