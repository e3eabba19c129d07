"""The bundled few-step model (models/hfldm-emoji-lcm, `make distill-default`): the text model's
consistency-distilled student loads as diffusers users load it, with its LCMScheduler and w-embedding, within
the 45 MB fp16 budget and with the teacher's autoencoder and τ_θ; in 4 steps it lands closer to the teacher's
25 guided DDIM steps than the teacher's own 4 DDIM steps do; and it ships the code of this source."""

from pathlib import Path

import pytest
import torch

MODELS = Path(__file__).resolve().parents[2] / "models"
MODEL, TEACHER = MODELS / "hfldm-emoji-lcm", MODELS / "hfldm-emoji"
pytestmark = pytest.mark.skipif(
    not (MODEL / "model_index.json").is_file(), reason="no bundled few-step model"
)

CAPTIONS = [
    "grinning face",
    "red apple",
    "cat face",
    "rocket",
    "snowman",
    "four leaf clover",
    "sun",
    "red heart",
]


def load(folder: Path):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(folder), trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def draw(pipe, steps: int) -> torch.Tensor:
    generators = [torch.Generator().manual_seed(i) for i in range(len(CAPTIONS))]
    out = pipe(
        CAPTIONS, num_inference_steps=steps, guidance_scale=3.0, generator=generators, output_type="pt"
    )
    return out.images


def test_loads_as_the_shipped_fp16_student():
    from diffusers import LCMScheduler

    pipe = load(MODEL)
    assert isinstance(pipe.scheduler, LCMScheduler) and pipe.unet.config.time_cond_proj_dim == 256
    assert pipe.unet.dtype == torch.float32  # loaded as float32 by default; stored in fp16
    assert sum(p.stat().st_size for p in MODEL.rglob("*") if p.is_file()) <= 45 * 2**20  # the budget
    for shared in ("vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert (MODEL / shared).read_bytes() == (TEACHER / shared).read_bytes()


def test_four_steps_land_closer_to_the_teachers_25_than_its_own_4():
    """Eight held-in captions, seeds 0-7, w = 3: mean squared distance (pixels in [0, 1]) to the teacher's
    25 DDIM steps, of the student's 4 LCM steps and of the teacher's own 4 DDIM steps."""
    from hfldm.schedulers.ddim import DDIMScheduler

    teacher = load(TEACHER)
    teacher.scheduler = DDIMScheduler.from_config(teacher.scheduler.config)
    reference = draw(teacher, 25)
    student_mse = (draw(load(MODEL), 4) - reference).pow(2).mean().item()
    teacher_mse = (draw(teacher, 4) - reference).pow(2).mean().item()
    print(f"MSE to the teacher's 25 steps: student's 4 {student_mse:.4f}, teacher's 4 {teacher_mse:.4f}")
    assert student_mse < teacher_mse


def test_the_folder_ships_the_code_save_pretrained_writes_from_this_source(tmp_path):
    from _shipped_code import assert_ships_current_code

    from hfldm import LatentDiffusionPipeline

    assert_ships_current_code(LatentDiffusionPipeline, MODEL, tmp_path)
