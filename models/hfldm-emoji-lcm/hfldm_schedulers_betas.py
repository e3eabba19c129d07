"""β schedules of the forward process q(x_t | x_{t-1}) = N(√(1-β_t) x_{t-1}, β_t I)  (DDPM eq. 2).

The numbers are those of diffusers' schedulers for the same names, so configs move between the two.
"""

import math
from collections.abc import Sequence

import torch

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")


def linear_betas(num_train_timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """β_t linear in t from beta_start to beta_end (DDPM Sec. 4). Returns float32 (T,)."""
    return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)


def scaled_linear_betas(num_train_timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """√β_t linear in t, the LDM / Stable Diffusion schedule. Returns float32 (T,)."""
    sqrt_betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32)
    return sqrt_betas**2


def cosine_betas(num_train_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Cosine schedule of Nichol & Dhariwal 2021 (eq. 17): ᾱ(t) = cos²((t/T + s)/(1 + s) · π/2),
    β_t = min(1 - ᾱ(t+1)/ᾱ(t), max_beta). Returns float32 (T,)."""

    def alpha_bar(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    T = num_train_timesteps
    betas = [min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), max_beta) for i in range(T)]
    return torch.tensor(betas, dtype=torch.float32)


def make_betas(
    num_train_timesteps: int,
    beta_start: float,
    beta_end: float,
    beta_schedule: str,
    trained_betas: Sequence[float] | None = None,
) -> torch.Tensor:
    """β_1..β_T for a named schedule, or `trained_betas` as given. Returns float32 (num_train_timesteps,).

    ValueError unless every β_t is in (0, 1): a variance of q(x_t | x_{t-1}) (DDPM eq. 2) outside it makes
    √(1 − β_t) or ᾱ_t nan or negative, and every image sampled from the model black.
    """
    return check_betas(_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas))


def check_betas(betas: torch.Tensor) -> torch.Tensor:
    """`betas` when all are in (0, 1); ValueError naming the first outside otherwise."""
    bad = ~((betas > 0) & (betas < 1))
    if bad.any():
        t = int(bad.nonzero()[0])
        raise ValueError(
            f"beta_start/beta_end: β_{t + 1} = {betas[t].item():g} is outside (0, 1); a forward-process "
            "variance must be in (0, 1) (DDPM eq. 2)"
        )
    return betas


def _betas(
    num_train_timesteps: int,
    beta_start: float,
    beta_end: float,
    beta_schedule: str,
    trained_betas: Sequence[float] | None = None,
) -> torch.Tensor:
    if num_train_timesteps < 1:
        raise ValueError(f"num_train_timesteps must be >= 1, got {num_train_timesteps}")
    if trained_betas is not None:
        betas = torch.tensor(trained_betas, dtype=torch.float32).flatten()
        if len(betas) != num_train_timesteps:
            raise ValueError(
                f"trained_betas has {len(betas)} values but num_train_timesteps is {num_train_timesteps}"
            )
        return betas
    if beta_schedule == "linear":
        return linear_betas(num_train_timesteps, beta_start, beta_end)
    if beta_schedule == "scaled_linear":
        return scaled_linear_betas(num_train_timesteps, beta_start, beta_end)
    if beta_schedule == "squaredcos_cap_v2":
        return cosine_betas(num_train_timesteps)
    raise ValueError(f"beta_schedule must be one of {BETA_SCHEDULES}, got {beta_schedule!r}")
