"""train_ldm.py --task inpaint (LDM §4.5): masks drawn per sample and seeded, the condition [E(x ⊙ (1 − m)),
m↓] beside z_t, --init_from a text pipeline widening its U-Net by zero-initialised channels, exact resume."""

from __future__ import annotations

import pytest
import torch
from _training_helpers import (
    RESOLUTION,
    flags,
    killed_and_resumed,
    ldm_args,
    max_difference,
    run_script,
    tiny_autoencoder,
)
from safetensors.torch import load_file

from hfldm.autoencoders.latent_space import latent_space
from hfldm.data.masks import held_out_masks, random_mask
from hfldm.training.inpaint import InpaintTask
from hfldm.unets.concat import with_condition_channels
from hfldm.unets.inpaint_condition import mask_to_latent_grid
from tests.training.test_train_from_pipeline import source_folders
from tests.training.test_train_superres import digit_pixels

PROMPT = "digit 3"


def test_masks_cover_the_stated_share_and_are_seeded():
    masks = [random_mask(torch.Generator().manual_seed(i), 32, 32, full_prob=0.1) for i in range(600)]
    coverage = torch.stack([m.mean() for m in masks])
    full = coverage == 1
    assert 0.06 < full.float().mean() < 0.14  # --full_mask_prob 0.1
    partial = coverage[~full]
    assert partial.min() >= 0.09 and partial.max() <= 0.65  # U(0.1, 0.6), to whole pixels / stroke widths
    assert all(((m == 0) | (m == 1)).all() for m in masks)
    rectangles = sum(int(_is_rectangle(m[0])) for m, f in zip(masks, full.tolist()) if not f)
    assert 0.35 < rectangles / int((~full).sum()) < 0.65  # rectangles and strokes at even odds
    again = random_mask(torch.Generator().manual_seed(7), 32, 32, full_prob=0.1)
    assert torch.equal(again, masks[7])
    held_out = held_out_masks(20, 32, 32)
    assert torch.equal(held_out, held_out_masks(20, 32, 32)) and (held_out.mean((1, 2, 3)) < 1).all()


def _is_rectangle(mask: torch.Tensor) -> bool:
    rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
    box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return bool(box.all())


def test_condition_is_the_masked_latent_and_the_mask_per_sample():
    vae = tiny_autoencoder().eval()  # f = 2, 2 latent channels
    task = InpaintTask(latent_space(vae), full_mask_prob=0.1, seed=0, process_index=0)
    unet_config = with_condition_channels(_tiny_text_unet(), task.condition_channels).config
    assert task.condition_channels == 2 + 1 and unet_config.in_channels == 2 + 3
    x = digit_pixels(4)
    z_t = torch.randn(4, 2, 8, 8)
    unet_input = task.unet_input(z_t, {"pixel_values": x}, micro_step=3, flip=None, unet_config=unet_config)
    assert unet_input.shape == (4, 5, 8, 8) and torch.equal(unet_input[:, :2], z_t)
    masks = task.masks(4, RESOLUTION, RESOLUTION, micro_step=3)
    ae = latent_space(vae)
    with torch.no_grad():
        masked = ae.scale_latents(ae.latents(x * (1 - masks)))
    torch.testing.assert_close(unet_input[:, 2:4], masked)
    torch.testing.assert_close(unet_input[:, 4:], mask_to_latent_grid(masks, 2))
    second = InpaintTask(latent_space(vae), 0.1, seed=0, process_index=1)  # global indices 2, 3
    torch.testing.assert_close(second.masks(2, RESOLUTION, RESOLUTION, 3), masks[2:], rtol=0, atol=0)
    assert not torch.equal(task.masks(4, RESOLUTION, RESOLUTION, micro_step=4), masks)


def _tiny_text_unet():
    from _ldm_fixtures import tiny_unet

    unet = tiny_unet()
    return type(unet).from_config({**unet.config, "in_channels": 2, "out_channels": 2})


