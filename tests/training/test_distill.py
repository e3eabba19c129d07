"""training/distill.py end to end on tiny digits: the student samples in 2 steps closer to the teacher's 50
than the teacher itself does in 2; the LCM-LoRA form loads with the pipeline's LoRA loading; kill -9 resumes
exactly; bad arguments fail in one line before any training."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch
from _consistency_fixtures import distill_args, save_teacher
from _training_helpers import ROOT, max_difference, run_script
from diffusers import LCMScheduler
from safetensors.torch import load_file

from hfldm import LatentDiffusionPipeline

LABELS = list(range(10)) * 2  # 20 images, one seed each


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return save_teacher(tmp_path_factory.mktemp("teacher"))


def latents(pipe, steps: int, guidance_scale: float = 3.0) -> torch.Tensor:
    """z_0 of the 20 class-labelled seeds, sampled with the pipeline's scheduler in `steps` steps."""
    pipe.set_progress_bar_config(disable=True)
    generators = [torch.Generator().manual_seed(i) for i in range(len(LABELS))]
    return pipe(
        class_labels=LABELS,
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        generator=generators,
        output_type="latent",
    ).images


@pytest.mark.slow
def test_two_student_steps_land_closer_to_fifty_teacher_steps_than_two_teacher_steps(
    teacher, digits, tmp_path
):
    """The full student (w-embedding, LCMScheduler) after 24 distillation steps, against the teacher's own
    2-step DDIM, both measured by the MSE to the teacher's 50-step DDIM samples at w = 3 (same seeds)."""
    out = tmp_path / "student"
    run_script(
        "distill.py", *distill_args(teacher, digits, out, max_train_steps=24, checkpointing_steps=1000)
    )
    student = LatentDiffusionPipeline.from_pretrained(out)
    assert isinstance(student.scheduler, LCMScheduler) and student.unet.config.time_cond_proj_dim == 16
    teacher_pipe = LatentDiffusionPipeline.from_pretrained(teacher)
    reference = latents(teacher_pipe, 50)
    teacher_error = (latents(teacher_pipe, 2) - reference).pow(2).mean().item()
    student_error = (latents(student, 2) - reference).pow(2).mean().item()
    assert student_error < 0.5 * teacher_error, (student_error, teacher_error)


@pytest.mark.slow
def test_lcm_lora_loads_with_the_pipelines_lora_loading_and_switches_off(teacher, digits, tmp_path):
    """--student lora: an adapter file of LoRA weights only; loaded, LCMScheduler samples (2 steps) differ
    from the teacher's; switched off, LCMScheduler on the bare teacher is refused in one line."""
    out = tmp_path / "lora"
    run_script(
        "distill.py", *distill_args(teacher, digits, out, "--student", "lora", rank=4, w_min=3, w_max=3)
    )
    assert all(".lora_" in k for k in load_file(out / "pytorch_lora_weights.safetensors"))
    pipe = LatentDiffusionPipeline.from_pretrained(teacher)
    pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
    with pytest.raises(ValueError, match="^scheduler: LCMScheduler samples a consistency-distilled model"):
        latents(pipe, 2)
    pipe.load_lora_weights(out)
    first = latents(pipe, 2, guidance_scale=1.0)
    assert torch.isfinite(first).all()
    pipe.unet.set_adapters(["default"], weights=[0.0])
    assert (latents(pipe, 2, guidance_scale=1.0) - first).abs().max() > 1e-4


@pytest.mark.slow
def test_resume_after_sigkill_matches_the_uninterrupted_run(teacher, digits, tmp_path):
    """Kill -9 after the step-4 checkpoint, resume with `latest`: the student (θ⁻'s weights, saved) matches
    the uninterrupted run's, and so does the EMA target's shadow in the last checkpoint."""
    from _training_helpers import ema_shadow, killed_and_resumed

    ref, run = killed_and_resumed(
        lambda out: distill_args(teacher, digits, out), tmp_path, script="distill.py"
    )
    a = load_file(ref / "unet/diffusion_pytorch_model.safetensors")
    b = load_file(run / "unet/diffusion_pytorch_model.safetensors")
    assert max_difference(a, b) == 0.0
    ema_ref, ema_run = ema_shadow(ref / "checkpoint-8"), ema_shadow(run / "checkpoint-8")
    assert ema_ref.pop("step") == ema_run.pop("step") == 8
    assert max_difference(ema_ref, ema_run) == 0.0


def test_no_teacher_fails_in_one_line_before_training(digits, tmp_path):
    args = distill_args("unused", digits, tmp_path / "out")[2:]  # --teacher and its value come first
    result = run_script("distill.py", *args, rc=2)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("distill.py: error: --teacher: required"), line
    assert not (tmp_path / "out").exists()


def parse(argv: list[str]):
    """distill.py's flags parsed and checked as the script does (in-process: no subprocess to start)."""
    sys.path.insert(0, str(ROOT / "training"))
    from distill_arguments import DistillArguments

    from hfldm.data.arguments import DataArguments
    from hfldm.training.args import TrainingArguments, parse_args

    return parse_args(DistillArguments, DataArguments, TrainingArguments, argv=argv)


def test_bad_teachers_and_guidance_ranges_are_refused_by_name(teacher, digits, tmp_path):
    base = distill_args(teacher, digits, tmp_path / "out")
    with pytest.raises(ValueError, match=r"^--w_min: 5.0 is larger than --w_max 2.0$"):
        parse([*base, "--w_min", "5", "--w_max", "2"])
    other = shutil.copytree(teacher, tmp_path / "sr")
    index = json.loads((other / "model_index.json").read_text())
    index["_class_name"] = ["pipeline_latent_diffusion_superres", "LatentDiffusionSuperResolutionPipeline"]
    (other / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="^--teacher: .* holds a LatentDiffusionSuperResolutionPipeline"):
        parse(distill_args(other, digits, tmp_path / "a"))
    student = shutil.copytree(teacher, tmp_path / "student")
    config = json.loads((student / "unet/config.json").read_text()) | {"time_cond_proj_dim": 16}
    (student / "unet/config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="^--teacher: .* is already a consistency-distilled student"):
        parse(distill_args(student, digits, tmp_path / "b"))
    assert not any((tmp_path / name).exists() for name in ("out", "a", "b"))
