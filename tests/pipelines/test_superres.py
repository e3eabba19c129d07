"""Super-resolution by concatenation (LDM §3.3, §4.4): the U-Net's concat channels, hfldm's SR pipeline
(sizes, inputs, schedulers, saving, bad inputs) and its parity with diffusers' LDMSuperResolutionPipeline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from _ldm_fixtures import tiny_vae
from _superres_fixtures import (
    DIFFUSERS_LOW_RES,
    FRESH_LOADER,
    LOW_RES,
    low_res_images,
    save_diffusers_ldm_sr,
    sr_pipeline,
    sr_unet,
    upscale,
)  # fmt: skip
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    LDMSuperResolutionPipeline,
    PNDMScheduler,
    VQModel,
)

from hfldm import ConditionalUNet, LatentDiffusionSuperResolutionPipeline
from hfldm.pipelines.self_contained import flat_source
from hfldm.training.models import unet_from_yaml
from hfldm.unets.concat import concat_condition, condition_channels

REPO = Path(__file__).resolve().parents[2]


# --- the U-Net's concat channels -------------------------------------------------------------------------


def test_concat_channels_are_recorded_and_checked(tmp_path):
    unet = sr_unet()
    assert (unet.config.in_channels, unet.config.out_channels, condition_channels(unet.config)) == (7, 4, 3)
    z_t, y = torch.randn(2, 4, 8, 8), torch.rand(2, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        eps = unet(concat_condition(z_t, y, unet.config), 10).sample
        eps_other_y = unet(concat_condition(z_t, -y, unet.config), 10).sample
    assert eps.shape == z_t.shape  # ε has z_t's channels, not the input's
    assert (eps - eps_other_y).abs().max() > 1e-3  # the prediction depends on the condition
    with pytest.raises(ValueError, match=r"condition: expected 3 channels .* got 1"):
        concat_condition(z_t, y[:, :1], unet.config)
    with pytest.raises(ValueError, match=r"condition: expected shape \(2, 3, 8, 8\)"):
        concat_condition(z_t, y[:, :, :4], unet.config)
    with pytest.raises(ValueError, match=r"sample: expected \(B, 7, H, W\): z_t's 4 \+ 3 condition channels"):
        unet(torch.cat([z_t, y[:, :1]], dim=1), 10)
    with pytest.raises(ValueError, match="condition: this U-Net takes no concatenated condition"):
        concat_condition(z_t, y, sr_unet(in_channels=4).config)
    unet.save_pretrained(tmp_path)
    assert ConditionalUNet.from_pretrained(tmp_path).config.in_channels == 7


def test_unet_from_yaml_adds_condition_channels(tmp_path):
    vae = tiny_vae("kl")  # 4 latent channels
    config = REPO / "training/configs/unet_tiny.yaml"
    plain = unet_from_yaml(str(config), vae, 8, None, None)  # the existing callers: unchanged
    sr = unet_from_yaml(str(config), vae, 8, None, None, condition_channels=3)
    assert (plain.config.in_channels, plain.config.out_channels) == (4, 4)
    assert (sr.config.in_channels, sr.config.out_channels) == (7, 4)
    contradicting = tmp_path / "unet.yaml"
    contradicting.write_text(config.read_text() + "in_channels: 4\n")
    with pytest.raises(ValueError, match=r"--unet_config: in_channels = 4 .* concatenated condition's are 7"):
        unet_from_yaml(str(contradicting), vae, 8, None, None, condition_channels=3)


# --- hfldm's pipeline ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipe():
    return sr_pipeline()


def test_upscaled_size_from_pil_numpy_tensor_and_batches(pipe):
    image = low_res_images(1)[0]
    array = np.asarray(image).astype(np.float32) / 255  # (H, W, 3) in [0, 1]
    tensor = torch.from_numpy(array).permute(2, 0, 1)  # (3, H, W) in [0, 1]
    from_pil = upscale(pipe, image)
    assert from_pil.shape == (1, 2 * LOW_RES, 2 * LOW_RES, 3)  # f = 2
    for same in (array, tensor, (array * 255).astype(np.uint8), [image]):
        np.testing.assert_allclose(upscale(pipe, same), from_pil, atol=1e-6)
    pil = pipe(image, num_inference_steps=2).images[0]
    assert isinstance(pil, PIL.Image.Image) and pil.size == (2 * LOW_RES, 2 * LOW_RES)
    # a batch: each image as if alone, for per-image generators; another low-res image, another result
    images = low_res_images(2, seed=1)
    batch = upscale(pipe, images, seed=[5, 6])
    assert batch.shape == (2, 2 * LOW_RES, 2 * LOW_RES, 3)
    np.testing.assert_allclose(batch[1], upscale(pipe, images[1], seed=6)[0], atol=1e-5)
    stacked = torch.stack([torch.from_numpy(np.asarray(i) / 255).permute(2, 0, 1).float() for i in images])
    np.testing.assert_allclose(upscale(pipe, stacked, seed=[5, 6]), batch, atol=1e-5)
    assert np.abs(batch[0] - upscale(pipe, images[1], seed=5)[0]).max() > 1e-3


def test_grayscale_and_rgba_are_converted_to_rgb(pipe):
    image = low_res_images(1)[0]
    gray = image.convert("L")
    np.testing.assert_allclose(upscale(pipe, gray), upscale(pipe, gray.convert("RGB")), atol=1e-6)
    opaque = image.copy()
    opaque.putalpha(255)
    np.testing.assert_allclose(upscale(pipe, opaque), upscale(pipe, image), atol=1e-6)
    transparent = image.copy()
    transparent.putalpha(0)  # composited on white, as the training data
    white = PIL.Image.new("RGB", image.size, "white")
    np.testing.assert_allclose(upscale(pipe, transparent), upscale(pipe, white), atol=1e-6)
    gray_array = np.asarray(gray, dtype=np.float32)[..., None] / 255  # (H, W, 1)
    np.testing.assert_allclose(upscale(pipe, gray_array), upscale(pipe, gray), atol=1e-6)
    rgba = torch.ones(4, LOW_RES, LOW_RES)
    rgba[3] = 0.0  # transparent -> white
    np.testing.assert_allclose(upscale(pipe, rgba), upscale(pipe, white), atol=1e-6)


def test_latents_are_unscaled_before_decoding_when_scaled(pipe):
    """scale_latents=True (hfldm's convention): x = D(z / scaling_factor); False: x = D(z)."""
    image = low_res_images(1)[0]
    z = pipe(image, num_inference_steps=3, generator=torch.manual_seed(0), output_type="latent").images
    x = pipe(image, num_inference_steps=3, generator=torch.manual_seed(0), output_type="pt").images
    with torch.no_grad():
        decoded = pipe.latent_space.decode_latents(z / pipe.vae.config.scaling_factor)
    torch.testing.assert_close(x, (decoded / 2 + 0.5).clamp(0, 1), atol=1e-6, rtol=0)
    unscaled = sr_pipeline(scale_latents=False)
    x = unscaled(image, num_inference_steps=3, generator=torch.manual_seed(0), output_type="pt").images
    with torch.no_grad():
        decoded = unscaled.latent_space.decode_latents(z)  # the same U-Net and seed give the same z
    torch.testing.assert_close(x, (decoded / 2 + 0.5).clamp(0, 1), atol=1e-6, rtol=0)


def test_scheduler_swap_to_dpm_solver_solves_the_same_ode(pipe):
    """DDIM (η = 0) and DPM-Solver++ both integrate the probability-flow ODE from the same z_T: with enough
    steps they reach about the same images; a different z_T gives a different image."""
    image = low_res_images(1)[0]
    ddim = upscale(pipe, image, steps=100)  # every one of the 100 training timesteps
    dpm_scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    dpm_pipe = LatentDiffusionSuperResolutionPipeline(pipe.vae, pipe.unet, dpm_scheduler, scale_latents=True)
    dpm_pipe.set_progress_bar_config(disable=True)
    dpm = upscale(dpm_pipe, image, steps=20)
    other_seed = upscale(dpm_pipe, image, seed=1, steps=20)
    gap, seed_gap = np.abs(dpm - ddim).max(), np.abs(dpm - other_seed).max()
    print(f"DDIM 100 steps vs DPM-Solver 20 steps: {gap:.4f}; another z_T: {seed_gap:.4f}")  # 0.004, 0.8
    assert dpm.shape == ddim.shape and gap < 0.02 and seed_gap > 0.2


def test_y_enters_the_unet_unscaled_for_sigma_schedulers(pipe):
    """Euler's scale_model_input divides z_t by sqrt(σ² + 1) (z_t = x_σ / sqrt(σ² + 1)); y, trained as the
    image in [-1, 1], must reach the U-Net unchanged at every step (diffusers' LDM-SR scales it as well)."""
    image = low_res_images(1)[0]
    y = torch.from_numpy(np.asarray(image) / 127.5 - 1).permute(2, 0, 1)[None].float()
    seen = []
    hook = pipe.unet.register_forward_pre_hook(lambda module, args: seen.append(args[0][:, 4:].clone()))
    euler = LatentDiffusionSuperResolutionPipeline(
        pipe.vae, pipe.unet, EulerDiscreteScheduler.from_config(pipe.scheduler.config), scale_latents=True
    )
    euler.set_progress_bar_config(disable=True)
    try:
        upscale(euler, image, steps=3)
    finally:
        hook.remove()
    assert len(seen) == 3 and euler.scheduler.init_noise_sigma > 1
    for condition in seen:
        torch.testing.assert_close(condition, y, atol=1e-6, rtol=0)


def test_save_pretrained_and_fresh_process_load(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "sr")
    index = json.loads((tmp_path / "sr/model_index.json").read_text())
    assert index["_class_name"] == [
        "pipeline_latent_diffusion_superres",
        "LatentDiffusionSuperResolutionPipeline",
    ]
    # the vae's code ships in its sub-folder; the pipeline's beside model_index.json (test_self_contained.py)
    assert index["vae"] == ["vae_hfldm", "KLAutoencoder"] and index["scale_latents"] is True
    shipped = tmp_path / "sr/hfldm_pipelines_pipeline_latent_diffusion_superres.py"
    assert shipped.read_text() == flat_source("hfldm.pipelines.pipeline_latent_diffusion_superres")
    assert "pipeline_tag: image-to-image" in (tmp_path / "sr/README.md").read_text()
    images = low_res_images(2)
    np.save(tmp_path / "low_res.npy", np.stack([np.asarray(i) for i in images]))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "HF_MODULES_CACHE": str(tmp_path / "m"),
    }
    result = subprocess.run(
        [sys.executable, "-c", FRESH_LOADER, *(str(tmp_path / p) for p in ("sr", "low_res.npy", "out.npy"))],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    name, module = result.stdout.split()[-2:]
    assert name == "LatentDiffusionSuperResolutionPipeline" and module.startswith("diffusers_modules.")
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), upscale(pipe, images, seed=[0, 1]), atol=1e-6)
    # and through the class itself, without remote code
    loaded = LatentDiffusionSuperResolutionPipeline.from_pretrained(tmp_path / "sr")
    np.testing.assert_allclose(upscale(loaded, images[0]), upscale(pipe, images[0]), atol=1e-6)


