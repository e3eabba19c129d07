"""KL and VQ autoencoders: shapes for f in {1, 2, 4, 8}, the KL and VQ terms against their formulas,
straight-through gradients, codebook perplexity, safetensors round trip, diffusers-pipeline usage,
input checks, gradient checkpointing and the PatchGAN discriminator's receptive field."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.models.autoencoders.vae import VectorQuantizer as DiffusersVectorQuantizer
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import retrieve_latents
from diffusers.utils.torch_utils import randn_tensor

from hfldm.autoencoders import (
    DiagonalGaussian,
    KLAutoencoder,
    NLayerDiscriminator,
    VectorQuantizer,
    VQAutoencoder,
)
from hfldm.autoencoders.regularizers import codebook_perplexity

WIDTHS = (8, 16, 16, 16)


def tiny(cls, levels: int = 2, **kwargs):
    """A tiny autoencoder with `levels` levels (f = 2^(levels-1)), its zero-initialised convs made random."""
    torch.manual_seed(0)
    kw = dict(block_out_channels=WIDTHS[:levels], layers_per_block=1, norm_num_groups=4, sample_size=32)
    if cls is VQAutoencoder:
        kw["num_vq_embeddings"] = 16
    model = cls(**{**kw, **kwargs})
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():  # zero-initialised residual convs: give them weights so every path matters
                p.normal_(0.0, 0.05)
    return model.eval()


def images(b: int = 2, size: int = 32) -> torch.Tensor:
    return torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(1))


# 1. shapes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [1, 2, 3, 4])
def test_kl_shapes_for_each_downsample_factor(levels):
    vae = tiny(KLAutoencoder, levels)
    f = 2 ** (levels - 1)
    assert vae.downsample_factor == f and vae.latent_size(32) == vae.latent_size() == 32 // f
    with torch.no_grad():
        posterior = vae.encode(images()).latent_dist
        assert posterior.mean.shape == posterior.std.shape == (2, 4, 32 // f, 32 // f)
        assert posterior.sample(torch.Generator().manual_seed(0)).shape == (2, 4, 32 // f, 32 // f)
        assert vae.decode(posterior.mode()).sample.shape == (2, 3, 32, 32)
        assert vae(images()).sample.shape == (2, 3, 32, 32)


@pytest.mark.parametrize("levels", [1, 2, 3, 4])
def test_vq_shapes_for_each_downsample_factor(levels):
    vae = tiny(VQAutoencoder, levels, latent_channels=3, vq_embed_dim=5)
    f = 2 ** (levels - 1)
    assert vae.downsample_factor == f
    with torch.no_grad():
        h = vae.encode(images()).latents
        assert h.shape == (2, 5, 32 // f, 32 // f)
        out = vae.decode(h)
        assert out.sample.shape == (2, 3, 32, 32) and out.commit_loss.shape == ()
        q = vae.quantize(h)
        assert q.indices.shape == (2, 32 // f, 32 // f)
        assert torch.equal(q.indices, vae.quantize.nearest_indices(h)) and torch.equal(
            vae.codebook_indices(h), q.indices
        )  # the LatentSpace interface reports the quantiser's own codes
        assert q.perplexity.item() == pytest.approx(codebook_perplexity(q.indices, 16).item())


# 2. KL term ----------------------------------------------------------------------------------------------


def test_kl_term_matches_closed_form():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(3, 4, 5, 6, generator=g), torch.randn(3, 4, 5, 6, generator=g)
    posterior = DiagonalGaussian(torch.cat([mean, logvar], dim=1))
    by_hand = 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar).sum(dim=(1, 2, 3))
    torch.testing.assert_close(posterior.kl(), by_hand)
    torch.testing.assert_close(posterior.std, (0.5 * logvar).exp())
    # N(1, 1) against N(0, I): 1/2 per element; the KL to itself is 0
    unit = DiagonalGaussian(torch.cat([torch.ones(2, 4, 3, 3), torch.zeros(2, 4, 3, 3)], dim=1))
    torch.testing.assert_close(unit.kl(), torch.full((2,), 0.5 * 4 * 3 * 3))
    torch.testing.assert_close(posterior.kl(posterior), torch.zeros(3))
    # log-variance is clamped to [-30, 20] as in LDM
    extreme = DiagonalGaussian(torch.cat([mean, torch.full_like(logvar, -100.0)], dim=1))
    assert extreme.logvar.min().item() == -30.0


# 3. vector quantiser -------------------------------------------------------------------------------------


def test_vq_picks_nearest_entry_and_matches_diffusers_nonlegacy():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_embeddings=10, embedding_dim=3, beta=0.25)
    z = torch.randn(2, 3, 4, 5)
    out = vq(z)
    z_flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
    brute = ((z_flat[:, None, :] - vq.embedding.weight[None]) ** 2).sum(-1).argmin(1)
    assert torch.equal(out.indices.flatten(), brute)
    expected = vq.embedding.weight[brute].view(2, 4, 5, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(out.quantized, expected)
    reference = DiffusersVectorQuantizer(10, 3, beta=0.25, legacy=False)
    reference.load_state_dict(vq.state_dict())
    z_q_ref, loss_ref, _ = reference(z)
    torch.testing.assert_close(out.quantized, z_q_ref)
    torch.testing.assert_close(out.commit_loss, loss_ref)


def test_vq_straight_through_gradient():
    torch.manual_seed(0)
    vq = VectorQuantizer(num_embeddings=8, embedding_dim=4)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    z_q = vq(z).quantized
    w = torch.randn_like(z_q)
    (w * z_q**2).sum().backward()
    # d loss / d z equals d loss / d z_q = 2 w z_q, evaluated at the quantised value
    torch.testing.assert_close(z.grad, 2 * w * z_q.detach())


def test_vq_commitment_loss_value_and_gradients():
    torch.manual_seed(0)
    beta = 0.4
    vq = VectorQuantizer(num_embeddings=6, embedding_dim=2, beta=beta)
    z = torch.randn(3, 2, 4, 4, requires_grad=True)
    out = vq(z)
    e = vq.get_codebook_entry(out.indices).detach()
    mse = ((e - z.detach()) ** 2).mean()
    torch.testing.assert_close(out.commit_loss, (1 + beta) * mse)  # both terms equal in value
    out.commit_loss.backward()
    # only the commitment term reaches the encoder: d/dz beta ||z - sg[e]||^2 = 2 beta (z - e) / N
    torch.testing.assert_close(z.grad, 2 * beta * (z.detach() - e) / z.numel())
    # only the codebook term reaches the codebook: d/de_k ||sg[z] - e_k||^2 summed over positions using k
    z_flat, idx = z.detach().permute(0, 2, 3, 1).reshape(-1, 2), out.indices.flatten()
    expected = torch.zeros(6, 2).index_add_(
        0, idx, 2 * (vq.embedding.weight[idx].detach() - z_flat) / z.numel()
    )
    torch.testing.assert_close(vq.embedding.weight.grad, expected)


def test_vq_perplexity_counts_used_codes():
    vq = VectorQuantizer(num_embeddings=4, embedding_dim=2)
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    all_codes = vq.embedding.weight.detach().repeat(5, 1)  # each of the 4 codes used 5 times
    z = all_codes.T.reshape(1, 2, 4, 5)
    assert vq(z).perplexity.item() == pytest.approx(4.0)
    assert vq(torch.full((2, 2, 3, 3), 9.0)).perplexity.item() == pytest.approx(1.0)
    two = codebook_perplexity(torch.tensor([0, 1, 0, 1]), num_embeddings=4)
    assert two.item() == pytest.approx(2.0)
    skewed = codebook_perplexity(torch.tensor([0, 0, 0, 1]), num_embeddings=4)
    assert skewed.item() == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))


# 4. save / load ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [KLAutoencoder, VQAutoencoder])
def test_save_load_round_trip_uses_safetensors(cls, tmp_path):
    vae = tiny(cls, 3, scaling_factor=0.3)
    vae.save_pretrained(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["config.json", "diffusion_pytorch_model.safetensors"]
    loaded = cls.from_pretrained(tmp_path).eval()
    assert loaded.config.scaling_factor == 0.3 and loaded.downsample_factor == 4
    with torch.no_grad():
        assert torch.equal(vae(images()).sample, loaded(images()).sample)


# 5. diffusers pipeline-style use -------------------------------------------------------------------------


def test_kl_pipeline_style_use():
    vae = tiny(KLAutoencoder, 3, scaling_factor=0.5)
    x = images()
    with torch.no_grad():
        dist = vae.encode(x).latent_dist
        z1 = dist.sample(torch.Generator().manual_seed(7))
        z2 = retrieve_latents(vae.encode(x), generator=torch.Generator().manual_seed(7))
        assert torch.equal(z1, z2)  # same generator, same draw
        assert not torch.equal(z1, dist.sample(torch.Generator().manual_seed(8)))
        # reparameterisation: z = mean + std * eps with eps the generator's N(0, I) draw
        eps = randn_tensor(z1.shape, generator=torch.Generator().manual_seed(7))
        torch.testing.assert_close(z1, dist.mean + dist.std * eps)
        assert torch.equal(retrieve_latents(vae.encode(x), sample_mode="argmax"), dist.mean)
        # the U-Net sees z * scaling_factor; the pipeline divides it back out before decoding
        latents = z1 * vae.config.scaling_factor
        image = vae.decode(latents / vae.config.scaling_factor, return_dict=False, generator=None)[0]
        torch.testing.assert_close(image, vae.decode(z1).sample)
    processor = VaeImageProcessor(vae_scale_factor=2 ** (len(vae.config.block_out_channels) - 1))
    assert processor.config.vae_scale_factor == vae.downsample_factor == 4


def test_vq_pipeline_style_use():
    vae = tiny(VQAutoencoder, 2)
    with torch.no_grad():
        h = retrieve_latents(vae.encode(images()))
        assert torch.equal(h, vae.encode(images()).latents)
        out = vae.decode(h)
        q = vae.quantize(h)
        torch.testing.assert_close(out.sample, vae.decode(q.quantized, force_not_quantize=True).sample)
        torch.testing.assert_close(out.commit_loss, q.commit_loss)
        assert vae.decode(h, force_not_quantize=True).commit_loss.item() == 0.0
        dec, loss = vae(images(), return_dict=False)
        assert torch.equal(dec, out.sample) and torch.equal(loss, out.commit_loss)


# 6. bad input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [KLAutoencoder, VQAutoencoder])
def test_bad_input_raises_value_error_naming_argument(cls):
    vae = tiny(cls, 3)  # f = 4
    with pytest.raises(ValueError, match=r"^x: expected shape \(B, 3"):
        vae.encode(torch.zeros(1, 4, 32, 32))
    with pytest.raises(ValueError, match=r"^sample: .*divisible by f = 4"):
        vae(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"^x: .*divisible"):
        vae.encode(torch.zeros(1, 3, 32, 18))
    name = "z" if cls is KLAutoencoder else "h"
    with pytest.raises(ValueError, match=rf"^{name}: expected shape"):
        vae.decode(torch.zeros(1, 7, 8, 8))
    with pytest.raises(ValueError, match="image_size"):
        vae.latent_size(30)
    with pytest.raises(ValueError, match="block_out_channels"):
        cls(block_out_channels=())
    with pytest.raises(ValueError, match="layers_per_block"):
        cls(block_out_channels=(8,), layers_per_block=0)


def test_bad_vq_config_raises():
    with pytest.raises(ValueError, match="num_vq_embeddings"):
        VQAutoencoder(block_out_channels=(8,), num_vq_embeddings=0)
    with pytest.raises(ValueError, match="commitment_cost"):
        VQAutoencoder(block_out_channels=(8,), commitment_cost=-1.0)


# 7. gradient checkpointing -------------------------------------------------------------------------------


def _grads(model, x):
    model.zero_grad()
    out = model(x)
    loss = out.sample.square().mean()
    if out.commit_loss is not None:
        loss = loss + out.commit_loss
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("cls", [KLAutoencoder, VQAutoencoder])
def test_gradient_checkpointing_gives_same_gradients(cls):
    levels = 3
    vae = tiny(cls, levels)
    x = images()
    plain = _grads(vae, x)
    calls = []

    def counting_checkpoint(module, *args):
        calls.append(module)
        return torch.utils.checkpoint.checkpoint(module.__call__, *args, use_reentrant=False)

    vae.enable_gradient_checkpointing(counting_checkpoint)
    assert vae.is_gradient_checkpointing
    checkpointed = _grads(vae, x)
    assert len(calls) == 2 * (levels + 1)  # encoder: levels + mid; decoder: mid + levels
    assert plain.keys() == checkpointed.keys() and len(plain) > 0
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)
    with torch.no_grad():  # no recomputation without autograd
        vae(x)
    assert len(calls) == 2 * (levels + 1)


# PatchGAN discriminator ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_layers", "receptive_field"), [(2, 34), (3, 70)])
def test_patchgan_output_shape_and_receptive_field(n_layers, receptive_field):
    torch.manual_seed(0)
    disc = NLayerDiscriminator(base_channels=4, n_layers=n_layers).eval()
    x = torch.randn(1, 3, 128, 128, requires_grad=True)
    logits = disc(x)
    side = 128 // 2**n_layers - 2
    assert logits.shape == (1, 1, side, side)
    logits[0, 0, side // 2, side // 2].backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero()
    cols = x.grad.abs().sum(dim=(0, 1, 2)).nonzero()
    assert rows.max() - rows.min() + 1 == receptive_field  # 70x70 PatchGAN for n_layers = 3
    assert cols.max() - cols.min() + 1 == receptive_field
