"""LatentDiffusionInpaintPipeline (LDM §4.5): the channel layout, paste-back, the extreme masks, the mask's
conventions and its latent grid, bad input, scheduler swap and loading in a fresh process."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from _inpaint_fixtures import box_mask, images, inpaint_pipeline
from _ldm_fixtures import IMAGE_SIZE, text_pipeline
from _training_helpers import ENV, ROOT
from diffusers import DPMSolverMultistepScheduler

from hfldm import LatentDiffusionInpaintPipeline
from hfldm.unets.inpaint_condition import mask_to_latent_grid

PROMPT = "cat face"


def inpaint(pipe, image, mask, seed=0, steps=4, **kwargs) -> np.ndarray:
    kwargs.setdefault("output_type", "np")
    generator = torch.Generator().manual_seed(seed)
    return pipe(
        PROMPT, image=image, mask_image=mask, num_inference_steps=steps, generator=generator, **kwargs
    ).images


def test_channel_layout_and_mismatch_error():
    pipe = inpaint_pipeline()
    assert pipe.unet.config.in_channels == 4 + 4 + 1 and pipe.unet.config.out_channels == 4
    x = pipe.image_processor.preprocess(images(2))
    mask = torch.zeros(2, 1, IMAGE_SIZE, IMAGE_SIZE)
    mask[:, :, :8] = 1  # the top half
    condition = pipe.encode_masked_image(x, mask)
    assert condition.shape == (2, 4 + 1, 8, 8)
    masked = pipe.latent_space.scale_latents(pipe.latent_space.latents(x * (1 - mask)))
    torch.testing.assert_close(condition[:, :4], masked)  # E(x ⊙ (1 − m))·scale first, then m↓
    torch.testing.assert_close(condition[:, 4:], mask[:, :, ::2, ::2])
    text = text_pipeline()
    with pytest.raises(ValueError, match=r"unet: an inpainting U-Net needs in_channels = 9 .* in_channels 4"):
        LatentDiffusionInpaintPipeline(text.vae, text.unet, text.scheduler, text.text_encoder, text.tokenizer)


def test_mask_reaches_the_latent_grid_as_the_masked_share_of_each_cell():
    mask = torch.zeros(1, 1, 8, 8)
    mask[0, 0, 0:2, 0:2] = 1  # cell (0, 0) whole
    mask[0, 0, 2, 2:4] = 1  # cell (1, 1): its top row, half of it
    mask[0, 0, 7, 7] = 1  # cell (3, 3): one pixel of four
    expected = torch.zeros(1, 1, 4, 4)
    expected[0, 0, 0, 0], expected[0, 0, 1, 1], expected[0, 0, 3, 3] = 1.0, 0.5, 0.25
    torch.testing.assert_close(mask_to_latent_grid(mask, 2), expected)
    with pytest.raises(ValueError, match="mask: 8x7 is not a multiple of the autoencoder's f = 2"):
        mask_to_latent_grid(mask[..., :7], 2)


def test_paste_back_keeps_every_pixel_outside_the_mask():
    pipe = inpaint_pipeline()
    image, mask = images(1)[0], box_mask()
    out = pipe(PROMPT, image=image, mask_image=mask, num_inference_steps=4, generator=torch.manual_seed(0))
    result, source, keep = np.asarray(out.images[0]), np.asarray(image), np.asarray(mask) == 0
    assert result.shape == source.shape
    assert (result[keep] == source[keep]).all()  # exactly, as uint8 pixels
    assert np.abs(result[~keep].astype(int) - source[~keep]).mean() > 5  # the masked square was repainted
    unpasted = inpaint(pipe, image, mask, paste_back=False)[0]
    assert np.abs(unpasted[keep] * 255 - source[keep]).max() > 1  # D(z_0) alone does not reproduce x


def test_all_black_mask_returns_the_input():
    pipe = inpaint_pipeline()
    image = images(1)[0]
    black = PIL.Image.new("L", image.size, 0)
    out = pipe(PROMPT, image=image, mask_image=black, num_inference_steps=3, generator=torch.manual_seed(0))
    assert (np.asarray(out.images[0]) == np.asarray(image)).all()


def test_all_white_mask_is_text_to_image():
    """The condition is then E(grey)·scale and m↓ = 1 whatever the image: the output does not depend on it,
    and a U-Net widened by zero weights gives exactly the text model's image."""
    white = PIL.Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 255)
    pipe = inpaint_pipeline()
    first, second = (inpaint(pipe, image, white) for image in images(2))
    np.testing.assert_array_equal(first, second)
    text = text_pipeline()
    widened = inpaint_pipeline(zero_init=True, text=text)
    expected = text(PROMPT, num_inference_steps=4, generator=torch.manual_seed(0), output_type="np").images
    np.testing.assert_allclose(inpaint(widened, images(1)[0], white), expected, atol=1e-5)


