"""What the denoiser predicts, and how to read x_0 and ε off it.

With x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε  (DDPM eq. 4), any one of ε, x_0 or v = √ᾱ_t ε - √(1-ᾱ_t) x_0
(Salimans & Ho 2022, "Progressive Distillation", Sec. 4 and App. D) determines the other two given x_t.
`alpha_bar_t` may be a float, a 0-d tensor, or a tensor that broadcasts against the sample.
"""

import torch

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


def check_prediction_type(prediction_type: str) -> None:
    """Raise ValueError unless `prediction_type` is one of PREDICTION_TYPES."""
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")


def predict_x0_and_eps(
    model_output: torch.Tensor, sample: torch.Tensor, alpha_bar_t: torch.Tensor, prediction_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂_0, ε̂) from the model output at x_t, each shaped like `sample`."""
    check_prediction_type(prediction_type)
    sqrt_alpha_bar, sqrt_one_minus_alpha_bar = alpha_bar_t**0.5, (1 - alpha_bar_t) ** 0.5
    if prediction_type == "epsilon":
        # x̂_0 = (x_t - √(1-ᾱ_t) ε_θ) / √ᾱ_t  (DDPM eq. 15)
        eps = model_output
        x0 = (sample - sqrt_one_minus_alpha_bar * eps) / sqrt_alpha_bar
    elif prediction_type == "sample":
        x0 = model_output
        eps = eps_from_x0(x0, sample, alpha_bar_t)
    else:
        # x̂_0 = √ᾱ_t x_t - √(1-ᾱ_t) v,  ε̂ = √ᾱ_t v + √(1-ᾱ_t) x_t  (Salimans & Ho 2022, App. D)
        x0 = sqrt_alpha_bar * sample - sqrt_one_minus_alpha_bar * model_output
        eps = sqrt_alpha_bar * model_output + sqrt_one_minus_alpha_bar * sample
    return x0, eps


def eps_from_x0(x0: torch.Tensor, sample: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """ε = (x_t - √ᾱ_t x_0) / √(1-ᾱ_t)  (DDPM eq. 4 solved for ε), shaped like `sample`."""
    return (sample - alpha_bar_t**0.5 * x0) / (1 - alpha_bar_t) ** 0.5


def velocity(x0: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """v = √ᾱ_t ε - √(1-ᾱ_t) x_0  (Salimans & Ho 2022, Sec. 4), shaped like `x0`."""
    return alpha_bar_t**0.5 * eps - (1 - alpha_bar_t) ** 0.5 * x0


def dynamic_threshold(x0: torch.Tensor, ratio: float, max_value: float) -> torch.Tensor:
    """Imagen's dynamic thresholding (Saharia et al. 2022, Sec. 2.3): per sample, s = the `ratio` quantile of
    |x̂_0| clamped to [1, max_value]; returns clamp(x̂_0, -s, s) / s, shaped like `x0`."""
    flat = x0.float().reshape(x0.shape[0], -1)  # (B, C, H, W) -> (B, C*H*W)
    s = torch.quantile(flat.abs(), ratio, dim=1).clamp(min=1, max=max_value).unsqueeze(1)
    return (torch.clamp(flat, -s, s) / s).reshape(x0.shape).to(x0.dtype)
