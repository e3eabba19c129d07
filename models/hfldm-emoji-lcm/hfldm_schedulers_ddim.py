"""DDIM sampling (Song, Meng & Ermon 2021, eq. 12) as a diffusers scheduler.

Config keys are those of diffusers' DDIMScheduler, so `from_config` works in both directions; with the same
config, eta and generator seed, `step` gives the same trajectory.
"""

import numpy as np
import torch
from diffusers import SchedulerMixin  # noqa: F401  (diffusers' loader looks this name up in the module)
from diffusers.configuration_utils import register_to_config
from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput
from diffusers.utils.torch_utils import randn_tensor

from .hfldm_schedulers_base import DiscreteNoiseScheduler, posterior_coefficients
from .hfldm_schedulers_prediction import eps_from_x0, predict_x0_and_eps


class DDIMScheduler(DiscreteNoiseScheduler):
    """Denoising diffusion implicit model sampler on a subsequence of n timesteps: deterministic at eta = 0,
    DDPM-like ancestral sampling at eta = 1 (DDIM Sec. 4.1). Same tables as hfldm's DDPMScheduler.

    "Previous timestep": like diffusers' DDIMScheduler, a step from t lands at t' = t - T // n, while
    DDPMScheduler lands on the next entry of `timesteps`. The two agree for "leading" spacing (what hfldm
    trains and saves) and whenever n divides T; they differ for "linspace" and "trailing" spacing otherwise:
    with T = 1000, n = 7 and linspace, DDIM steps from 999 to ᾱ_857 while the next timestep evaluated is 832,
    so the model sees a sample noised to t = 857 labelled t = 832. `ConsistentDDIMScheduler` steps to 832
    instead (the chain the timesteps describe); this class keeps diffusers' trajectories and config.
    """

    steps_to_listed_timesteps = False  # t' = the next entry of `timesteps` (ConsistentDDIMScheduler)

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,  # T, the length of the forward chain
        beta_start: float = 0.0001,  # β_1
        beta_end: float = 0.02,  # β_T
        beta_schedule: str = "linear",  # "linear" | "scaled_linear" | "squaredcos_cap_v2"
        trained_betas: np.ndarray | list[float] | None = None,  # explicit β_1..β_T, overrides the schedule
        clip_sample: bool = True,  # clip x̂_0 to [-clip_sample_range, clip_sample_range]
        set_alpha_to_one: bool = True,  # ᾱ after the last step is 1 (else ᾱ_0)
        steps_offset: int = 0,  # added to "leading" timesteps
        prediction_type: str = "epsilon",  # the model predicts "epsilon", "sample" (x_0) or "v_prediction"
        thresholding: bool = False,  # Imagen dynamic thresholding of x̂_0 instead of clipping
        dynamic_thresholding_ratio: float = 0.995,  # quantile of |x̂_0| used by thresholding
        clip_sample_range: float = 1.0,  # data range of x_0, in data units
        sample_max_value: float = 1.0,  # largest threshold s of dynamic thresholding
        timestep_spacing: str = "leading",  # "leading" | "trailing" | "linspace", for set_timesteps
        rescale_betas_zero_snr: bool = False,  # rescale β so that ᾱ_T = 0 (Lin et al. 2024)
    ):
        self._setup_schedule(set_alpha_to_one=set_alpha_to_one)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        eta: float = 0.0,
        use_clipped_model_output: bool = False,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> DDIMSchedulerOutput | tuple[torch.Tensor, torch.Tensor]:
        """One DDIM step x_t -> x_{t'} with t' = t - T/n. `eta` scales σ_t (0: deterministic);
        `variance_noise` replaces the draw z from `generator`. Returns prev_sample x_{t'} and
        pred_original_sample x̂_0, both shaped like `sample`; or them as a tuple."""
        if self.num_inference_steps is None:
            raise ValueError(
                "num_inference_steps is not set: call set_timesteps(num_inference_steps) before step"
            )
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        t = self._check_timestep(timestep)

        # 1. previous timestep of the subsequence τ: t' = t - T/n  (DDIM Sec. 4.2, as diffusers spaces it);
        # custom timesteps describe their own subsequence: t' is the next of them
        if self.steps_to_listed_timesteps or self.custom_timesteps:
            prev_t = self._next_in_timesteps(t)
        else:
            prev_t = t - self.config.num_train_timesteps // self.num_inference_steps

        # 2. ᾱ_t and ᾱ_{t'}  (the paper's α_t and α_{t-1})
        alpha_bar_t, alpha_bar_prev = self.alphas_cumprod[t], self._alpha_bar_at(prev_t)

        # 3. predicted x_0 and ε  (DDIM eq. 12, "predicted x_0"; DDPM eq. 15)
        pred_original_sample, pred_epsilon = predict_x0_and_eps(
            model_output, sample, alpha_bar_t, self.config.prediction_type
        )

        # 4. clip (or threshold) x̂_0; optionally re-derive ε from the clipped x̂_0 (as GLIDE does)
        pred_original_sample = self._clip_x0(pred_original_sample)
        if use_clipped_model_output:
            pred_epsilon = eps_from_x0(pred_original_sample, sample, alpha_bar_t)

        # 5. σ_t(η) = η √((1-ᾱ_{t'})/(1-ᾱ_t)) √(1-ᾱ_t/ᾱ_{t'}) = η √β̃_t  (DDIM eq. 16)
        _, _, posterior_variance = posterior_coefficients(alpha_bar_t, alpha_bar_prev)
        std_dev_t = eta * posterior_variance**0.5

        # 6. x_{t'} = √ᾱ_{t'} x̂_0 + √(1-ᾱ_{t'}-σ_t²) ε̂ + σ_t z  (DDIM eq. 12)
        direction_to_xt = (1 - alpha_bar_prev - std_dev_t**2) ** 0.5 * pred_epsilon
        prev_sample = alpha_bar_prev**0.5 * pred_original_sample + direction_to_xt
        if eta > 0:
            if variance_noise is not None and generator is not None:
                raise ValueError("pass either generator or variance_noise, not both")
            if variance_noise is None:
                variance_noise = randn_tensor(
                    model_output.shape,
                    generator=generator,
                    device=model_output.device,
                    dtype=model_output.dtype,
                )
            prev_sample = prev_sample + std_dev_t * variance_noise

        if not return_dict:
            return prev_sample, pred_original_sample
        return DDIMSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)


class ConsistentDDIMScheduler(DDIMScheduler):
    """DDIM whose step from t lands on the next entry of `timesteps` (as DDPMScheduler's), not at t - T // n:
    the same sampler wherever the two agree ("leading" spacing, or n dividing T), and the chain the timesteps
    describe for "linspace" / "trailing" spacing otherwise. Same config keys as DDIMScheduler."""

    steps_to_listed_timesteps = True
