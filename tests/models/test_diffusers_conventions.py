"""What diffusers' own test mixins check of a model or scheduler (ModelTesterMixin, SchedulerCommonTest),
written for hfldm's components on jittered (non-zero) tiny models, so that every equality compares numbers:
save/load round trips (variants, safetensors only), dtype moves, attention processors (set/get,
`cross_attention_kwargs`, slicing), layerwise casting, autoencoder slicing/tiling, custom timesteps.
The pipelines' conventions are in `test_diffusers_pipeline_conventions.py`.
"""

from __future__ import annotations

from pathlib import Path

import diffusers
import pytest
import torch
from _jitter import jitter
from _ldm_fixtures import TEXT_DIM, tiny_unet, tiny_vae
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0, SlicedAttnProcessor

from hfldm import ConditionalUNet, KLAutoencoder, VQAutoencoder
from hfldm.schedulers.ddim import DDIMScheduler
from hfldm.schedulers.ddpm import DDPMScheduler


def unet_inputs(batch: int = 2, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(
        sample=torch.randn(batch, 4, 8, 8, generator=g),
        timestep=torch.tensor([10, 70][:batch]),
        encoder_hidden_states=torch.randn(batch, 5, TEXT_DIM, generator=g),
    )


@pytest.fixture
def unet() -> ConditionalUNet:
    return tiny_unet(cross_attention_dim=TEXT_DIM)


def test_jittered_fixtures_see_every_input(unet):
    """The shared fixtures' U-Net is not the zero-initialised one: its output is non-zero and moves with
    z_t, t and τ_θ(y) (a fresh ConditionalUNet returns exactly 0 for all of them)."""
    inputs = unet_inputs()
    with torch.no_grad():
        out = unet(**inputs).sample
        assert torch.count_nonzero(ConditionalUNet(**unet.config)(**inputs).sample) == 0
        for name, changed in (
            ("sample", inputs["sample"] + 1),
            ("timestep", inputs["timestep"] + 300),
            ("encoder_hidden_states", -inputs["encoder_hidden_states"]),
        ):
            assert (unet(**(inputs | {name: changed})).sample - out).abs().max() > 1e-3, name
    assert out.abs().mean() > 1e-2


@pytest.mark.parametrize("variant", [None, "fp16"])
def test_save_load_round_trip_is_exact_and_safetensors_only(unet, variant, tmp_path):
    vae = jitter(tiny_vae("vq"), seed=4)
    for model, inputs in ((unet, unet_inputs()), (vae, dict(sample=torch.rand(2, 3, 16, 16) * 2 - 1))):
        model.save_pretrained(tmp_path / type(model).__name__, variant=variant)
        files = {p.suffix for p in (tmp_path / type(model).__name__).iterdir()}
        assert files == {".json", ".safetensors"}, files
        loaded = type(model).from_pretrained(tmp_path / type(model).__name__, variant=variant).eval()
        with torch.no_grad():
            torch.testing.assert_close(loaded(**inputs).sample, model(**inputs).sample, rtol=0, atol=0)


def test_dtype_moves_keep_the_output(unet):
    inputs = unet_inputs()
    with torch.no_grad():
        ref = unet(**inputs).sample
        unet.to(torch.bfloat16)
        assert unet.dtype == torch.bfloat16
        low = unet(**{k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in inputs.items()})
        back = unet.to(torch.float32)(**inputs).sample
    assert low.sample.dtype == torch.bfloat16
    torch.testing.assert_close(low.sample.float(), ref, rtol=0.05, atol=0.05)
    assert (back - ref).abs().max() < 0.05  # weights rounded to bf16 once


def test_attention_processors_set_and_get(unet):
    processors = unet.attn_processors
    assert processors and all(name.endswith(".processor") for name in processors)
    assert all(isinstance(p, AttnProcessor2_0) for p in processors.values())
    inputs = unet_inputs()
    with torch.no_grad():
        ref = unet(**inputs).sample
        unet.set_attn_processor({name: AttnProcessor() for name in processors})
        assert all(isinstance(p, AttnProcessor) for p in unet.attn_processors.values())
        torch.testing.assert_close(unet(**inputs).sample, ref, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError):
        unet.set_attn_processor({"nope.processor": AttnProcessor()})


class RecordingProcessor(AttnProcessor2_0):
    """diffusers' default processor that records the `weight` keyword argument it is called with."""

    def __init__(self):
        self.seen = []

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, weight=None):
        self.seen.append(weight)
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask)


