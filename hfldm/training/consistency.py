"""The equations of latent consistency distillation (LCD; Luo et al. 2023, "Latent Consistency Models",
Algorithm 1), built on Consistency Models (Song et al. 2023).

A consistency function f_θ(z_t, ω, c, t) maps any point of the teacher's guided probability-flow ODE
trajectory to its origin z_0. It is parameterised through the boundary condition f_θ(z, ω, c, 0) = z:

    f_θ(z, ω, c, t) = c_skip(t) z + c_out(t) ẑ_0(z, ω, c, t)                       (LCM eq. 9; CM eq. 7)

with ẑ_0 the student's x_0-prediction. Distillation makes f_θ agree on adjacent points of a skipping-step
DDIM schedule t_{n+k} → t_n, the earlier point ẑ_{t_n} made by one guided DDIM step of the teacher
(LCM eq. 8 and 10, Alg. 1), against an EMA target θ⁻ (CM Alg. 2 / LCM Alg. 1, last line).

The coefficients are diffusers' `LCMScheduler`'s, so that a student samples with that scheduler as trained.
"""

from __future__ import annotations

import copy

import torch

from hfldm.schedulers.prediction import predict_x0_and_eps

SIGMA_DATA = 0.5  # σ_data of CM's boundary coefficients (Song et al. 2023, App. C), as LCMScheduler's


def boundary_coefficients(
    t: torch.Tensor, timestep_scaling: float = 10.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(c_skip(t), c_out(t)), shaped like `t` (float):

        c_skip(t) = σ_data² / ((s t)² + σ_data²),   c_out(t) = s t / √((s t)² + σ_data²)

    (Song et al. 2023, App. C, with ε = 0 and time scaled by s = `timestep_scaling`, as LCMScheduler's
    `get_scalings_for_boundary_condition_discrete`): c_skip(0) = 1, c_out(0) = 0, so f(z, 0) = z.
    """
    scaled = t.float() * timestep_scaling
    c_skip = SIGMA_DATA**2 / (scaled**2 + SIGMA_DATA**2)
    c_out = scaled / (scaled**2 + SIGMA_DATA**2) ** 0.5
    return c_skip, c_out


def skipping_schedule(num_train_timesteps: int, num_ddim_timesteps: int) -> tuple[torch.Tensor, int]:
    """(the N DDIM timesteps t_{n+k} a step starts from, k): t = k, 2k, ..., T shifted by −1 (19, 39, ..., 999
    for T = 1000, N = 50, k = 20: LCM §4.3 "skipping-step", LCMScheduler's `original_inference_steps`)."""
    k = num_train_timesteps // num_ddim_timesteps
    return torch.arange(1, num_ddim_timesteps + 1) * k - 1, k


def adjacent_timesteps(
    schedule: torch.Tensor, k: int, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(t_{n+k}, t_n) for the (B,) drawn `index`es n ~ U{0..N−1}: t_n = t_{n+k} − k, clamped at 0."""
    start = schedule[index]
    return start, (start - k).clamp(min=0)


def alpha_sigma(alphas_cumprod: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(α_t, σ_t) = (√ᾱ_t, √(1 − ᾱ_t)) of z_t = α_t z_0 + σ_t ε (DDPM eq. 4), shaped (B, 1, 1, 1)."""
    alpha_bar = alphas_cumprod.to(t.device)[t].float()[:, None, None, None]
    return alpha_bar**0.5, (1 - alpha_bar) ** 0.5


def ddim_solver_step(
    x0: torch.Tensor, eps: torch.Tensor, alphas_cumprod: torch.Tensor, t_prev: torch.Tensor
) -> torch.Tensor:
    """Ψ, one deterministic DDIM step to t_n from the estimates x̂_0, ε̂ made at t_{n+k}:
    ẑ_{t_n} = α_{t_n} x̂_0 + σ_{t_n} ε̂  (DDIM eq. 12 with η = 0; LCM eq. 8 with the DDIM solver, App. D)."""
    alpha, sigma = alpha_sigma(alphas_cumprod, t_prev)
    return alpha * x0 + sigma * eps


def guided(cond: torch.Tensor, uncond: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """u(∅) + w (u(c) − u(∅)), per sample w (B,): the pipeline's classifier-free guidance (Ho & Salimans),
    = (1 + ω) u(c) − ω u(∅) of LCM eq. 8 with ω = w − 1; applied to x̂_0 and ε̂ alike (both are linear in ε̂)."""
    return uncond + w[:, None, None, None] * (cond - uncond)


def consistency_output(
    model_output: torch.Tensor,
    z_t: torch.Tensor,
    t: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    prediction_type: str,
    timestep_scaling: float = 10.0,
) -> torch.Tensor:
    """f(z_t, t) = c_skip(t) z_t + c_out(t) ẑ_0 of a U-Net output at z_t (LCM eq. 9), shaped like z_t."""
    alpha_bar = alphas_cumprod.to(t.device)[t].float()[:, None, None, None]
    x0, _ = predict_x0_and_eps(model_output.float(), z_t.float(), alpha_bar, prediction_type)
    c_skip, c_out = boundary_coefficients(t, timestep_scaling)
    return c_skip[:, None, None, None] * z_t + c_out[:, None, None, None] * x0


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    """d(a, b) = √(‖a − b‖² + c²) − c per element, averaged (Song & Dhariwal 2023 §3.3, the loss of LCM's
    released distillation); c = 0 gives the L1 distance, and L2 is `--loss_type l2`."""
    return (((a.float() - b.float()) ** 2 + c**2) ** 0.5 - c).mean()


def student_from_teacher(teacher: torch.nn.Module, time_cond_proj_dim: int | None) -> torch.nn.Module:
    """The full student: a copy of the teacher's U-Net with a zero-initialised w-embedding of
    `time_cond_proj_dim` features (None: a copy without one), so that at step 0 it computes the teacher's
    function at every w (LCM §4.2 initialises θ from the teacher)."""
    if not time_cond_proj_dim:
        return copy.deepcopy(teacher)
    config = {k: v for k, v in teacher.config.items() if not k.startswith("_")}  # not _use_default_values
    student = type(teacher).from_config({**config, "time_cond_proj_dim": time_cond_proj_dim})
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    if unexpected or set(missing) != {"time_embedding.cond_proj.weight"}:
        raise ValueError(f"--teacher: its U-Net does not fit a w-embedding ({missing or unexpected})")
    return student.to(device=teacher.device, dtype=teacher.dtype)
