"""The one denoising loop of hfldm's pipelines (`DenoisingLoopMixin.denoise`), and the scheduler helpers it
uses, for any diffusers scheduler. Pipelines differ only in how they prepare the condition and the output."""

from __future__ import annotations

import inspect

import torch
from diffusers.utils.torch_utils import randn_tensor

from .hfldm_autoencoders_latent_space import LatentSpace, latent_space
from .hfldm_unets_concat import concat_condition


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


class DenoisingLoopMixin:
    """The reverse process of a pipeline with `unet`, `scheduler` and the guidance state of
    `hfldm.pipelines.guidance.GuidanceStateMixin` (text / class / unconditional, SR, inpainting, sketch)."""

    def denoise(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        unet_kwargs: dict,
        extra_step_kwargs: dict,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs: tuple[str, ...] = ("latents",),
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The reverse process z_t -> z_{t-1} over `timesteps`, with classifier-free guidance while
        `do_classifier_free_guidance` (w = `guidance_scale`; a callback may change both); returns z_0.

        `unet_kwargs`: the U-Net's condition tensors (τ_θ(y), class labels; {} for none), under guidance the
        unconditional half first. `condition`: a spatial condition concatenated to z_t at every step (SR's
        low-res image, inpainting's [E(x ⊙ (1 − m)), m↓], a sketch; LDM §3.3 `hfldm.unets.concat`), the same
        for both halves of guidance.
        """
        self._conditions, self._num_images, self._num_timesteps = unet_kwargs, len(latents), len(timesteps)
        attention = (
            {}
            if self.cross_attention_kwargs is None
            else {"cross_attention_kwargs": self.cross_attention_kwargs}
        )
        unet_dtype = self.unet.dtype
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                guided = self.do_classifier_free_guidance
                latent_input = torch.cat([latents] * 2) if guided else latents
                latent_input = self.scheduler.scale_model_input(latent_input, t)
                if condition is not None:  # only z_t is scaled for σ-parameterised schedulers
                    latent_input = concat_condition(
                        latent_input, torch.cat([condition] * 2) if guided else condition, self.unet.config
                    )
                conditions = self.step_conditions(len(latent_input))
                noise_pred = predict_noise(self.unet, latent_input, t, unet_dtype, **conditions, **attention)
                if guided:
                    # classifier-free guidance: ε̃ = ε(z_t, ∅) + w (ε(z_t, y) - ε(z_t, ∅))
                    eps_uncond, eps_cond = noise_pred.chunk(2)
                    noise_pred = eps_uncond + self.guidance_scale * (eps_cond - eps_uncond)
                latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs).prev_sample
                if callback_on_step_end is not None:
                    latents = self.after_step(
                        callback_on_step_end, callback_on_step_end_tensor_inputs, i, t, latents
                    )
                progress_bar.update()
        return latents


def predict_noise(unet, latent_input: torch.Tensor, t, dtype: torch.dtype, **unet_kwargs) -> torch.Tensor:
    """ε_θ(z_t, t, ...) in fp32 from a U-Net in any `dtype` (its own, looked up once per loop: diffusers'
    `ModelMixin.dtype` walks the modules, ≈ 1 ms here): z_t and the scheduler's arithmetic stay fp32
    (a bf16 z_t would round away the small updates of the last steps), only the U-Net runs in `dtype`."""
    return unet(latent_input.to(dtype), t, **unet_kwargs).sample.float()


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