def test_cross_attention_kwargs_reach_the_processors(unet):
    """#32 item 1: a custom processor's own argument arrives (before: only LoRA's `scale` was read)."""
    recorder = RecordingProcessor()
    unet.set_attn_processor(recorder)
    with torch.no_grad():
        unet(**unet_inputs(), cross_attention_kwargs={"weight": 0.5, "scale": 1.0})
    assert recorder.seen == [0.5] * len(unet.attn_processors)


def test_layerwise_casting_to_float8_storage(unet):
    """#32 item 2: float8 storage, fp32 compute (crashed in the timestep embedding before)."""
    inputs = unet_inputs()
    with torch.no_grad():
        ref = unet(**inputs).sample
        unet.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
        assert unet.time_embedding.linear_1.weight.dtype == torch.float8_e4m3fn
        out = unet(**inputs).sample
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    # e4m3 keeps 3 mantissa bits: the prediction stays the same function, to a few percent
    assert torch.corrcoef(torch.stack([out.flatten(), ref.flatten()]))[0, 1] > 0.8


def test_attention_slicing_gives_the_same_output(unet):
    """#32 item 5: slicing computes the same attention in pieces (before: set_attention_slice was missing and
    enable_attention_slicing did nothing)."""
    inputs = unet_inputs()
    with torch.no_grad():
        ref = unet(**inputs).sample
        for size in ("auto", "max", 1):
            unet.set_attention_slice(size)
            assert all(isinstance(p, SlicedAttnProcessor) for p in unet.attn_processors.values())
            torch.testing.assert_close(unet(**inputs).sample, ref, rtol=1e-5, atol=1e-6)
    unet.set_attention_slice(None)
    assert all(isinstance(p, AttnProcessor2_0) for p in unet.attn_processors.values())
    for bad in (0, 3, "most", 1.5):
        with pytest.raises(ValueError, match="slice_size"):
            unet.set_attention_slice(bad)


@pytest.mark.parametrize("kind", ["kl", "vq"])
def test_autoencoder_slicing_equals_the_whole_batch(kind):
    """#32 item 7: enable_slicing encodes and decodes one image at a time, with the same result."""
    vae = jitter(tiny_vae(kind), seed=4)
    g = torch.Generator().manual_seed(0)
    x, z = torch.rand(3, 3, 16, 16, generator=g) * 2 - 1, torch.randn(3, 4, 8, 8, generator=g)
    with torch.no_grad():
        moments, image = vae.latent_moments(x)[0], vae.decode_latents(z)
        vae.enable_slicing()
        torch.testing.assert_close(vae.latent_moments(x)[0], moments, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(vae.decode_latents(z), image, rtol=1e-5, atol=1e-5)
    assert image.abs().mean() > 1e-2


@pytest.mark.parametrize("kind", ["kl", "vq"])
def test_autoencoder_tiling(kind):
    """#32 item 7: enable_tiling decodes in overlapping tiles of the latent grid (one tile: exactly the
    untiled result; a local operation: exactly, through the blending; the decoder sees tile-sized inputs)."""
    vae = jitter(tiny_vae(kind), seed=4)
    z = torch.randn(1, 4, 20, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = vae.decode_latents(z)
        vae.enable_tiling(tile_latent_size=32)  # larger than z: one tile
        torch.testing.assert_close(vae.decode_latents(z), whole, rtol=0, atol=0)
        vae.enable_tiling(tile_latent_size=8)
        shapes = []
        hook = vae.decoder.register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape[2:])))
        tiles = vae.decode_latents(z)
        hook.remove()
    assert (
        tiles.shape == whole.shape and set(shapes) == {(8, 8)} and len(shapes) == 3 * 2
    )  # rows 0, 6, 12; columns 0, 4
    assert torch.isfinite(tiles).all()
    # the blending is exact for an operation without spatial context (a 1x1 conv upsampled by f = 2)
    from hfldm.autoencoders.tiling import tiled

    conv = torch.nn.Conv2d(4, 3, 1)
    local = lambda x: torch.nn.functional.interpolate(conv(x), scale_factor=2)  # noqa: E731
    with torch.no_grad():
        torch.testing.assert_close(tiled(local, z, tile=8, overlap=2, in_scale=1, out_scale=2), local(z))
    with pytest.raises(ValueError, match="tile_latent_size"):
        vae.enable_tiling(tile_latent_size=1)


