"""Training losses against their closed forms, and per-sample training noise."""

from __future__ import annotations

import pytest
import torch
from _training_helpers import tiny_unet

from hfldm import DDPMScheduler, KLAutoencoder
from hfldm.training.losses import adaptive_gan_weight, diffusion_loss, hinge_d_loss, min_snr_weights
from hfldm.training.randomness import draw_step_noise, sample_generators


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_diffusion_loss_is_the_simplified_objective(prediction_type):
    """L = mean ||target − ε_θ(√ᾱ_t z_0 + √(1−ᾱ_t) ε, t)||², target ε or v = √ᾱ_t ε − √(1−ᾱ_t) z_0."""
    unet, scheduler = tiny_unet(), DDPMScheduler(num_train_timesteps=100, prediction_type=prediction_type)
    g = torch.Generator().manual_seed(1)
    z0, noise = torch.randn(3, 2, 8, 8, generator=g), torch.randn(3, 2, 8, 8, generator=g)
    t = torch.tensor([3, 50, 99])
    a = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    z_t = a.sqrt() * z0 + (1 - a).sqrt() * noise
    target = noise if prediction_type == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * z0
    torch.testing.assert_close(scheduler.add_noise(z0, noise, t), z_t, rtol=1e-5, atol=1e-6)  # DDPM eq. 4
    with torch.no_grad():
        prediction = unet(z_t, t).sample
        expected = ((prediction - target) ** 2).mean()
        loss = diffusion_loss(scheduler, prediction, z0, noise, t)
        weighted = diffusion_loss(scheduler, prediction, z0, noise, t, snr_gamma=5.0)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    per_sample = ((prediction - target) ** 2).mean(dim=(1, 2, 3))
    expected = (per_sample * min_snr_weights(scheduler, t, 5.0)).mean()
    torch.testing.assert_close(weighted, expected, rtol=1e-5, atol=1e-6)


def test_min_snr_weights_closed_form():
    """Hang et al. 2023: w = min(SNR, γ)/SNR for ε, min(SNR, γ)/(SNR + 1) for v, SNR = ᾱ/(1 − ᾱ)."""
    t = torch.tensor([0, 10, 500, 999])
    for prediction_type, denominator in (("epsilon", 0.0), ("v_prediction", 1.0)):
        scheduler = DDPMScheduler(prediction_type=prediction_type)
        a = scheduler.alphas_cumprod[t].double()
        snr = a / (1 - a)
        expected = torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64)) / (snr + denominator)
        torch.testing.assert_close(min_snr_weights(scheduler, t, 5.0).double(), expected, rtol=1e-4, atol=0)
    assert min_snr_weights(DDPMScheduler(), t, 5.0)[-1] == pytest.approx(1.0)  # low SNR: weight 1


def test_adaptive_gan_weight_is_the_ratio_of_gradient_norms():
    """Esser et al. eq. 7 on G_L = W: L_rec = Σ a⊙W, L_GAN = Σ b⊙W give λ = ‖a‖ / (‖b‖ + δ)."""
    w = torch.nn.Parameter(torch.randn(4, 3))
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    weight = adaptive_gan_weight((a * w).sum(), (b * w).sum(), w, delta=1e-4)
    assert weight.item() == pytest.approx((a.norm() / (b.norm() + 1e-4)).item(), rel=1e-6)
    assert not weight.requires_grad


def test_hinge_and_kl_losses_closed_forms():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.75))
    # the KL autoencoder's L_reg: KL(q(z|x) ‖ N(0, I)) summed over latent dims, batch mean, per pixel value
    torch.manual_seed(0)
    vae = KLAutoencoder(block_out_channels=(8, 16), layers_per_block=1, latent_channels=2, norm_num_groups=8)
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    posterior = vae.encode(x).latent_dist
    mean, logvar = posterior.mean, posterior.logvar
    kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)).mean() / (3 * 8 * 8)
    x_hat, reg = vae.regularized_forward(x, noise=torch.zeros_like(mean))
    assert reg.item() == pytest.approx(kl.item(), rel=1e-5)
    torch.testing.assert_close(x_hat, vae.decode(mean).sample)  # η = 0: z is the posterior mean


def test_training_noise_depends_on_the_sample_not_on_the_batch_split():
    """Samples 0..7 drawn as one batch or as two halves (two processes) get the same t, ε and dropout."""
    whole = draw_step_noise(sample_generators(7, 3, list(range(8))), (2, 4, 4), 1000, 0.5)
    halves = [
        draw_step_noise(sample_generators(7, 3, list(r)), (2, 4, 4), 1000, 0.5)
        for r in (range(4), range(4, 8))
    ]
    torch.testing.assert_close(whole.noise, torch.cat([h.noise for h in halves]), rtol=0, atol=0)
    assert whole.timesteps.tolist() == sum((h.timesteps.tolist() for h in halves), [])
    assert whole.drop.tolist() == sum((h.drop.tolist() for h in halves), [])
    other_step = draw_step_noise(sample_generators(7, 4, list(range(8))), (2, 4, 4), 1000, 0.5)
    assert not torch.equal(whole.noise, other_step.noise)
    assert (
        0.3
        < draw_step_noise(sample_generators(0, 0, list(range(400))), (1, 1, 1), 10, 0.5).drop.float().mean()
        < 0.7
    )
