"""What DDPM and DDIM share: the forward process and its coefficients.

β_t → α_t = 1 - β_t → ᾱ_t = ∏_{s≤t} α_s, the closed form q(x_t | x_0) (DDPM eq. 4), the posterior
q(x_{t'} | x_t, x_0) (DDPM eqs. 6-7) and the inference timestep spacing. Subclasses register their config
with `@register_to_config` (the same keys as diffusers' scheduler of the same name) and call
`_setup_schedule()`.
"""

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin
from diffusers.schedulers.scheduling_ddpm import rescale_zero_terminal_snr
from diffusers.schedulers.scheduling_utils import KarrasDiffusionSchedulers, SchedulerMixin

from .hfldm_schedulers_betas import make_betas
from .hfldm_schedulers_prediction import check_prediction_type, dynamic_threshold, velocity

TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")


def posterior_coefficients(
    alpha_bar_t: torch.Tensor, alpha_bar_prev: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Coefficients of q(x_{t'} | x_t, x_0) = N(coef1 x_0 + coef2 x_t, β̃_t I), step t -> t' (DDPM eqs. 6-7).

    The step's β_t = 1 - ᾱ_t / ᾱ_{t'} and α_t = ᾱ_t / ᾱ_{t'}, so for t' = t - 1 these are the paper's
    values, and for a respaced chain (t' = t - T/n) those of the respaced process (Nichol & Dhariwal 2021,
    Sec. 4). Returns (posterior_mean_coef1, posterior_mean_coef2, posterior_variance), each shaped like
    `alpha_bar_t`.

    `step()` of DDPM and DDIM calls this on the float32 ᾱ table, as diffusers does, so that trajectories
    match diffusers'. The ratio ᾱ_t/ᾱ_{t'} then cancels where β_t ~ 1e-4: against float64 the T = 1000
    linear / scaled_linear / cosine schedules lose up to 4e-4 / 5e-4 / 9e-4 of β̃_t and 4e-4 / 6e-4 / 1.1e-3
    of coef1 (relative, at the smallest t); pass float64 ᾱ for exact values.
    """
    alpha_t = alpha_bar_t / alpha_bar_prev
    beta_t = 1 - alpha_t
    # μ̃_t = √ᾱ_{t-1} β_t / (1-ᾱ_t) · x_0 + √α_t (1-ᾱ_{t-1}) / (1-ᾱ_t) · x_t  (DDPM eq. 7)
    coef1 = alpha_bar_prev**0.5 * beta_t / (1 - alpha_bar_t)
    coef2 = alpha_t**0.5 * (1 - alpha_bar_prev) / (1 - alpha_bar_t)
    # β̃_t = (1-ᾱ_{t-1}) / (1-ᾱ_t) · β_t  (DDPM eq. 7)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t
    return coef1, coef2, variance


def spaced_timesteps(
    num_train_timesteps: int, num_inference_steps: int, spacing: str, steps_offset: int
) -> np.ndarray:
    """Descending int64 timesteps for sampling with `num_inference_steps` steps, as diffusers spaces them
    (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed", Table 2). Shape (n,)."""
    T, n = num_train_timesteps, num_inference_steps
    if spacing == "linspace":
        return np.linspace(0, T - 1, n).round()[::-1].copy().astype(np.int64)
    if spacing == "leading":
        return (np.arange(0, n) * (T // n)).round()[::-1].copy().astype(np.int64) + steps_offset
    if spacing == "trailing":
        return np.round(np.arange(T, 0, -T / n)).astype(np.int64) - 1
    raise ValueError(f"timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {spacing!r}")


def _check_custom_timesteps(timesteps, num_train_timesteps: int) -> np.ndarray:
    """Custom `timesteps` as an int64 array, or ValueError naming them unless they are a non-empty, strictly
    descending sequence of integers in [0, num_train_timesteps)."""
    values = timesteps.tolist() if isinstance(timesteps, torch.Tensor | np.ndarray) else timesteps
    ok = isinstance(values, list | tuple) and len(values) > 0
    ok = ok and all(isinstance(t, int | np.integer) and not isinstance(t, bool) for t in values)
    if not ok or not all(0 <= t < num_train_timesteps for t in values):
        raise ValueError(
            f"timesteps must be a non-empty list of integers in [0, {num_train_timesteps}), got {timesteps!r}"
        )
    if any(a <= b for a, b in zip(values, values[1:])):
        raise ValueError(f"timesteps must be strictly descending, got {list(values)}")
    return np.asarray(values, dtype=np.int64)


def _per_sample(values: torch.Tensor, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[timesteps] on `like`'s device and dtype, shaped (B, 1, ..., 1) to broadcast against `like`."""
    picked = values.to(like.device)[timesteps.to(like.device)].to(like.dtype).flatten()
    return picked.reshape(-1, *([1] * (like.ndim - 1)))


class DiscreteNoiseScheduler(SchedulerMixin, ConfigMixin):
    """Base of hfldm's DDPMScheduler and DDIMScheduler: the β/ᾱ tables and the forward process."""

    _compatibles = [e.name for e in KarrasDiffusionSchedulers]
    order = 1

    def _setup_schedule(self, set_alpha_to_one: bool = True) -> None:
        """Build β, α, ᾱ from the config. `set_alpha_to_one`: ᾱ after the last step
        (t' < 0) is 1, else ᾱ_0 (DDIM's option)."""
        config = self.config
        check_prediction_type(config.prediction_type)
        if config.timestep_spacing not in TIMESTEP_SPACINGS:
            raise ValueError(
                f"timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {config.timestep_spacing!r}"
            )
        betas = make_betas(
            config.num_train_timesteps,
            config.beta_start,
            config.beta_end,
            config.beta_schedule,
            config.trained_betas,
        )
        if config.rescale_betas_zero_snr:
            betas = rescale_zero_terminal_snr(betas)  # Lin et al. 2024, Algorithm 1

        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)  # ᾱ_t  (DDPM Sec. 2, below eq. 4)
        self.final_alpha_cumprod = torch.tensor(1.0) if set_alpha_to_one else self.alphas_cumprod[0].clone()
        self.alphas_cumprod_prev = torch.cat([self.final_alpha_cumprod[None], self.alphas_cumprod[:-1]])
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - self.alphas_cumprod).sqrt()
        self.init_noise_sigma = 1.0  # x_T ~ N(0, I)
        self.num_inference_steps = None
        self.custom_timesteps = False
        self.timesteps = torch.arange(config.num_train_timesteps - 1, -1, -1, dtype=torch.int64)
        self._timestep_list: list[int] = []

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    def _next_in_timesteps(self, t: int) -> int:
        """The entry of `self.timesteps` after t (-1 after the last): where a step from t lands on the list.

        On the full chain (no set_timesteps) that is t - 1.
        """
        if self.num_inference_steps is None:
            return t - 1
        timesteps = self._timestep_list
        if t not in timesteps:
            raise ValueError(f"timestep {t} is not one of scheduler.timesteps set by set_timesteps")
        i = timesteps.index(t)
        return timesteps[i + 1] if i + 1 < len(timesteps) else -1

    def scale_model_input(self, sample: torch.Tensor, timestep: int | None = None) -> torch.Tensor:
        """The sample unchanged: DDPM/DDIM feed x_t to the model as is (diffusers' interface)."""
        return sample

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        timesteps: list[int] | None = None,
    ) -> None:
        """Set `self.timesteps`, the descending int64 timesteps to sample with: `num_inference_steps` of them
        spaced by the config's `timestep_spacing`, or the custom strictly descending `timesteps` in [0, T)
        (as diffusers' DDPMScheduler takes them; each step then lands on the next one)."""
        T = self.config.num_train_timesteps
        if (num_inference_steps is None) == (timesteps is None):
            raise ValueError("set_timesteps: give exactly one of num_inference_steps and timesteps")
        if timesteps is not None:
            timesteps = _check_custom_timesteps(timesteps, T)
        elif not isinstance(num_inference_steps, int | np.integer) or not 1 <= num_inference_steps <= T:
            raise ValueError(f"num_inference_steps must be an int in [1, {T}], got {num_inference_steps!r}")
        else:
            timesteps = spaced_timesteps(
                T, int(num_inference_steps), self.config.timestep_spacing, self.config.steps_offset
            )
            if timesteps.max() >= T or timesteps.min() < 0:
                raise ValueError(f"steps_offset={self.config.steps_offset} puts timesteps outside [0, {T})")
        self.custom_timesteps = num_inference_steps is None
        self.num_inference_steps = len(timesteps)
        self.timesteps = torch.from_numpy(timesteps).to(device)
        self._timestep_list = timesteps.tolist()

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        """x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε, a draw from q(x_t | x_0)  (DDPM eq. 4). `timesteps` is (B,) or
        a scalar; returns a tensor shaped like `original_samples`."""
        timesteps = self._check_timesteps(timesteps)
        sqrt_alpha_bar = _per_sample(self.sqrt_alphas_cumprod, timesteps, original_samples)
        sqrt_one_minus_alpha_bar = _per_sample(
            self.sqrt_one_minus_alphas_cumprod, timesteps, original_samples
        )
        return sqrt_alpha_bar * original_samples + sqrt_one_minus_alpha_bar * noise

    def get_velocity(
        self, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        """The v-prediction target v = √ᾱ_t ε - √(1-ᾱ_t) x_0 for x_0 = `sample` (Salimans & Ho 2022),
        shaped like `sample`."""
        timesteps = self._check_timesteps(timesteps)
        return velocity(sample, noise, _per_sample(self.alphas_cumprod, timesteps, sample))

    def _alpha_bar_at(self, t: int) -> torch.Tensor:
        """ᾱ_t, or the final ᾱ (1 unless configured otherwise) for t < 0, after the last step. 0-d tensor."""
        return self.alphas_cumprod[t] if t >= 0 else self.final_alpha_cumprod

    def _check_timestep(self, timestep: int | torch.Tensor) -> int:
        """`timestep` as a python int, or ValueError unless it lies in [0, num_train_timesteps)."""
        if isinstance(timestep, torch.Tensor) and timestep.numel() != 1:
            raise ValueError(
                f"timestep must be a single integer, got a tensor of shape {tuple(timestep.shape)}"
            )
        t = int(timestep)
        if not 0 <= t < self.config.num_train_timesteps or t != timestep:
            raise ValueError(
                f"timestep must be an integer in [0, {self.config.num_train_timesteps}), got {timestep}"
            )
        return t

    def _check_timesteps(self, timesteps: int | torch.Tensor) -> torch.Tensor:
        """`timesteps` as a long tensor, or ValueError if any lies outside [0, num_train_timesteps)."""
        timesteps = torch.as_tensor(timesteps)
        if timesteps.is_floating_point() or timesteps.is_complex():
            raise ValueError(f"timesteps must be integers, got dtype {timesteps.dtype}")
        T = self.config.num_train_timesteps
        if timesteps.numel() and (timesteps.min() < 0 or timesteps.max() >= T):
            raise ValueError(
                f"timesteps must lie in [0, {T}), got values in [{timesteps.min()}, {timesteps.max()}]"
            )
        return timesteps.long()

    def _clip_x0(self, x0: torch.Tensor) -> torch.Tensor:
        """x̂_0 clipped to ±clip_sample_range, or dynamically thresholded, as the config says."""
        config = self.config
        if config.thresholding:
            return dynamic_threshold(x0, config.dynamic_thresholding_ratio, config.sample_max_value)
        if config.clip_sample:
            return x0.clamp(-config.clip_sample_range, config.clip_sample_range)
        return x0