def test_custom_timesteps_match_diffusers_ddpm():
    """#32 item 6: set_timesteps(timesteps=[...]) as diffusers' DDPMScheduler (same trajectory); DDIM steps to
    the next listed timestep; bad schedules are one ValueError."""
    ours, theirs = DDPMScheduler(num_train_timesteps=100), diffusers.DDPMScheduler(num_train_timesteps=100)
    custom = [90, 61, 30, 7, 0]
    ours.set_timesteps(timesteps=custom)
    theirs.set_timesteps(timesteps=custom)
    assert ours.timesteps.tolist() == custom and ours.num_inference_steps == 5
    x = y = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    for t in ours.timesteps:
        x = ours.step(torch.sin(3 * x), t, x, generator=torch.Generator().manual_seed(int(t))).prev_sample
        y = theirs.step(torch.sin(3 * y), t, y, generator=torch.Generator().manual_seed(int(t))).prev_sample
    torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    ddim = DDIMScheduler(num_train_timesteps=100)
    ddim.set_timesteps(timesteps=custom)
    eps = torch.randn(1, 2, 4, 4)
    # a deterministic DDIM step from 61 lands on ᾱ_30: x' = √ᾱ_30 x̂_0 + √(1 − ᾱ_30) ε̂
    x0 = (x - (1 - ddim.alphas_cumprod[61]) ** 0.5 * eps) / ddim.alphas_cumprod[61] ** 0.5
    expected = ddim.alphas_cumprod[30] ** 0.5 * x0.clamp(-1, 1) + (1 - ddim.alphas_cumprod[30]) ** 0.5 * eps
    torch.testing.assert_close(ddim.step(eps, 61, x).prev_sample, expected, rtol=1e-5, atol=1e-5)
    for bad in ([], [5, 5], [3, 8], [100], [2.5], "90"):
        with pytest.raises(ValueError, match="timesteps"):
            ours.set_timesteps(timesteps=bad)
    with pytest.raises(ValueError, match="exactly one"):
        ours.set_timesteps(4, timesteps=custom)


def test_components_are_kl_and_vq_alike():
    """enable_slicing / enable_tiling exist on both autoencoders, as on diffusers' (AutoencoderMixin)."""
    for cls in (KLAutoencoder, VQAutoencoder):
        assert all(callable(getattr(cls, m)) for m in ("enable_slicing", "disable_slicing", "enable_tiling"))


def test_zero_audit_finds_tests_that_only_see_a_zero_unet(capsys):
    """#32 item 8: the `_zero_audit` plugin lists the tests in which every ConditionalUNet call returned 0 --
    the deliberate one on a fresh U-Net, not the one on a jittered U-Net. (Run over the U-Net, pipeline,
    inpainting, super-resolution, compile, CLI and loss tests of this tree, it lists only the former.)"""
    tests = Path(__file__).parent
    selection = [
        str(tests / "test_unet.py::test_zero_init_output_is_zero"),
        str(tests / "test_diffusers_conventions.py::test_dtype_moves_keep_the_output"),
    ]
    assert pytest.main(["-p", "_zero_audit", "-q", "-p", "no:cacheprovider", *selection]) == 0
    out = capsys.readouterr().out
    report = out[out.index("zero-U-Net audit") :].splitlines()
    assert report[0].endswith("2 tests call a ConditionalUNet; 1 only see 0:"), report
    assert report[1].endswith("test_unet.py::test_zero_init_output_is_zero (1 calls, all exactly 0)")
    assert ConditionalUNet.forward.__name__ == "forward"  # the plugin put it back
