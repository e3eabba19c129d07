"""The bundled text-to-emoji model loads as diffusers users load it and draws prompt-dependent images."""

from pathlib import Path

import numpy as np
import pytest
import torch

MODEL = Path(__file__).resolve().parents[2] / "models" / "hfldm-emoji"
pytestmark = pytest.mark.skipif(not (MODEL / "model_index.json").is_file(), reason="no bundled model")


@pytest.fixture(scope="module")
def pipe():
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(MODEL), trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, prompts, seed=0):
    from hfldm.schedulers.ddim import DDIMScheduler

    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    return pipe(
        prompt=prompts,
        num_inference_steps=10,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    ).images


def test_loads_as_the_shipped_fp16_pipeline(pipe):
    assert type(pipe).__name__ == "LatentDiffusionPipeline"
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):  # fp16 on disk, loaded in float32 for the CPU
        assert module.dtype == torch.float32, type(module).__name__
    size = sum(p.stat().st_size for p in MODEL.rglob("*") if p.is_file())
    assert size < 50 * 2**20
    assert (MODEL / "example_captions.txt").read_text().strip()


def test_images_are_not_blank_and_follow_the_prompt(pipe):
    images = generate(pipe, ["red apple", "blue heart", "grinning face"])
    assert images.shape == (3, 32, 32, 3)
    for image in images:
        assert image.std() > 0.05  # structure, not a flat colour
        assert image.mean() < 0.97  # not an empty white canvas
    # the same seed for every prompt: differences come from the text alone
    assert np.abs(images[0] - images[1]).mean() > 0.02
    assert np.abs(images[0] - images[2]).mean() > 0.02


def test_same_seed_same_image(pipe):
    a = generate(pipe, ["rocket"], seed=3)
    b = generate(pipe, ["rocket"], seed=3)
    np.testing.assert_array_equal(a, b)


def test_the_folder_ships_the_code_save_pretrained_writes_from_this_source(tmp_path):
    """The folder's code (what trust_remote_code runs: the entry files and the copies of hfldm's source)
    and its model_index.json entries are what save_pretrained writes today, file for file."""
    from _shipped_code import assert_ships_current_code

    from hfldm import LatentDiffusionPipeline

    assert_ships_current_code(LatentDiffusionPipeline, MODEL, tmp_path)


def test_loads_and_generates_without_hfldm(tmp_path):
    """trust_remote_code=True where hfldm cannot be imported: the same images as hfldm's own pipeline."""
    from _no_hfldm import load_without_hfldm

    from hfldm import LatentDiffusionPipeline

    images, modules = load_without_hfldm([("emoji", str(MODEL), 2, {"prompt": ["red apple"]})], tmp_path)
    assert modules["loaded hfldm"] == [] and modules["emoji"][1] == "diffusers_modules.local.hfldm_unets_unet"
    pipe = LatentDiffusionPipeline.from_pretrained(MODEL)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(prompt=["red apple"], num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                    output_type="np").images  # fmt: skip
    assert np.abs(images["emoji"] - expected).max() <= 1e-6
