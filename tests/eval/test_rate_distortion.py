"""The rate–distortion arithmetic (hfldm.eval.rate_distortion) on Gaussian data, where the optimal denoiser
and its error have closed forms: x_0 ~ N(0, σ² I) gives E[x_0 | x_k] = √ᾱ_k σ² x_k / (ᾱ_k σ² + 1 − ᾱ_k) and
m_k = σ² (1 − ᾱ_k) / (ᾱ_k σ² + 1 − ᾱ_k)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hfldm.eval.rate_distortion import (
    kl_coefficients,
    log_spaced_timesteps,
    prior_kl_bits,
    rate_distortion,
    x0_mse_by_timestep,
)
from hfldm.schedulers.ddpm import DDPMScheduler

SIGMA = 0.5


@pytest.fixture(scope="module")
def alphas_cumprod():
    return DDPMScheduler(num_train_timesteps=1000).alphas_cumprod.double()


def optimal_mse(abar: torch.Tensor) -> torch.Tensor:
    return SIGMA**2 * (1 - abar) / (abar * SIGMA**2 + 1 - abar)


def test_measured_mse_of_the_optimal_denoiser_is_the_closed_form(alphas_cumprod):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(64, 3, 16, 16, generator=g, dtype=torch.float64) * SIGMA

    def predict_x0(x_k, k):
        abar = alphas_cumprod[k][:, None, None, None]
        return abar.sqrt() * SIGMA**2 * x_k / (abar * SIGMA**2 + 1 - abar)  # E[x_0 | x_k]

    timesteps = [0, 10, 100, 500, 999]
    measured = x0_mse_by_timestep(predict_x0, x0, alphas_cumprod, timesteps, g)
    expected = optimal_mse(alphas_cumprod[timesteps]).numpy()
    np.testing.assert_allclose(measured, expected, rtol=0.03)  # 49,152 dimensions: Monte-Carlo error ~1 %


def test_prior_term_is_the_kl_of_two_gaussians():
    x0 = torch.tensor([0.0, 0.5, -1.0], dtype=torch.float64)
    a = 0.04
    q = torch.distributions.Normal(math.sqrt(a) * x0, torch.tensor(math.sqrt(1 - a), dtype=torch.float64))
    prior = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    expected = torch.distributions.kl_divergence(q, prior).mean() / math.log(2)
    assert prior_kl_bits(x0, a) == pytest.approx(float(expected), rel=1e-9)


def test_kl_terms_match_the_gaussian_kl_and_rates_add_up(alphas_cumprod):
    """w_k m_k is KL(q(x_{k-1} | x_k, x_0) ‖ p(x_{k-1} | x_k)) for two Gaussians of variance β̃_k whose means
    differ by c_k (x_0 − x̂_0); 40 log-spaced timesteps of m_k give the full chain's rate within 1 %."""
    weights = kl_coefficients(alphas_cumprod.numpy())
    abar, k = alphas_cumprod, 300
    beta = 1 - abar[k] / abar[k - 1]
    variance = (1 - abar[k - 1]) / (1 - abar[k]) * beta
    coef = abar[k - 1].sqrt() * beta / (1 - abar[k])
    error = 0.3  # |x_0 − x̂_0| in one dimension
    p = torch.distributions.Normal(0.0, variance.sqrt())
    q = torch.distributions.Normal(coef * error, variance.sqrt())
    assert weights[k] * error**2 == pytest.approx(float(torch.distributions.kl_divergence(q, p)), rel=1e-9)
    assert weights[0] == 0

    every = list(range(1000))
    exact = rate_distortion(every, optimal_mse(abar).numpy(), abar.numpy(), prior_bits=0.0)
    coarse_k = log_spaced_timesteps(1000, 40)
    assert coarse_k[0] == 0 and coarse_k[-1] == 999 and len(coarse_k) <= 40
    coarse = rate_distortion(coarse_k, optimal_mse(abar[coarse_k]).numpy(), abar.numpy(), prior_bits=0.0)
    total_exact, total_coarse = exact["rate_bits_per_dim"][-1], coarse["rate_bits_per_dim"][-1]
    assert total_coarse == pytest.approx(total_exact, rel=0.01)
    assert total_exact == pytest.approx(float((weights * optimal_mse(abar).numpy()).sum() / math.log(2)))
    rates, distortions = np.array(coarse["rate_bits_per_dim"]), np.array(coarse["distortion_rmse"])
    assert coarse["timestep"][0] == 999 and rates[0] == 0.0  # nothing sent yet beyond L_T
    assert (np.diff(rates) >= 0).all() and (np.diff(distortions) <= 1e-9).all()  # rate up, distortion down
    assert distortions[0] == pytest.approx(math.sqrt(float(optimal_mse(abar[999]))) * 127.5)
