"""The bundled super-resolution model (emoji 32 -> 64 px) loads as diffusers users load it, upscales its
held-out examples into images that agree with them at 32 px, ships the code of this source and runs without
hfldm installed."""

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

MODEL = Path(__file__).resolve().parents[2] / "models" / "hfldm-emoji-sr"
pytestmark = pytest.mark.skipif(not (MODEL / "model_index.json").is_file(), reason="no bundled SR model")


@pytest.fixture(scope="module")
def pipe():
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(MODEL), trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def examples() -> list[PIL.Image.Image]:
    return [PIL.Image.open(p).convert("RGB") for p in sorted((MODEL / "examples").glob("*.png"))]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


def test_loads_as_the_shipped_fp16_pipeline(pipe):
    assert type(pipe).__name__ == "LatentDiffusionSuperResolutionPipeline"
    assert {pipe.unet.dtype, pipe.vae.dtype} == {torch.float32}  # fp16 on disk, float32 on the CPU
    assert pipe.upscale_factor == 2 and pipe.config.condition_layout == "space_to_depth"
    assert sum(p.stat().st_size for p in MODEL.rglob("*") if p.is_file()) < 25 * 2**20
    assert len(examples()) == 8 and {im.size for im in examples()} == {(32, 32)}


def test_upscaled_examples_agree_with_their_low_resolution_input(pipe):
    low = examples()[:4]
    generators = [torch.Generator().manual_seed(i) for i in range(len(low))]
    high = pipe(low, num_inference_steps=10, generator=generators, output_type="pt").images
    assert high.shape == (4, 3, 64, 64)
    down = torch.nn.functional.interpolate(high.float(), size=32, mode="bicubic", antialias=True)
    y = np.stack([np.asarray(im, dtype=np.float32) / 255 for im in low]).transpose(0, 3, 1, 2)
    assert psnr(down.clamp(0, 1).numpy(), y) > 27  # downsampled again, it is the input (measured 29.8 dB)
    assert all(float(image.std()) > 0.05 for image in high)  # not blank


def test_the_folder_ships_the_code_save_pretrained_writes_from_this_source(tmp_path):
    from _shipped_code import assert_ships_current_code

    from hfldm import LatentDiffusionSuperResolutionPipeline

    assert_ships_current_code(LatentDiffusionSuperResolutionPipeline, MODEL, tmp_path)


def test_loads_and_upscales_without_hfldm(tmp_path):
    from _no_hfldm import load_without_hfldm

    from hfldm import LatentDiffusionSuperResolutionPipeline

    image = np.asarray(examples()[0], dtype=np.float32) / 255
    images, modules = load_without_hfldm([("sr", str(MODEL), 2, {"image": image.tolist()})], tmp_path)
    assert modules["loaded hfldm"] == []
    pipe = LatentDiffusionSuperResolutionPipeline.from_pretrained(MODEL)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(image, num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                    output_type="np").images  # fmt: skip
    assert np.abs(images["sr"] - expected).max() <= 1e-5  # float32 rounding across thread counts
