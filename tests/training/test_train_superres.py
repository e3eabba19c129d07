"""train_ldm.py --task superres on tiny digits (LDM §4.4): a trained SR model beats bicubic upsampling on its
training images, its folder loads with remote code, an SR run resumes exactly after SIGKILL, and y is made
per sample (space-to-depth, seeded degradations)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _training_helpers import (
    RESOLUTION,
    flags,
    killed_and_resumed,
    ldm_args,
    max_difference,
    run_script,
)
from safetensors.torch import load_file

from hfldm import KLAutoencoder
from hfldm.data.digits import load_digits_dataset
from hfldm.eval.reconstruction import psnr
from hfldm.training.superres import SuperResolutionTask, upscale


def digit_pixels(n: int) -> torch.Tensor:
    """The first n digits of the `digits` fixture, (n, 3, 16, 16) in [-1, 1]."""
    rows = load_digits_dataset(RESOLUTION, limit=n)
    arrays = [np.asarray(image, dtype=np.float32) for image in rows["image"]]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1


@pytest.fixture(scope="module")
def trained_autoencoder(tmp_path_factory):
    """An f = 4 KL autoencoder fitted (L1 via posterior samples, 300 Adam steps) to the 96 training digits,
    PSNR above bicubic 2× upsampling's 26.5 dB there, so the SR model has room to beat bicubic."""
    torch.manual_seed(0)
    ae = KLAutoencoder(
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        latent_channels=8,
        norm_num_groups=8,
        sample_size=16,
    )
    x = digit_pixels(96)
    optimizer = torch.optim.Adam(ae.parameters(), 2e-3)
    for _ in range(300):
        batch = x[torch.randint(0, len(x), (32,))]
        z = ae.encode(batch).latent_dist.sample()  # z ~ q(z|x), as train_ldm.py draws it: σ learns to shrink
        loss = (ae.decode(z).sample - batch).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    folder = tmp_path_factory.mktemp("sr-autoencoder")
    ae.save_pretrained(folder)
    return folder


def sr_args(digits, autoencoder, out, *extra: str) -> list[str]:
    return ldm_args(digits, autoencoder, out, "--task", "superres", "--cond_drop_prob", "0", *extra)


@pytest.mark.slow
def test_trained_sr_model_beats_bicubic_on_its_training_images(digits, trained_autoencoder, tmp_path):
    """8 px -> 16 px (s = 2) with an f = 4 autoencoder: y is folded to 12 × 4 × 4 (r = 2)."""
    out = tmp_path / "sr"
    extra = flags(max_train_steps=400, train_batch_size=16, learning_rate="2e-3", sr_factor=2)
    extra += flags(prediction_type="v_prediction", ema_decay=0.99, checkpointing_steps=1000)
    run_script("train_ldm.py", *sr_args(digits, trained_autoencoder, out, *extra))

    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(out, trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe).__name__ == "LatentDiffusionSuperResolutionPipeline"
    assert pipe.config.scale_latents is True and pipe.config.condition_layout == "space_to_depth"
    assert pipe.unet.config.in_channels == 8 + 12  # z_t's 8 + y's 3·r², r = f / s = 2
    x = digit_pixels(96)[:32]
    _, bicubic, sr = upscale(pipe, x, 2, seed=0, num_inference_steps=25)
    assert sr.shape == x.shape
    psnr_sr, psnr_bicubic = psnr(sr, x, value_range=(-1, 1)), psnr(bicubic, x, value_range=(-1, 1))
    print(f"PSNR on 32 training digits: SR {psnr_sr:.2f} dB, bicubic {psnr_bicubic:.2f} dB")
    assert psnr_bicubic == pytest.approx(26.25, abs=0.05)  # deterministic: the data and bicubic only
    assert psnr_sr > psnr_bicubic + 1.0  # measured: SR 28.78 dB, bicubic 26.25 dB
    card = (out / "README.md").read_text()  # the training card: samples, command, final validation PSNRs
    assert (
        "# Super-resolution latent diffusion" in card and "| psnr_sr |" in card and "| psnr_bicubic |" in card
    )
    assert (out / "samples.png").is_file() and "--task superres" in card


@pytest.mark.slow
def test_sr_resume_after_sigkill_matches_the_uninterrupted_run(digits, autoencoder, tmp_path):
    """Kill -9 after the step-4 checkpoint, resume: the U-Net matches a run that never stopped, with noise and
    blur degradations and flips drawn per sample. The fixture autoencoder has f = 2: 2× SR, r = 1."""
    extra = flags(max_samples=64, train_batch_size=8, max_train_steps=12, checkpointing_steps=4)
    extra += flags(sr_noise_std=0.1, sr_blur_sigma=1.0, random_flip=True, gradient_accumulation_steps=2)
    ref, run = killed_and_resumed(lambda out: sr_args(digits, autoencoder, out, *extra), tmp_path)
    for name in ("checkpoint-12/model.safetensors", "unet/diffusion_pytorch_model.safetensors"):
        assert max_difference(load_file(ref / name), load_file(run / name)) <= 1e-6