# --- diffusers' LDMSuperResolutionPipeline folders ----------------------------------------------------------


@pytest.fixture(scope="module")
def diffusers_folder(tmp_path_factory):
    return save_diffusers_ldm_sr(tmp_path_factory.mktemp("ldm-sr"))


SCHEDULERS = dict(ddim=DDIMScheduler, dpm=DPMSolverMultistepScheduler, pndm=PNDMScheduler, ddpm=DDPMScheduler)
CASES = [("ddim", 0.0), ("ddim", 1.0), ("dpm", 0.0), ("pndm", 0.0), ("ddpm", 0.0)]


@pytest.mark.parametrize("scheduler, eta", CASES)
def test_diffusers_ldm_sr_folder_gives_diffusers_images(diffusers_folder, scheduler, eta):
    """The same folder, scheduler, steps, η and seed: the same images as diffusers' pipeline.

    diffusers draws z_T from `generator` but the noise of stochastic steps (DDIM with η > 0, DDPM) from
    torch's global RNG (it does not pass the generator to `scheduler.step`); hfldm passes it, so that a
    generator alone fixes the images. For those the comparison seeds the global RNG and passes no generator
    (the same stream on both sides); for deterministic steps it passes a generator."""
    theirs = LDMSuperResolutionPipeline.from_pretrained(diffusers_folder)
    ours = LatentDiffusionSuperResolutionPipeline.from_pretrained(diffusers_folder)
    assert isinstance(ours.vae, VQModel) and ours.config.scale_latents is False
    for p in (theirs, ours):
        p.scheduler = SCHEDULERS[scheduler].from_config(theirs.scheduler.config)
        p.set_progress_bar_config(disable=True)
    stochastic = eta > 0 or scheduler == "ddpm"
    image = low_res_images(1, size=DIFFUSERS_LOW_RES)[0]
    tensor = torch.from_numpy(np.asarray(image) / 127.5 - 1).permute(2, 0, 1)[None].float()  # [-1, 1]
    differences = {}
    for name, low_res in (("PIL", image), ("tensor batch", torch.cat([tensor, -tensor]))):
        outputs = []
        for p in (theirs, ours):
            torch.manual_seed(0)
            generator = None if stochastic else torch.Generator().manual_seed(0)
            outputs.append(
                p(low_res, num_inference_steps=10, eta=eta, generator=generator, output_type="np").images
            )
        assert outputs[1].shape == (1 if name == "PIL" else 2, 64, 64, 3)  # f = 2
        differences[name] = float(np.abs(outputs[0] - outputs[1]).max())
    print(f"{scheduler}, eta={eta}: max |diffusers - hfldm| = {differences}")
    assert max(differences.values()) <= 1e-4
    if stochastic:  # hfldm's images depend on the generator only, not on the global RNG
        first = upscale(ours, image, steps=3, eta=eta)
        torch.manual_seed(123)
        np.testing.assert_allclose(upscale(ours, image, steps=3, eta=eta), first, atol=0)


