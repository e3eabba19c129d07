"""Scheduler helpers every hfldm pipeline's denoising loop uses, for any diffusers scheduler."""

from __future__ import annotations

import inspect

import torch
from diffusers.utils.torch_utils import randn_tensor

from .hfldm_autoencoders_latent_space import LatentSpace, latent_space


class LatentSpaceMixin:
    """`latent_space` and `vae_scale_factor` of a pipeline with a `vae` component (any first stage)."""

    @property
    def latent_space(self) -> LatentSpace:
        """The autoencoder through hfldm's one interface (hfldm's or diffusers' KL / VQ / tiny)."""
        return latent_space(self.vae)

    @property
    def vae_scale_factor(self) -> int:
        """f, the autoencoder's downsampling factor (the upscaling factor of a super-resolution model)."""
        return self.latent_space.downsample_factor


def predict_noise(unet, latent_input: torch.Tensor, t, **unet_kwargs) -> torch.Tensor:
    """ε_θ(z_t, t, ...) in fp32 from a U-Net in any dtype: z_t and the scheduler's arithmetic stay fp32 (a
    bf16 z_t would round away the small updates of the last steps), only the U-Net runs in its dtype."""
    return unet(latent_input.to(unet.dtype), t, **unet_kwargs).sample.float()


def scheduler_step_kwargs(scheduler, generator, eta: float) -> dict:
    """η and the generator, for the schedulers whose `step` takes them (DDIM's η, DDPM's noise)."""
    accepted = set(inspect.signature(scheduler.step).parameters)
    extra = {"eta": eta} if "eta" in accepted else {}
    return extra | ({"generator": generator} if "generator" in accepted else {})


def sdedit_start(
    scheduler, z0: torch.Tensor, strength: float, num_inference_steps: int, generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """SDEdit (Meng et al. 2022): keep the last `strength` share of the scheduler's timesteps (already set)
    and noise z_0 to the first of them.

    Returns `(z_t, timesteps)`; with strength 0 nothing is left to denoise and z_t = z_0.
    """
    order = getattr(scheduler, "order", 1)
    t_start = num_inference_steps - min(int(num_inference_steps * strength), num_inference_steps)
    timesteps = scheduler.timesteps[t_start * order :]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(t_start * order)
    if len(timesteps) == 0:
        return z0, timesteps
    noise = randn_tensor(z0.shape, generator=generator, device=z0.device, dtype=z0.dtype)
    # z_t = sqrt(ᾱ_t) z_0 + sqrt(1 - ᾱ_t) ε, a sample of q(z_t | z_0) (DDPM eq. 4)
    return scheduler.add_noise(z0, noise, timesteps[:1].repeat(z0.shape[0])), timesteps


def set_timesteps(scheduler, num_inference_steps: int | None, timesteps, device) -> torch.Tensor:
    """The scheduler's timesteps for a call: `num_inference_steps` spaced by the scheduler, or the custom
    `timesteps` (ValueError naming them for a scheduler whose `set_timesteps` takes none)."""
    if timesteps is None:
        scheduler.set_timesteps(num_inference_steps, device=device)
    elif "timesteps" not in inspect.signature(scheduler.set_timesteps).parameters:
        raise ValueError(f"timesteps: {type(scheduler).__name__} takes no custom timesteps")
    else:
        scheduler.set_timesteps(timesteps=[int(t) for t in timesteps], device=device)
    return scheduler.timesteps


class NonFiniteOutput(ValueError):
    """Generated images or latents that hold nan/inf: `bad` of `total`."""

    def __init__(self, message: str, bad: int, total: int):
        super().__init__(message)
        self.bad, self.total = bad, total


def check_finite_output(x: torch.Tensor) -> torch.Tensor:
    """`x` (the final latents or decoded images of a pipeline call) when it is all finite; otherwise a
    ValueError naming the likely causes, instead of images that post-processing turns black."""
    bad = (~torch.isfinite(x.flatten(1))).any(1)
    if bad.any():
        raise NonFiniteOutput(
            f"{int(bad.sum())} of {len(x)} generated images hold nan/inf (they would be black): an extreme "
            "guidance_scale or eta, nan in latents / image / mask_image or a callback's output, or a model "
            "whose weights, noise schedule or scaling_factor are not finite",
            bad=int(bad.sum()),
            total=len(x),
        )
    return x
