"""The Space's "LCM (fast)" scheduler entry: the model's few-step student, sampled with its own LCMScheduler
in the steps asked for (4 by default), offered only when there is one."""

from __future__ import annotations

import sys

import pytest
import torch
from _ldm_fixtures import text_pipeline
from _space_fixtures import APP
from diffusers import LCMScheduler

from hfldm import LatentDiffusionPipeline
from hfldm.training.consistency import student_from_teacher

gr = pytest.importorskip("gradio")
sys.path.insert(0, str(APP.parent))
app = pytest.importorskip("app")
from request_limits import Limits  # noqa: E402


def student(teacher: LatentDiffusionPipeline) -> LatentDiffusionPipeline:
    unet = student_from_teacher(teacher.unet, time_cond_proj_dim=16).eval()
    pipe = LatentDiffusionPipeline(
        vae=teacher.vae,
        unet=unet,
        scheduler=LCMScheduler.from_config(teacher.scheduler.config),
        text_encoder=teacher.text_encoder,
        tokenizer=teacher.tokenizer,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_fast_samples_the_student_with_its_lcm_scheduler_and_leaves_the_model_alone():
    pipe = text_pipeline()
    fast, scheduler = student(pipe), type(pipe.scheduler)
    calls = []
    images = app.generate(
        pipe,
        Limits(),
        prompt="cat face",
        steps=app.FAST_STEPS,
        scheduler=app.FAST,
        num_images=2,
        progress=lambda p, desc: calls.append(p),
        fast_pipe=fast,
    )
    assert calls == [(i, 4) for i in range(1, 5)] and len(images) == 2
    assert type(fast.scheduler) is LCMScheduler and type(pipe.scheduler) is scheduler
    with pytest.raises(ValueError, match="^Unknown scheduler 'LCM \\(fast\\)'"):
        app.generate(pipe, Limits(), prompt="cat face", steps=4, scheduler=app.FAST)


def test_the_menu_offers_fast_only_with_a_student():
    pipe = text_pipeline()

    def menu(demo: gr.Blocks) -> list[str]:
        [dropdown] = [b for b in demo.blocks.values() if getattr(b, "label", None) == "Scheduler"]
        return [choice[0] for choice in dropdown.choices]

    with torch.no_grad():
        assert app.FAST not in menu(app.build_demo(pipe, Limits()))
        assert menu(app.build_demo(pipe, Limits(), fast_pipe=student(pipe)))[-1] == app.FAST
