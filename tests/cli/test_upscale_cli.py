"""`hfldm upscale` and the cascade `hfldm generate --upscale`: images equal to the pipelines' own, seeded per
image; one-line errors naming the flag."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from _ldm_fixtures import IMAGE_SIZE, sample, text_pipeline
from _superres_fixtures import low_res_images, sr_pipeline

from hfldm import LatentDiffusionPipeline, LatentDiffusionSuperResolutionPipeline
from hfldm.cli import main as hfldm_main

FP32 = ["--dtype", "float32"]  # as the pipeline it is compared with: --dtype auto is bf16 on bf16 CPUs


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cascade")
    sr_pipeline().save_pretrained(root / "sr")
    text_pipeline().save_pretrained(root / "text")
    return root / "text", root / "sr"


def _png(path) -> np.ndarray:
    return np.asarray(PIL.Image.open(path).convert("RGB"))


def _upscaled(sr_folder, images, seeds) -> list[np.ndarray]:
    pipe = LatentDiffusionSuperResolutionPipeline.from_pretrained(sr_folder)
    pipe.set_progress_bar_config(disable=True)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    return [np.asarray(im) for im in pipe(images, num_inference_steps=3, generator=generators).images]


def test_upscale_writes_the_pipeline_images(folders, tmp_path):
    _, sr = folders
    paths = []
    for i, image in enumerate(low_res_images(2, size=16)):
        paths += ["--image", str(tmp_path / f"in{i}.png")]
        image.save(paths[-1])
    out = tmp_path / "up.png"
    argv = ["upscale", "--model", str(sr), *paths, "--steps", "3", "--seed", "5", "--out", str(out), *FP32]
    assert hfldm_main(argv) == 0
    inputs = [PIL.Image.open(p).convert("RGB") for p in paths[1::2]]
    expected = _upscaled(sr, inputs, seeds=[5, 6])  # image i with seed --seed + i
    assert expected[0].shape == (32, 32, 3)
    np.testing.assert_array_equal(_png(out), np.concatenate(expected, axis=1))  # 1 row x 2 columns


def test_generate_upscale_is_the_cascade(folders, tmp_path):
    text, sr = folders
    out = tmp_path / "cascade.png"
    argv = ["generate", "--model", str(text), "--prompt", "cat face", "--steps", "4", "--num-images", "2"]
    assert hfldm_main([*argv, "--upscale", str(sr), "--upscale-steps", "3", "--out", str(out), *FP32]) == 0
    pipe = LatentDiffusionPipeline.from_pretrained(text)
    pipe.set_progress_bar_config(disable=True)
    small = sample(pipe, prompt="cat face", num_images_per_prompt=2, output_type="pil")
    expected = _upscaled(sr, small, seeds=[0, 1])
    assert _png(out).shape == (2 * IMAGE_SIZE, 2 * 2 * IMAGE_SIZE, 3)
    np.testing.assert_array_equal(_png(out), np.concatenate(expected, axis=1))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["upscale", "--model", "{sr}", "--image", "{tmp}/nothing.png"], "--image not found"),
        (["upscale", "--model", "{tmp}/no-model", "--image", "{odd}"], "--model: model folder not found"),
        (["upscale", "--model", "{sr}", "--image", "{odd}", "--steps", "0"], "--steps must be at least 1"),
        (["upscale", "--model", "{sr}", "--image", "{odd}"], "is 15x15; this model needs sides"),
        (
            ["generate", "--model", "{text}", "--upscale", "{tmp}/no-model"],
            "--upscale: model folder not found",
        ),
        (["generate", "--model", "{text}", "--upscale", "--upscale-steps", "0"], "--upscale-steps must be"),
        (
            ["upscale", "--model", "{sr}", "--image", "{odd}", "--dtype", "float16"],
            "--dtype: float16 needs a GPU",
        ),
        (
            ["generate", "--model", "{text}", "--dtype", "float16", "--device", "cpu"],
            "--dtype: float16 needs",
        ),
    ],
)
def test_bad_inputs_give_one_line_errors(folders, tmp_path, capsys, argv, message):
    text, sr = folders
    odd = tmp_path / "odd.png"
    PIL.Image.new("RGB", (15, 15)).save(odd)
    names = {"sr": sr, "text": text, "tmp": tmp_path, "odd": odd}
    argv = [a.format(**names) for a in argv]
    assert hfldm_main([*argv, "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o.png").exists()