@pytest.mark.slow
def test_sr_with_augmentation_crops_and_the_mix_resumes_exactly(digits, autoencoder, tmp_path):
    """#30's recipe (scale, shift, 8 px crops of the 16 px digits, kernels and JPEG drawn per sample) resumes
    after SIGKILL to the weights of the run that never stopped: every draw comes from (seed, step, index)."""
    extra = flags(max_samples=64, train_batch_size=8, max_train_steps=8, checkpointing_steps=4)
    extra += flags(sr_noise_std=0.1, sr_blur_sigma=1.0, sr_degradation_mix="true", random_flip=True)
    extra += flags(augment_scale_min=0.7, augment_scale_max=1.15, augment_shift=2, crop_size=8)
    ref, run = killed_and_resumed(lambda out: sr_args(digits, autoencoder, out, *extra), tmp_path)
    for name in ("checkpoint-8/model.safetensors", "unet/diffusion_pytorch_model.safetensors"):
        assert max_difference(load_file(ref / name), load_file(run / name)) <= 1e-6


def test_degradations_are_per_sample_and_seeded():
    """y of sample i depends on (seed, step, i) only; the space-to-depth keeps every low-res pixel."""
    task = SuperResolutionTask(2, 4, noise_std=0.2, blur_sigma=1.5, seed=0, process_index=0)
    x = digit_pixels(4)
    whole = task.low_res({"pixel_values": x}, micro_step=3, flip=None)
    assert whole.shape == (4, 3, 8, 8)
    second_process = SuperResolutionTask(2, 4, 0.2, 1.5, seed=0, process_index=1)
    half = second_process.low_res({"pixel_values": x[2:]}, micro_step=3, flip=None)
    torch.testing.assert_close(half, whole[2:], rtol=0, atol=0)  # global index 2, 3 on process 1
    assert not torch.equal(task.low_res({"pixel_values": x}, micro_step=4, flip=None), whole)
    clean = SuperResolutionTask(2, 4, 0.0, 0.0, seed=0, process_index=0).low_res({"pixel_values": x}, 0, None)
    assert (clean - whole).abs().mean() > 0.01  # the augmentations act
    from hfldm.unets.condition_layout import to_latent_grid

    folded = to_latent_grid(clean, task.space_to_depth)
    assert folded.shape == (4, 12, 4, 4) and task.condition_channels == 12
    torch.testing.assert_close(torch.nn.functional.pixel_shuffle(folded, 2), clean, rtol=0, atol=0)


def test_space_to_depth_pipeline_upscales_by_f_over_r():
    """A pipeline with condition_layout space_to_depth (f = 4, r = 2) turns 8 px into 16 px; the sizes it
    takes are multiples of r × 2^(levels − 1), said in one line."""
    from diffusers import DDIMScheduler

    from hfldm import ConditionalUNet, LatentDiffusionSuperResolutionPipeline

    vae = KLAutoencoder(
        block_out_channels=(8, 8, 8), layers_per_block=1, latent_channels=4, norm_num_groups=4
    )
    unet = ConditionalUNet(
        in_channels=16,
        out_channels=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        attention_levels=False,
        num_attention_heads=2,
        norm_num_groups=4,
    )
    scheduler = DDIMScheduler(num_train_timesteps=100, clip_sample=False)
    pipe = LatentDiffusionSuperResolutionPipeline(vae, unet, scheduler, True, "space_to_depth")
    pipe.set_progress_bar_config(disable=True)
    out = pipe(torch.rand(2, 3, 8, 8), num_inference_steps=2, output_type="np").images
    assert out.shape == (2, 16, 16, 3) and pipe.size_multiple == 4
    with pytest.raises(ValueError, match="image: 6x6 pixels .* multiples of 4"):
        pipe(torch.rand(1, 3, 6, 6), num_inference_steps=2)
    with pytest.raises(ValueError, match=r"unet: .* in_channels = out_channels \+ 3 "):
        LatentDiffusionSuperResolutionPipeline(vae, unet, scheduler, True)  # "resize" takes 3 channels
    with pytest.raises(ValueError, match="condition_layout: expected one of"):
        LatentDiffusionSuperResolutionPipeline(vae, unet, scheduler, True, "bilinear")