def test_mask_formats_agree_and_are_resized_to_the_image():
    pipe = inpaint_pipeline()
    mask = box_mask()
    array = np.asarray(mask)
    formats = {
        "PIL L": mask,
        "PIL RGB": mask.convert("RGB"),
        "PIL RGBA": mask.convert("RGBA"),
        "uint8 (H, W)": array,
        "float (H, W, 1)": array[..., None] / 255.0,
        "tensor (1, H, W)": torch.from_numpy(array[None] / 255.0),
        "tensor (B, 3, H, W)": torch.from_numpy(array / 255.0).expand(1, 3, -1, -1),
        "half size": mask.resize((IMAGE_SIZE // 2, IMAGE_SIZE // 2), PIL.Image.NEAREST),
    }
    expected = torch.from_numpy(array[None, None] / 255.0).float()
    for name, m in formats.items():
        prepared = pipe.prepare_mask(m, 1, IMAGE_SIZE, IMAGE_SIZE).cpu()
        assert torch.equal(prepared, expected), name


def test_bad_input_is_named():
    pipe = inpaint_pipeline()
    image, mask = images(1)[0], box_mask()
    cases = [
        (dict(image=image, mask_image=np.zeros((16, 16, 2))), "mask_image: expected a single-channel mask"),
        (dict(image=image, mask_image="mask.png"), "mask_image.* PIL image"),
        (dict(image=images(1, size=18)[0], mask_image=mask), "image: 18x18 pixels .* multiples of 4"),
        (dict(image=None, mask_image=mask), "image: required"),
        (dict(image=image, mask_image=None), "mask_image: required"),
        (dict(image=images(2), mask_image=[mask] * 3), "mask_image: 3 masks for 2 images"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            pipe(PROMPT, num_inference_steps=2, **kwargs)
    unconditional = LatentDiffusionInpaintPipeline(pipe.vae, pipe.unet, pipe.scheduler)
    with pytest.raises(ValueError, match="prompt was given, but this pipeline has no text encoder"):
        unconditional("cat", image=image, mask_image=mask, num_inference_steps=2)


def test_batches_guidance_and_scheduler_swap():
    pipe = inpaint_pipeline()
    mask = box_mask()
    batch = images(2)
    out = pipe(
        [PROMPT, "red apple"],
        image=batch,
        mask_image=mask,
        num_images_per_prompt=2,
        num_inference_steps=3,
        generator=torch.manual_seed(0),
        output_type="np",
    ).images
    assert out.shape == (4, IMAGE_SIZE, IMAGE_SIZE, 3)
    keep = np.asarray(mask) == 0
    for i in range(4):  # images 0, 1 come from batch[0], 2, 3 from batch[1]
        np.testing.assert_allclose(out[i][keep], np.asarray(batch[i // 2])[keep] / 255, atol=1e-6)
    guided, unguided = (inpaint(pipe, batch[0], mask, guidance_scale=w) for w in (3.0, 1.0))
    assert np.abs(guided - unguided).max() > 1e-3
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    swapped = inpaint(pipe, batch[0], mask)
    assert swapped.shape == guided.shape and np.abs(swapped - guided).max() > 1e-4
    np.testing.assert_allclose(swapped[0][keep], np.asarray(batch[0])[keep] / 255, atol=1e-6)


FRESH_LOADER = """
import sys, numpy as np, torch, PIL.Image
from diffusers import DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True)
pipe.set_progress_bar_config(disable=True)
image, mask = PIL.Image.open(sys.argv[2]), PIL.Image.open(sys.argv[3])
out = pipe("cat face", image=image, mask_image=mask, num_inference_steps=4, generator=torch.manual_seed(0),
           output_type="np").images
np.save(sys.argv[4], out)
print(type(pipe).__name__)
"""


def test_loads_in_a_fresh_process_with_remote_code(tmp_path):
    pipe = inpaint_pipeline()
    pipe.save_pretrained(tmp_path / "model")
    image, mask = images(1)[0], box_mask()
    image.save(tmp_path / "image.png")
    mask.save(tmp_path / "mask.png")
    expected = inpaint(pipe, image, mask)
    args = [tmp_path / "model", tmp_path / "image.png", tmp_path / "mask.png", tmp_path / "out.npy"]
    result = subprocess.run(
        [sys.executable, "-c", FRESH_LOADER, *map(str, args)],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("LatentDiffusionInpaintPipeline")
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)
    card = (tmp_path / "model" / "README.md").read_text()
    assert "pipeline_tag: image-to-image" in card and "mask_image=" in card
    assert ROOT.is_dir()
