"""The training losses: the LDM objective for the U-Net, and the autoencoder's reconstruction + KL / VQ +
patch-GAN objective (Rombach et al. 2022, Sec. 3.1 and Appendix G; Esser et al. 2021, Sec. 3.1).

Autoencoder losses are normalised per pixel value: LDM sums its terms over pixels and latents and divides by
the batch size; here the same sums are also divided by the number of pixel values 3·H·W, which changes no
ratio, so LDM's weights (kl_weight 1e-6, codebook_weight 1, disc_weight 0.5) keep their meaning.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from diffusers.training_utils import compute_snr

# (x, x_hat) in [-1, 1], (B, 3, H, W) -> (B,) perceptual distances, e.g. LPIPS
PerceptualLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------------------- U-Net objective
def prediction_target(
    scheduler, z0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """What the U-Net regresses, shape of z0: ε, v = √ᾱ_t ε − √(1−ᾱ_t) z_0 (Salimans & Ho 2022), or z_0."""
    prediction_type = scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(z0, noise, timesteps)
    if prediction_type == "sample":
        return z0
    raise ValueError(f"prediction_type: expected epsilon, v_prediction or sample, got {prediction_type!r}")


def min_snr_weights(scheduler, timesteps: torch.Tensor, snr_gamma: float) -> torch.Tensor:
    """Min-SNR-γ loss weights (Hang et al. 2023, Table 1), shape (B,).

    SNR_t = ᾱ_t / (1 − ᾱ_t); ε-loss: min(SNR, γ)/SNR; v-loss: min(SNR, γ)/(SNR + 1); x_0-loss: min(SNR, γ).
    """
    snr = compute_snr(scheduler, timesteps)
    clipped = torch.clamp(snr, max=snr_gamma)
    prediction_type = scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return clipped / snr
    if prediction_type == "v_prediction":
        return clipped / (snr + 1)
    return clipped


def diffusion_loss(
    scheduler,
    prediction: torch.Tensor,
    z0: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
    snr_gamma: float | None = None,
) -> torch.Tensor:
    """‖target − prediction‖², the target ε (LDM eq. 2; DDPM's simplified objective, eq. 14) or v, mean per
    sample, min-SNR-γ weighted when `snr_gamma` is set, then averaged over the batch (float32 scalar).

    prediction: the U-Net's output at z_t = √ᾱ_t z_0 + √(1 − ᾱ_t) ε; z0, noise: (B, C, h, w); timesteps: (B,).
    """
    target = prediction_target(scheduler, z0, noise, timesteps)
    per_sample = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    if snr_gamma is not None:
        per_sample = per_sample * min_snr_weights(scheduler, timesteps, snr_gamma)
    return per_sample.mean()


# ---------------------------------------------------------------------------------- autoencoder objective
def reconstruction_loss(
    x: torch.Tensor,
    x_hat: torch.Tensor,
    perceptual: PerceptualLoss | None = None,
    perceptual_weight: float = 0.0,
) -> torch.Tensor:
    """L_rec = ‖x − D(E(x))‖₁ (+ w·perceptual(x, x_hat)), mean per pixel value; scalar.

    `perceptual` is the hook for a feature network such as LPIPS (LDM's choice); none ships offline.
    """
    loss = (x.float() - x_hat.float()).abs().mean()
    if perceptual is not None and perceptual_weight > 0:
        loss = loss + perceptual_weight * perceptual(x, x_hat).mean()
    return loss


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss ½(E[max(0, 1 − D(x))] + E[max(0, 1 + D(x̂))]) (Lim & Ye 2017); scalar."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def generator_gan_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """The decoder's adversarial loss L_GAN = −E[D(x̂)] on the discriminator's patch logits; scalar."""
    return -logits_fake.float().mean()


def adaptive_gan_weight(
    rec_loss: torch.Tensor, gan_loss: torch.Tensor, last_layer: torch.Tensor, delta: float = 1e-4
) -> torch.Tensor:
    """λ = ‖∇_{G_L} L_rec‖ / (‖∇_{G_L} L_GAN‖ + δ) (Esser et al. 2021, eq. 7), clamped to [0, 1e4], detached.

    G_L is the last layer of the decoder (`last_layer`, its weight). Returns a scalar tensor.
    """
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    weight = rec_grad.norm() / (gan_grad.norm() + delta)
    return weight.clamp(0.0, 1e4).detach()


def autoencoder_generator_loss(
    x: torch.Tensor,
    x_hat: torch.Tensor,
    reg_loss: torch.Tensor,
    reg_weight: float,
    logits_fake: torch.Tensor | None,
    last_layer: torch.Tensor,
    disc_weight: float,
    perceptual: PerceptualLoss | None = None,
    perceptual_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L = L_rec + w_reg·L_reg + λ·w_disc·L_GAN; the GAN term only when `logits_fake` is given (after
    --disc_start). Returns (scalar loss, dict of its float terms for logging)."""
    rec = reconstruction_loss(x, x_hat, perceptual, perceptual_weight)
    loss = rec + reg_weight * reg_loss
    logs = {"rec_loss": rec.item(), "reg_loss": reg_loss.item()}
    if logits_fake is not None:
        gan = generator_gan_loss(logits_fake)
        weight = adaptive_gan_weight(rec, gan, last_layer) if torch.is_grad_enabled() else torch.tensor(0.0)
        loss = loss + disc_weight * weight * gan
        logs.update(gan_loss=gan.item(), gan_weight=weight.item())
    return loss, logs
