"""`hfldm inpaint`: the pipeline's images, seeded per image, the kept pixels the input's; one-line errors
naming the flag."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from _inpaint_fixtures import box_mask, images, inpaint_pipeline

from hfldm import LatentDiffusionInpaintPipeline
from hfldm.cli import main as hfldm_main

FP32 = ["--dtype", "float32"]  # as the pipeline it is compared with: --dtype auto is bf16 on bf16 CPUs


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inpaint-cli")
    inpaint_pipeline().save_pretrained(root / "model")
    images(1)[0].save(root / "image.png")
    box_mask().save(root / "mask.png")
    return root


def test_inpaint_writes_the_pipeline_images(files, tmp_path):
    out = tmp_path / "out.png"
    argv = [
        "inpaint",
        "--model",
        str(files / "model"),
        "--image",
        str(files / "image.png"),
        "--mask",
        str(files / "mask.png"),
        "--prompt",
        "cat face",
        "--steps",
        "3",
        "--seed",
        "5",
        "--num-images",
        "2",
        "--out",
        str(out),
        *FP32,
    ]
    assert hfldm_main(argv) == 0
    pipe = LatentDiffusionInpaintPipeline.from_pretrained(files / "model")
    pipe.set_progress_bar_config(disable=True)
    image, mask = PIL.Image.open(files / "image.png"), PIL.Image.open(files / "mask.png")
    generators = [torch.Generator().manual_seed(s) for s in (5, 6)]
    expected = pipe(
        "cat face",
        image=image,
        mask_image=mask,
        num_inference_steps=3,
        num_images_per_prompt=2,
        generator=generators,
    ).images
    grid = np.asarray(PIL.Image.open(out).convert("RGB"))
    np.testing.assert_array_equal(grid, np.concatenate([np.asarray(e) for e in expected], axis=1))
    keep = np.asarray(mask) == 0
    assert (grid[:, :16][keep] == np.asarray(image)[keep]).all()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--image", "{tmp}/nothing.png"], "--image not found"),
        (["--mask", "{tmp}/nothing.png"], "--mask not found"),
        (["--model", "{tmp}/no-model"], "--model: model folder not found"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--image", "{odd}", "--mask", "{odd}"], "is 15x15; this model needs sides"),
        (["--mask", "{text}"], "--mask: "),
    ],
)
def test_bad_inputs_give_one_line_errors(files, tmp_path, capsys, argv, message):
    odd, text = tmp_path / "odd.png", tmp_path / "mask.txt"
    PIL.Image.new("RGB", (15, 15)).save(odd)
    text.write_text("not an image")
    names = {"tmp": tmp_path, "odd": odd, "text": text}
    base = {
        "--model": str(files / "model"),
        "--image": str(files / "image.png"),
        "--mask": str(files / "mask.png"),
    }
    given = dict(zip(argv[::2], (a.format(**names) for a in argv[1::2])))
    flags = [item for flag, value in {**base, **given}.items() for item in (flag, value)]
    assert hfldm_main(["inpaint", *flags, "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o.png").exists()
