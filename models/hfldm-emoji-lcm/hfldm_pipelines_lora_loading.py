"""Loading an adapter of training/train_lora.py into a pipeline: the U-Net's and, when saved, τ_θ's."""

from __future__ import annotations

import json
from pathlib import Path


class LoraLoadingMixin:
    """`load_lora_weights` for pipelines with a `unet` and an optional `text_encoder`."""

    def load_lora_weights(self, folder: str | Path, adapter_name: str = "default", **kwargs) -> None:
        """Load a LoRA saved by training/train_lora.py (a local folder or Hub id): the U-Net's adapter through
        diffusers' `load_lora_adapter`, and τ_θ's when the folder has one. Rescale or switch it off with
        `pipe.unet.set_adapters([adapter_name], weights=[s])` / `pipe.unet.disable_lora()`."""
        from diffusers.loaders.lora_base import LORA_WEIGHT_NAME_SAFE  # the name save_lora_adapter writes

        from .hfldm_text_lora import TEXT_ENCODER_LORA, load_text_encoder_lora  # peft is imported on use

        local = Path(folder)
        if local.is_dir() and not (local / LORA_WEIGHT_NAME_SAFE).is_file():
            check_not_a_student(local)
            raise FileNotFoundError(f"folder: {folder} has no {LORA_WEIGHT_NAME_SAFE}")
        kwargs = {"prefix": None, "use_safetensors": True, **kwargs}
        self.unet.load_lora_adapter(str(folder), adapter_name=adapter_name, **kwargs)
        if getattr(self, "text_encoder", None) is not None and (local / TEXT_ENCODER_LORA).is_file():
            load_text_encoder_lora(self.text_encoder, local)


def check_not_a_student(folder: Path) -> None:
    """ValueError naming `folder` when it holds a full few-step student (training/distill.py --student full):
    a whole pipeline whose U-Net embeds w, which replaces the pipeline rather than adapting its U-Net."""
    config = folder / "unet" / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("time_cond_proj_dim"):
        raise ValueError(
            f"folder: {folder} is a few-step student pipeline (its U-Net embeds the guidance scale), not a "
            "LoRA adapter; load it with DiffusionPipeline.from_pretrained instead"
        )
