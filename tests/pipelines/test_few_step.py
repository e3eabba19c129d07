"""Few-step sampling through the pipeline with diffusers' LCMScheduler (pipelines/few_step.py): a student
that embeds w runs one U-Net row per image and takes w as an input; LCMScheduler on an undistilled model is
refused in one line, in the API and in `hfldm generate --scheduler lcm`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _ldm_fixtures import class_pipeline, sample
from diffusers import LCMScheduler
from PIL import Image

from hfldm import LatentDiffusionPipeline
from hfldm.cli import main as hfldm_main
from hfldm.training.consistency import student_from_teacher


def student_pipeline() -> LatentDiffusionPipeline:
    """The tiny class model's U-Net with a w-embedding (trained-looking: non-zero), with LCMScheduler."""
    teacher = class_pipeline()
    unet = student_from_teacher(teacher.unet, time_cond_proj_dim=16)
    torch.nn.init.normal_(
        unet.time_embedding.cond_proj.weight, std=0.2, generator=torch.Generator().manual_seed(0)
    )
    pipe = LatentDiffusionPipeline(
        vae=teacher.vae,
        unet=unet.eval(),
        scheduler=LCMScheduler.from_config(teacher.scheduler.config),
        id2label=teacher.config.id2label,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def unet_rows(pipe, **kwargs) -> list[int]:
    """The batch size of every U-Net call of one pipeline call."""
    rows = []
    handle = pipe.unet.register_forward_hook(lambda module, args, out: rows.append(len(args[0])))
    try:
        sample(pipe, **kwargs)
    finally:
        handle.remove()
    return rows


def test_a_student_runs_one_row_per_image_and_takes_w_as_input():
    pipe = student_pipeline()
    assert unet_rows(pipe, class_labels=[0, 1], steps=4, guidance_scale=3.0) == [2] * 4  # not 2 × 2 rows
    teacher = class_pipeline()
    assert unet_rows(teacher, class_labels=[0, 1], steps=4, guidance_scale=3.0) == [4] * 4  # CFG: doubled
    at_3 = sample(pipe, class_labels=[0, 1], steps=4, guidance_scale=3.0)
    at_6 = sample(pipe, class_labels=[0, 1], steps=4, guidance_scale=6.0)
    assert torch.isfinite(torch.as_tensor(at_3)).all() and abs(at_3 - at_6).max() > 1e-3
    assert (sample(pipe, class_labels=[0, 1], steps=4, guidance_scale=3.0) == at_3).all()  # seeded


def test_lcm_scheduler_on_an_undistilled_model_is_refused_in_one_line():
    teacher = class_pipeline()
    teacher.scheduler = LCMScheduler.from_config(teacher.scheduler.config)
    with pytest.raises(
        ValueError, match="^scheduler: LCMScheduler samples a consistency-distilled model"
    ) as e:
        sample(teacher, class_labels=[0], steps=4)
    assert "\n" not in str(e.value)


def test_a_saved_student_reloads_with_its_scheduler(tmp_path):
    pipe = student_pipeline()
    pipe.save_pretrained(tmp_path)
    again = LatentDiffusionPipeline.from_pretrained(tmp_path)
    again.set_progress_bar_config(disable=True)
    assert isinstance(again.scheduler, LCMScheduler) and again.unet.config.time_cond_proj_dim == 16
    a, b = (sample(p, class_labels=[2], steps=2) for p in (pipe, again))
    assert abs(a - b).max() < 1e-5


def test_generate_scheduler_lcm_samples_a_student_and_refuses_a_teacher(tmp_path, capsys):
    student_pipeline().save_pretrained(tmp_path / "student")
    class_pipeline().save_pretrained(tmp_path / "teacher")
    out = tmp_path / "four.png"
    common = ["--class-label", "0", "--dtype", "float32", "--steps", "4", "--scheduler", "lcm"]
    assert hfldm_main(["generate", "--model", str(tmp_path / "student"), *common, "--out", str(out)]) == 0
    assert Image.open(out).size[0] > 0
    capsys.readouterr()
    bad = tmp_path / "bad.png"
    assert hfldm_main(["generate", "--model", str(tmp_path / "teacher"), *common, "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "LCMScheduler samples a consistency-distilled model" in err[0], err
    assert not bad.exists()


def test_a_saved_student_samples_with_diffusers_alone(tmp_path):
    """trust_remote_code=True in an interpreter without hfldm: the folder's copy of pipelines/few_step.py
    passes w to the U-Net, and the 2-step images are the in-process ones."""
    from _no_hfldm import load_without_hfldm

    pipe = student_pipeline()
    pipe.save_pretrained(tmp_path / "student")
    images, modules = load_without_hfldm(
        [("student", str(tmp_path / "student"), 2, {"class_labels": [1]})], tmp_path
    )
    assert modules["loaded hfldm"] == [] and modules["student"][3] == "diffusers.schedulers.scheduling_lcm"
    np.testing.assert_allclose(images["student"], sample(pipe, class_labels=[1], steps=2), atol=1e-5)


def test_a_full_student_given_to_load_lora_weights_is_refused_in_one_line(tmp_path):
    student_pipeline().save_pretrained(tmp_path / "student")
    teacher = class_pipeline()
    with pytest.raises(ValueError, match="^folder: .* is a few-step student pipeline .*, not a LoRA adapter"):
        teacher.load_lora_weights(tmp_path / "student")
