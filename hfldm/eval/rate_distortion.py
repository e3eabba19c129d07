"""Rate–distortion of a diffusion model along its reverse process (Ho et al. 2020, §4.3 "progressive
coding"; LDM Fig. 2).

With x_t ~ q(x_t | x_0) and the model's estimate x̂_0(x_t), the terms of the variational bound (DDPM eq. 5)
for the fixed reverse variance σ_t² = β̃_t are
    L_T     = KL(q(x_T | x_0) ‖ N(0, I)),
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) ‖ p_θ(x_{t-1} | x_t)) = c_t² ‖x_0 − x̂_0(x_t)‖² / (2 β̃_t),
              c_t = √ᾱ_{t-1} β_t / (1 − ᾱ_t)   (both Gaussians have variance β̃_t; DDPM eq. 7),
so past L_T they depend on the model only through m_t = E‖x_0 − x̂_0(x_t)‖² / d, the per-dimension MSE of
its x̂_0 at each timestep. The rate once x_t is received is R(t) = L_T + Σ_{s>t} L_{s-1} bits per dimension,
the distortion D(t) = RMSE(x_0, x̂_0(x_t)) on the 0–255 scale (x_0 in [-1, 1]). `x0_mse_by_timestep`
measures m_t on a grid of timesteps; `rate_distortion` interpolates it over the whole chain and sums.
Timesteps are diffusers' indices k = 0 .. T − 1 (DDPM's t = k + 1): ᾱ_k = alphas_cumprod[k].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

LN2 = math.log(2.0)


def prior_kl_bits(x0: torch.Tensor, alpha_bar_last: float) -> float:
    """L_T per dimension, in bits: KL(N(√ᾱ_T x_0, (1 − ᾱ_T) I) ‖ N(0, I)) averaged over x_0's entries."""
    a = float(alpha_bar_last)
    kl = 0.5 * (a * x0.double() ** 2 + (1 - a) - 1 - math.log(1 - a))  # KL of two Gaussians, per dimension
    return float(kl.mean()) / LN2


def kl_coefficients(alphas_cumprod) -> np.ndarray:
    """w_k = c_k² / (2 β̃_k) for k = 1 .. T − 1 (w_0 = 0: the step to x_0 is the decoder's), float64, so
    that L_{k-1} = w_k · m_k nats per dimension."""
    abar = np.asarray(alphas_cumprod, dtype=np.float64)
    prev = np.concatenate([[1.0], abar[:-1]])
    beta = 1 - abar / prev
    coef = np.sqrt(prev) * beta / (1 - abar)  # c_k = √ᾱ_{k-1} β_k / (1 − ᾱ_k)
    variance = (1 - prev) / (1 - abar) * beta  # β̃_k
    weights = np.zeros_like(abar)
    weights[1:] = coef[1:] ** 2 / (2 * variance[1:])
    return weights


@torch.no_grad()
def x0_mse_by_timestep(
    predict_x0: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    timesteps: list[int],
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """m_k = mean over x_0's entries of (x_0 − x̂_0(x_k))², x_k = √ᾱ_k x_0 + √(1 − ᾱ_k) ε (DDPM eq. 4), for
    each k in `timesteps`; `predict_x0(x_k, k)` is the model's x̂_0 (k a (B,) tensor)."""
    out = []
    for k in timesteps:
        abar = alphas_cumprod[k].to(x0.dtype)
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        x_k = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
        x0_hat = predict_x0(x_k, torch.full((len(x0),), k, device=x0.device))
        out.append(float(((x0 - x0_hat) ** 2).double().mean()))
    return np.asarray(out)


def log_spaced_timesteps(num_train_timesteps: int, count: int) -> list[int]:
    """About `count` distinct timesteps from 0 to T − 1, log-spaced: dense near 0, where the rate is spent."""
    grid = np.unique(np.round(np.geomspace(1, num_train_timesteps, count)).astype(int) - 1)
    return grid.tolist()


def rate_distortion(
    timesteps: list[int], mse: np.ndarray, alphas_cumprod, prior_bits: float, scale: float = 127.5
) -> dict:
    """{"timestep", "rate_bits_per_dim", "distortion_rmse"} at each measured timestep, largest first:
    R(k) = L_T + Σ_{j=k+1}^{T-1} w_j m_j, D(k) = √m_k · `scale` (127.5: [-1, 1] data on the 0–255 scale).
    Between measured timesteps log m is interpolated linearly in log(1 + j) (m grows like a power of j near
    j = 0, where w_j is largest), held constant beyond them: log-spaced grids (`log_spaced_timesteps`) suit.
    """
    order = np.argsort(timesteps)
    ks, ms = np.asarray(timesteps)[order], np.asarray(mse, dtype=np.float64)[order]
    weights = kl_coefficients(alphas_cumprod)
    every_k = np.arange(len(weights))
    m = np.exp(np.interp(np.log1p(every_k), np.log1p(ks), np.log(np.maximum(ms, 1e-300))))
    terms = weights * m / LN2  # L_{j-1} in bits per dimension, j = 0 .. T − 1
    after = np.concatenate([np.cumsum(terms[::-1])[::-1][1:], [0.0]])  # Σ_{j > k} terms_j
    rows = sorted(zip(ks.tolist(), ms.tolist()), reverse=True)
    return {
        "timestep": [k for k, _ in rows],
        "rate_bits_per_dim": [prior_bits + float(after[k]) for k, _ in rows],
        "distortion_rmse": [math.sqrt(m) * scale for _, m in rows],
    }
