"""The bundled inpainting model (text-guided, emoji at 32 px) loads as diffusers users load it, repaints a
held-out example's hole with something close to the real emoji while keeping every other pixel, ships the
code of this source and runs without hfldm installed."""

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

MODEL = Path(__file__).resolve().parents[2] / "models" / "hfldm-emoji-inpaint"
pytestmark = pytest.mark.skipif(not (MODEL / "model_index.json").is_file(), reason="no bundled inpaint model")


@pytest.fixture(scope="module")
def pipe():
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(MODEL), trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def examples() -> list[tuple[PIL.Image.Image, str]]:
    """(image, caption) of the shipped held-out examples: examples/<index>-<caption>.png."""
    paths = sorted((MODEL / "examples").glob("*.png"))
    captions = (MODEL / "example_captions.txt").read_text().splitlines()
    return [(PIL.Image.open(p).convert("RGB"), captions[i]) for i, p in enumerate(paths)]


def box(side: int = 32, top: int = 8, left: int = 8, size: int = 16) -> np.ndarray:
    mask = np.zeros((side, side), np.float32)
    mask[top : top + size, left : left + size] = 1
    return mask


def test_loads_as_the_shipped_fp16_pipeline(pipe):
    assert type(pipe).__name__ == "LatentDiffusionInpaintPipeline"
    assert {pipe.unet.dtype, pipe.vae.dtype, pipe.text_encoder.dtype} == {torch.float32}  # fp16 on disk
    assert pipe.unet.config.in_channels == 4 + 4 + 1 and pipe.default_image_size() == (32, 32)
    assert sum(p.stat().st_size for p in MODEL.rglob("*") if p.is_file()) <= 25 * 2**20  # the budget
    text_model = MODEL.parent / "hfldm-emoji"  # its autoencoder and τ_θ, byte for byte (git stores them once)
    for shared in ("vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert (MODEL / shared).read_bytes() == (text_model / shared).read_bytes()
    assert len(examples()) == 8 and {im.size for im, _ in examples()} == {(32, 32)}


def test_repaints_the_hole_of_held_out_examples(pipe):
    """The centre 16 × 16 of four held-out emoji, repainted with their captions at w = 1: every kept pixel is
    the input's, and inside the hole the result is nearer the real emoji than a mid-grey fill is (the centre
    holds the whole face: eyes and mouth are invented, not recovered). Guidance trades pixel fidelity for the
    caption, most in large holes (w = 3: 0.139 here; the card's guidance note)."""
    images, captions = zip(*examples()[:4])
    mask = box()
    generators = [torch.Generator().manual_seed(i) for i in range(4)]
    out = pipe(list(captions), image=list(images), mask_image=mask, num_inference_steps=20,
               guidance_scale=1.0, generator=generators, output_type="np").images  # fmt: skip
    real = np.stack([np.asarray(im, dtype=np.float32) / 255 for im in images])
    hole = mask.astype(bool)
    assert np.abs(out[:, ~hole] - real[:, ~hole]).max() < 1e-6  # pasted back
    error = np.mean((out[:, hole] - real[:, hole]) ** 2)
    grey = np.mean((0.5 - real[:, hole]) ** 2)
    print(f"MSE in the hole: inpainted {error:.4f}, grey {grey:.4f}")
    assert error < 0.85 * grey  # measured: 0.108 against 0.141


def test_the_folder_ships_the_code_save_pretrained_writes_from_this_source(tmp_path):
    from _shipped_code import assert_ships_current_code

    from hfldm import LatentDiffusionInpaintPipeline

    assert_ships_current_code(LatentDiffusionInpaintPipeline, MODEL, tmp_path)


def test_loads_and_inpaints_without_hfldm(tmp_path):
    from _no_hfldm import load_without_hfldm

    from hfldm import LatentDiffusionInpaintPipeline

    image, caption = examples()[0]
    x = np.asarray(image, dtype=np.float32) / 255
    kwargs = {"prompt": caption, "image": x.tolist(), "mask_image": box().tolist()}
    images, modules = load_without_hfldm([("inpaint", str(MODEL), 2, kwargs)], tmp_path)
    assert modules["loaded hfldm"] == []
    pipe = LatentDiffusionInpaintPipeline.from_pretrained(MODEL)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(caption, image=x, mask_image=box(), num_inference_steps=2,
                    generator=torch.Generator().manual_seed(0), output_type="np").images  # fmt: skip
    assert np.abs(images["inpaint"] - expected).max() <= 1e-5
