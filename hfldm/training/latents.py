"""z_0 for the U-Net: the autoencoder's latent of an image, and LDM's latent scale.

LDM rescales the latents of a KL autoencoder to unit variance before diffusion: z ← z / σ̂, with σ̂ the
component-wise standard deviation of z over the first batch(es) (Rombach et al. 2022, Appendix G,
"scale_factor"). diffusers stores 1/σ̂ as the autoencoder's `config.scaling_factor`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from hfldm.autoencoders.latent_space import latent_space
from hfldm.training.randomness import SCALE_STREAM, batch_size_of, per_sample_normal, sample_generators


def mirrored(images: torch.Tensor, flip: torch.Tensor | None) -> torch.Tensor:
    """Images (B, C, H, W) flipped left-right where `flip` (B,) is True (all of them as they are for None):
    --random_flip, applied alike to what every part of a training step reads from the batch's pixels."""
    if flip is None:
        return images
    return torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)


@torch.no_grad()
def batch_latents(
    batch: dict, vae, posterior_noise: torch.Tensor, flip: torch.Tensor | None = None
) -> torch.Tensor:
    """Unscaled z_0 (B, c, h, w) of a batch: drawn from its cached posterior (latent_mean, latent_std) when
    the batch comes from a latent cache, else encoded from its pixel_values by `vae`, after mirroring the
    images where `flip` (B,) is True. KL: z = μ + σ·η ~ q(z|x); VQ: the pre-quantisation code."""
    if "latent_mean" in batch:
        mean = batch["latent_mean"]
        return mean + batch["latent_std"] * posterior_noise.to(mean)  # z = μ + σ·η ~ q(z|x)
    return latent_space(vae).latents(mirrored(batch["pixel_values"], flip), posterior_noise)


@torch.no_grad()
def estimate_latent_scale(
    vae, batches: Iterable[dict], num_images: int, latent_shape: tuple, seed: int
) -> float:
    """1 / std of the latents of the first `num_images` images of `batches` (LDM's scale_factor); a float.

    `batches` hold pixel_values or cached posteriors; KL latents are posterior samples, as LDM computes it,
    with noise drawn per image from (seed, index), so the number does not depend on the batch size or on
    the number of processes.
    """
    latents, seen = [], 0
    for batch in batches:
        if seen >= num_images:
            break
        size = batch_size_of(batch)
        noise = per_sample_normal(
            sample_generators(seed, 0, list(range(seen, seen + size)), SCALE_STREAM), latent_shape
        )
        latents.append(batch_latents(batch, vae, noise).float().cpu())
        seen += size
    if not latents:
        raise ValueError("--scale_estimation_images: no image to estimate the latent scale from")
    std = torch.cat(latents)[:num_images].flatten().std()
    if not torch.isfinite(std) or std <= 0:
        raise ValueError(
            f"--autoencoder: its latents have standard deviation {float(std)}; cannot scale them"
        )
    return float(1.0 / std)


def latent_scale(
    vae,
    scaling_factor: float | None,
    loader_for_scale: Callable[[], Iterable[dict]],
    num_images: int,
    latent_shape: tuple,
    seed: int,
) -> float:
    """LDM's latent scale: `scaling_factor` if given, else the autoencoder's, estimated from the data as
    1/std(z) (App. G) while that is still 1.0. `loader_for_scale()` gives unshuffled batches."""
    scale = scaling_factor or latent_space(vae).scaling_factor
    if scale == 1.0 and scaling_factor is None:
        scale = estimate_latent_scale(vae, loader_for_scale(), num_images, latent_shape, seed)
    return scale
