"""distill.py's own flags: the teacher, the student's form and LCM's distillation settings.

A module beside the script (its folder is on sys.path when it runs), as train_ldm.py's ldm_arguments.py.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hfldm.training.args import arg, check_positive

TEACHER_CLASS = "LatentDiffusionPipeline"  # text-, class- or unconditional; SR / inpainting not yet


@dataclass
class DistillArguments:
    """The teacher pipeline, the student (full or LCM-LoRA) and LCM's Algorithm 1 settings."""

    teacher: str | None = arg(None, "Folder of the trained LatentDiffusionPipeline to distil (the teacher).")
    student: Literal["full", "lora"] = arg(
        "full",
        "full: a copy of the teacher's U-Net with a w-embedding (one U-Net row per image at any w); lora: "
        "an LCM-LoRA adapter on the teacher's U-Net, guidance-free (w drawn in [w_min, w_max] is baked in).",
    )
    time_cond_proj_dim: int = arg(256, "Width of the full student's sinusoidal w-features.")
    rank: int = arg(16, "r of the LCM-LoRA adapters (--student lora).")
    target_modules: list[str] = arg(
        ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "conv1", "conv2", "time_proj"],
        "U-Net modules that get LCM-LoRA adapters.",
    )
    w_min: float = arg(2.0, "Smallest guidance scale w drawn per sample (the pipeline's w; LCM's ω = w − 1).")
    w_max: float = arg(6.0, "Largest guidance scale w drawn per sample.")
    num_ddim_timesteps: int = arg(50, "N, the teacher's DDIM steps over T (skipping interval k = T / N).")
    loss_type: Literal["huber", "l2"] = arg("huber", "Distance d(f_θ, f_θ⁻): pseudo-Huber or L2.")
    huber_c: float = arg(0.001, "c of the pseudo-Huber distance.")
    ema_decay: float = arg(0.95, "μ of the target θ⁻ ← μ θ⁻ + (1 − μ) θ (full student; LCM uses 0.95).")
    timestep_scaling: float = arg(
        10.0, "s of the boundary coefficients c_skip(st), c_out(st) (LCMScheduler's)."
    )
    cached_latents: str | None = arg(
        None, "A latent cache of the data (hfldm cache-latents) with the teacher's E."
    )
    validation_prompts: list[str] = arg([], "Prompts of the validation grid (default: the first captions).")
    validation_class_labels: list[int] = arg([], "Classes of the validation grid (default: the first four).")
    validation_seeds: list[int] = arg([0, 1, 2, 3], "Seeds of the validation grid, one column each.")
    num_inference_steps: int = arg(4, "LCMScheduler steps of the validation samples.")
    guidance_scale: float = arg(3.0, "w of the validation samples (the full student embeds it).")

    def validate(self) -> None:
        if self.teacher is None:
            raise ValueError("--teacher: required (the folder of the LatentDiffusionPipeline to distil)")
        check_teacher_folder(self.teacher)
        if self.w_min > self.w_max:
            raise ValueError(f"--w_min: {self.w_min} is larger than --w_max {self.w_max}")
        check_positive(self, "time_cond_proj_dim", "rank", "num_ddim_timesteps", "ema_decay")
        check_positive(self, "num_inference_steps", "timestep_scaling")
        check_positive(self, "w_min", "huber_c", "guidance_scale", allow_zero=True)
        if self.ema_decay > 1:
            raise ValueError(f"--ema_decay: must be in (0, 1], got {self.ema_decay}")
        if self.time_cond_proj_dim % 2:
            raise ValueError(
                f"--time_cond_proj_dim: must be even (sin and cos), got {self.time_cond_proj_dim}"
            )


def check_teacher_folder(teacher: str) -> None:
    """ValueError naming --teacher for a folder of another kind of pipeline, or of a distilled student."""
    folder = Path(teacher)
    index, unet = folder / "model_index.json", folder / "unet" / "config.json"
    if not index.is_file():
        return  # a Hub id, or not a pipeline: load_pipeline says which
    name = json.loads(index.read_text()).get("_class_name")
    name = name[-1] if isinstance(name, list) else name
    if name != TEACHER_CLASS:
        raise ValueError(
            f"--teacher: {teacher} holds a {name}; distillation takes a text-, class- or unconditional "
            f"{TEACHER_CLASS}"
        )
    if unet.is_file() and json.loads(unet.read_text()).get("time_cond_proj_dim"):
        raise ValueError(
            f"--teacher: {teacher} is already a consistency-distilled student (its U-Net embeds w)"
        )
