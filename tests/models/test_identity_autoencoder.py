"""The f = 1 first stage: pixel-space diffusion through the same loader, U-Net and pipeline."""

from __future__ import annotations

import numpy as np
import torch
from _ldm_fixtures import perturb

from hfldm import ConditionalUNet, DDPMScheduler, IdentityAutoencoder, LatentDiffusionPipeline
from hfldm.autoencoders.latent_space import latent_space
from hfldm.autoencoders.loading import load_autoencoder


def test_encoder_and_decoder_are_the_identity_with_f_1(tmp_path):
    ae = IdentityAutoencoder(sample_size=16)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    mean, std = ae.latent_moments(x)
    assert torch.equal(mean, x) and not std.any() and torch.equal(ae.decode_latents(x), x)
    assert latent_space(ae) is ae and ae.latent_shape(16, 8) == (3, 16, 8) and ae.scaling_factor == 1.0
    ae.save_pretrained(tmp_path / "ae")
    loaded = load_autoencoder(tmp_path / "ae")
    assert isinstance(loaded, IdentityAutoencoder) and loaded.config.sample_size == 16
    assert isinstance(load_autoencoder("identity"), IdentityAutoencoder)


def test_a_pixel_space_pipeline_samples_and_round_trips():
    torch.manual_seed(0)
    unet = ConditionalUNet(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        attention_levels=(False, False),
        norm_num_groups=4,
    )
    pipe = LatentDiffusionPipeline(IdentityAutoencoder(sample_size=16), perturb(unet, 0), DDPMScheduler(100))
    pipe.set_progress_bar_config(disable=True)
    images = pipe(num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="np").images
    assert images.shape == (1, 16, 16, 3) and pipe.vae_scale_factor == 1
    x = np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3)).astype(np.float32) / 255
    same = pipe(image=x, strength=0.0, num_inference_steps=3, output_type="np").images
    np.testing.assert_allclose(same, x, atol=1e-6)  # E and D lose nothing: img2img at strength 0 is x