def test_widening_keeps_the_text_models_predictions():
    from _ldm_fixtures import TEXT_DIM, tiny_unet

    unet = tiny_unet(cross_attention_dim=TEXT_DIM)
    widened = with_condition_channels(unet, 5)
    assert widened.config.in_channels == 9 and widened.conv_in.weight[:, 4:].abs().max() == 0
    z, condition, h = torch.randn(2, 4, 8, 8), torch.randn(2, 5, 8, 8), torch.randn(2, 3, TEXT_DIM)
    t = torch.tensor([3, 60])
    with torch.no_grad():
        before = unet(z, t, encoder_hidden_states=h).sample
        after = widened(torch.cat([z, condition], 1), t, encoder_hidden_states=h).sample
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_init_from_a_text_pipeline(digits, tmp_path):
    """2 steps at lr 1e-7 from a text pipeline: an inpainting pipeline comes out, its U-Net the text
    model's plus 4 + 1 input channels that started at zero."""
    source, out = source_folders(tmp_path)["hfldm"], tmp_path / "inpaint"
    run_script(
        "train_ldm.py",
        *flags(
            init_from=source,
            task="inpaint",
            train_data_dir=digits,
            resolution=RESOLUTION,
            max_train_steps=2,
            train_batch_size=4,
            learning_rate=1e-7,
            lr_warmup_steps=0,
            use_ema=False,
            validation_steps=0,
            report_to="none",
            output_dir=out,
        ),
    )
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(out, trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe).__name__ == "LatentDiffusionInpaintPipeline" and pipe.unet.config.in_channels == 9
    before = load_file(str(next((source / "unet").glob("*.safetensors"))))["conv_in.weight"]
    after = pipe.unet.conv_in.weight.detach()
    assert (after[:, :4] - before).abs().max() < 1e-4 and after[:, 4:].abs().max() < 1e-4
    mask = torch.zeros(1, 1, RESOLUTION, RESOLUTION)
    mask[..., 4:12, 4:12] = 1
    image = (digit_pixels(1) + 1) / 2
    result = pipe(PROMPT, image=image, mask_image=mask, num_inference_steps=3, output_type="pt").images
    assert torch.equal(result[mask.expand_as(result) == 0], image[mask.expand_as(image) == 0])
    card = (out / "README.md").read_text()
    assert "--task inpaint" in card and "mask_image=" in card and f"base_model: {source}" in card


def test_inpaint_flags_are_checked(digits, autoencoder, tmp_path):
    cases = [
        (("--task", "inpaint", "--cached_latents", str(tmp_path)), "--cached_latents: --task inpaint"),
        (("--task", "inpaint", "--full_mask_prob", "1.5"), "--full_mask_prob: must be in [0, 1]"),
    ]
    for extra, message in cases:
        result = run_script("train_ldm.py", *ldm_args(digits, autoencoder, tmp_path / "x", *extra), rc=2)
        assert message in result.stderr


@pytest.mark.slow
def test_inpaint_resume_after_sigkill_matches_the_uninterrupted_run(digits, autoencoder, tmp_path):
    """Kill -9 after the step-4 checkpoint, resume: the U-Net matches a run that never stopped, masks and
    flips drawn per sample, with gradient accumulation."""
    extra = flags(
        max_samples=64, train_batch_size=8, max_train_steps=12, checkpointing_steps=4, task="inpaint"
    )
    extra += flags(random_flip=True, gradient_accumulation_steps=2, full_mask_prob=0.2)
    ref, run = killed_and_resumed(lambda out: ldm_args(digits, autoencoder, out, *extra), tmp_path)
    for name in ("checkpoint-12/model.safetensors", "unet/diffusion_pytorch_model.safetensors"):
        assert max_difference(load_file(ref / name), load_file(run / name)) <= 1e-6
    import json

    assert json.loads((run / "model_index.json").read_text())["_class_name"][1] == (
        "LatentDiffusionInpaintPipeline"
    )


def test_an_inpainting_folder_fine_tunes_as_it_is(tmp_path):
    """--init_from an inpainting pipeline: it loads as one (not as the text pipeline asked for by default)
    and its U-Net is kept; a U-Net with another condition is refused naming the flag."""
    from _inpaint_fixtures import inpaint_pipeline

    from hfldm import LatentDiffusionInpaintPipeline
    from hfldm.pipelines.loading import load_pipeline

    inpaint_pipeline().save_pretrained(tmp_path / "inpaint")
    pipe = load_pipeline(str(tmp_path / "inpaint"))
    assert type(pipe) is LatentDiffusionInpaintPipeline
    task = InpaintTask(latent_space(pipe.vae), 0.1, seed=0, process_index=0)
    assert task.adapt_pretrained(pipe.unet) is pipe.unet
    with pytest.raises(ValueError, match="--init_from: its U-Net takes 3 condition channels"):
        task.adapt_pretrained(with_condition_channels(_tiny_text_unet(), 3))
