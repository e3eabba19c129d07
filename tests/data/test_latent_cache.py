"""The latent cache: the posterior (and text embedding) of every image, for hfldm's and diffusers' models."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from hfldm.autoencoders.loading import load_autoencoder
from hfldm.data.arguments import DataArguments
from hfldm.data.latent_cache import (
    cache_latents,
    load_latent_cache,
    load_uncond_embedding,
    sample_latents,
)
from hfldm.data.loader import collate_fn, load_image_dataset


def _tiny_vae(kind: str):
    if kind == "KLAutoencoder":
        from hfldm.autoencoders.kl import KLAutoencoder

        return KLAutoencoder(
            block_out_channels=(8, 16), layers_per_block=1, latent_channels=3, norm_num_groups=4
        )
    if kind == "VQAutoencoder":
        from hfldm.autoencoders.vq import VQAutoencoder

        return VQAutoencoder(
            block_out_channels=(8, 16), layers_per_block=1, latent_channels=3, norm_num_groups=4
        )
    from diffusers import AutoencoderKL

    blocks = dict(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    return AutoencoderKL(block_out_channels=(8, 16), latent_channels=3, norm_num_groups=4, **blocks)


@pytest.mark.parametrize("kind", ["AutoencoderKL", "KLAutoencoder", "VQAutoencoder"])
def test_latent_cache_round_trip(digits_dir, tmp_path, kind):
    from hfldm.text import encode_text, load_minilm

    torch.manual_seed(0)
    _tiny_vae(kind).save_pretrained(tmp_path / "vae")
    vae = load_autoencoder(tmp_path / "vae")
    assert type(vae).__name__ == kind
    text_model = load_minilm() if kind == "AutoencoderKL" else None  # the text part once is enough
    args = DataArguments(
        train_data_dir=str(digits_dir / "12"), resolution=12, label_column="label", max_samples=20
    )
    cache = cache_latents(args, vae, tmp_path / "cache", text_model=text_model, batch_size=8)
    assert cache is not None and len(load_latent_cache(tmp_path / "cache")) == 20

    dataset, _ = load_image_dataset(args)
    batch = collate_fn([dataset[i] for i in range(20)])
    with torch.no_grad():
        if kind == "VQAutoencoder":  # a deterministic encoder: q(z|x) is a point mass, std 0
            h = vae.encode(batch["pixel_values"]).latents
            posterior = SimpleNamespace(mean=h, std=torch.zeros_like(h))
        else:
            posterior = vae.encode(batch["pixel_values"]).latent_dist
    cached = load_latent_cache(tmp_path / "cache")[:20]
    assert cached["latent_mean"].shape == (20, 3, 6, 6)
    torch.testing.assert_close(cached["latent_mean"], posterior.mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cached["latent_std"], posterior.std, rtol=1e-5, atol=1e-6)
    assert torch.equal(cached["labels"], batch["labels"]) and cached["text"] == batch["text"]
    z = sample_latents(cached, torch.Generator().manual_seed(1))
    eps = torch.randn(z.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(z, posterior.mean + posterior.std * eps, rtol=1e-5, atol=1e-5)  # q(z|x) draw
    if text_model is not None:
        with torch.no_grad():
            hidden, mask = encode_text(*text_model, batch["text"])
            uncond_hidden, uncond_mask = encode_text(*text_model, [""])
        torch.testing.assert_close(cached["encoder_hidden_states"], hidden, rtol=1e-4, atol=1e-5)
        assert torch.equal(cached["attention_mask"], mask)
        uncond = load_uncond_embedding(tmp_path / "cache")
        torch.testing.assert_close(uncond["encoder_hidden_states"], uncond_hidden[0], rtol=1e-4, atol=1e-5)
        assert torch.equal(uncond["attention_mask"], uncond_mask[0])
    with pytest.raises(ValueError, match="out: .* not empty"):
        cache_latents(args, vae, tmp_path / "cache")
