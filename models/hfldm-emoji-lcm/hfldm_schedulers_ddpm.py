"""DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) as a diffusers scheduler.

Config keys are those of diffusers' DDPMScheduler, so `from_config` works in both directions; with the same
config and generator seed, `step` gives the same trajectory.
"""

import numpy as np
import torch
from diffusers import SchedulerMixin  # noqa: F401  (diffusers' loader looks this name up in the module)
from diffusers.configuration_utils import register_to_config
from diffusers.schedulers.scheduling_ddpm import DDPMSchedulerOutput
from diffusers.utils.torch_utils import randn_tensor

from .hfldm_schedulers_base import DiscreteNoiseScheduler, posterior_coefficients
from .hfldm_schedulers_prediction import predict_x0_and_eps

VARIANCE_TYPES = (
    "fixed_small",
    "fixed_small_log",
    "fixed_large",
    "fixed_large_log",
    "learned",
    "learned_range",
)


class DDPMScheduler(DiscreteNoiseScheduler):
    """Denoising diffusion probabilistic model sampler: x_{t-1} = μ̃_t(x_t, x̂_0) + σ_t z.

    Tables (float32, shape (num_train_timesteps,)): betas, alphas, alphas_cumprod, alphas_cumprod_prev,
    sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod. The posterior of each step is computed from ᾱ_t and
    ᾱ_{t'} (`posterior_coefficients`), for the full chain and a respaced one alike.
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,  # T, the length of the forward chain
        beta_start: float = 0.0001,  # β_1
        beta_end: float = 0.02,  # β_T
        beta_schedule: str = "linear",  # "linear" | "scaled_linear" | "squaredcos_cap_v2"
        trained_betas: np.ndarray | list[float] | None = None,  # explicit β_1..β_T, overrides the schedule
        variance_type: str = "fixed_small",  # σ_t² = β̃_t ("fixed_small") or β_t ("fixed_large"), or learned
        clip_sample: bool = True,  # clip x̂_0 to [-clip_sample_range, clip_sample_range]
        prediction_type: str = "epsilon",  # the model predicts "epsilon", "sample" (x_0) or "v_prediction"
        thresholding: bool = False,  # Imagen dynamic thresholding of x̂_0 instead of clipping
        dynamic_thresholding_ratio: float = 0.995,  # quantile of |x̂_0| used by thresholding
        clip_sample_range: float = 1.0,  # data range of x_0, in data units
        sample_max_value: float = 1.0,  # largest threshold s of dynamic thresholding
        timestep_spacing: str = "leading",  # "leading" | "trailing" | "linspace", for set_timesteps
        steps_offset: int = 0,  # added to "leading" timesteps
        rescale_betas_zero_snr: bool = False,  # rescale β so that ᾱ_T = 0 (Lin et al. 2024)
    ):
        if variance_type not in VARIANCE_TYPES:
            raise ValueError(f"variance_type must be one of {VARIANCE_TYPES}, got {variance_type!r}")
        self._setup_schedule(set_alpha_to_one=True)

    def previous_timestep(self, timestep: int | torch.Tensor) -> int:
        """The timestep t' that `step(…, timestep, …)` moves to: t - 1 on the full chain, else the next
        entry of `self.timesteps` (about t - T/n), and -1 after the last one."""
        return self._next_in_timesteps(self._check_timestep(timestep))

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ) -> DDPMSchedulerOutput | tuple[torch.Tensor, torch.Tensor]:
        """One reverse step x_t -> x_{t'} (Algorithm 2). Returns prev_sample x_{t'} and pred_original_sample
        x̂_0, both shaped like `sample`; or the tuple (prev_sample, pred_original_sample)."""
        t = self._check_timestep(timestep)
        prev_t = self.previous_timestep(t)
        model_output, predicted_variance = self._split_learned_variance(model_output, sample)

        # 1. ᾱ_t and ᾱ_{t'}; the step's β_t = 1 - ᾱ_t/ᾱ_{t'}  (= β_t of the paper when t' = t - 1)
        alpha_bar_t, alpha_bar_prev = self.alphas_cumprod[t], self._alpha_bar_at(prev_t)
        beta_t = 1 - alpha_bar_t / alpha_bar_prev

        # 2. predicted x_0 from the model output  (DDPM eq. 15 for epsilon)
        pred_original_sample, _ = predict_x0_and_eps(
            model_output, sample, alpha_bar_t, self.config.prediction_type
        )

        # 3. clip (or threshold) x̂_0 to the data range
        pred_original_sample = self._clip_x0(pred_original_sample)

        # 4. posterior mean μ̃_t(x_t, x̂_0) = coef1 x̂_0 + coef2 x_t  (DDPM eq. 7)
        coef1, coef2, posterior_variance = posterior_coefficients(alpha_bar_t, alpha_bar_prev)
        prev_sample = coef1 * pred_original_sample + coef2 * sample

        # 5. add σ_t z with z ~ N(0, I), except at t = 0  (Algorithm 2, lines 3-4)
        if t > 0:
            z = randn_tensor(
                model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype
            )
            sigma_t = self._sigma(beta_t, posterior_variance, predicted_variance)
            prev_sample = prev_sample + sigma_t * z

        if not return_dict:
            return prev_sample, pred_original_sample
        return DDPMSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)

    def _sigma(
        self, beta_t: torch.Tensor, posterior_variance: torch.Tensor, predicted_variance: torch.Tensor | None
    ) -> torch.Tensor:
        """σ_t of the reverse step for the configured variance_type; a 0-d tensor, or shaped like the
        predicted variance for the learned types."""
        variance_type = self.config.variance_type
        posterior_variance = posterior_variance.clamp(min=1e-20)  # β̃ is 0 at t = 0; keep its log finite
        if variance_type in ("fixed_small", "fixed_small_log"):
            return posterior_variance**0.5  # σ_t² = β̃_t  (DDPM Sec. 3.2)
        if variance_type in ("fixed_large", "fixed_large_log"):
            return beta_t**0.5  # σ_t² = β_t  (DDPM Sec. 3.2)
        if variance_type == "learned":
            return predicted_variance**0.5  # the model outputs σ_t² itself
        # log σ_t² = v log β_t + (1 - v) log β̃_t, v = (output + 1)/2  (Nichol & Dhariwal 2021, eq. 15)
        frac = (predicted_variance + 1) / 2
        return torch.exp(0.5 * (frac * torch.log(beta_t) + (1 - frac) * torch.log(posterior_variance)))

    def _split_learned_variance(
        self, model_output: torch.Tensor, sample: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(prediction, predicted variance or None): for learned variance_types the model's 2C output
        channels are split into two (B, C, ...) halves."""
        if self.config.variance_type not in ("learned", "learned_range"):
            return model_output, None
        channels = sample.shape[1]
        if model_output.shape[1] != 2 * channels:
            raise ValueError(
                f"model_output must have 2 * {channels} channels for variance_type="
                f"{self.config.variance_type!r}, got {model_output.shape[1]}"
            )
        prediction, predicted_variance = torch.split(model_output, channels, dim=1)
        return prediction, predicted_variance