# --- bad inputs ---------------------------------------------------------------------------------------------


def test_bad_inputs_raise_one_clear_value_error(tmp_path):
    deep = sr_pipeline(block_out_channels=(8, 8, 16))  # halves twice: low-res sides must be multiples of 4
    with pytest.raises(ValueError, match=r"image: 10x12 pixels .* multiples of 4 .* e\.g\. 8x12"):
        deep(low_res_images(1, size=10)[0].resize((12, 10)), num_inference_steps=1)
    cases = [
        ([], "image must be .* a non-empty list"),
        (torch.zeros(0, 3, 8, 8), "image: the batch is empty"),
        (
            np.zeros((8, 8, 5), np.float32),
            r"image: expected 1 \(grayscale\), 3 \(RGB\) or 4 \(RGBA\) channels",
        ),
        (
            low_res_images(1)[0:1] + low_res_images(1, size=4),
            "image: all images of a batch must have one size",
        ),
        ([torch.rand(3, 8, 8), torch.rand(3, 4, 4)], "image: all images of a batch must have one size"),
        ("low_res.png", "image must be a PIL image, numpy array or torch tensor"),
    ]
    pipe = sr_pipeline()
    for image, message in cases:
        with pytest.raises(ValueError, match=message):
            pipe(image, num_inference_steps=1)
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe(low_res_images(1)[0], num_inference_steps=0)
    # a U-Net without concat channels, given directly or in a model folder
    message = r"unet: a super-resolution U-Net needs in_channels = out_channels \+ 3 .* in_channels 4, out_ch"
    plain = sr_unet(in_channels=4)
    with pytest.raises(ValueError, match=message):
        LatentDiffusionSuperResolutionPipeline(vae=pipe.vae, unet=plain, scheduler=pipe.scheduler)
    pipe.save_pretrained(tmp_path)
    shutil.rmtree(tmp_path / "unet")
    plain.save_pretrained(tmp_path / "unet")
    with pytest.raises(ValueError, match=message):
        LatentDiffusionSuperResolutionPipeline.from_pretrained(tmp_path)
