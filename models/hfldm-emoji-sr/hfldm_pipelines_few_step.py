"""Few-step sampling of a consistency-distilled model (LCM, Luo et al. 2023) with diffusers' `LCMScheduler`.

A full student embeds the guidance scale w (its U-Net's `time_cond_proj_dim`, `hfldm.nn.embeddings`): it
is sampled with one U-Net row per image, w passed as `timestep_cond`, instead of classifier-free guidance's
two rows. An LCM-LoRA student (a LoRA adapter on the teacher's U-Net) is guidance-free: w was baked in
during distillation. LCMScheduler on a U-Net that is neither is refused: its boundary-condition steps assume
a consistency function, and an undistilled ε_θ gives blurs.
"""

from __future__ import annotations

import torch

from .hfldm_nn_embeddings import guidance_scale_embedding


def embeds_guidance(unet) -> bool:
    """Whether `unet` takes the guidance scale as an input (a w-embedding, `time_cond_proj_dim`); False for
    None (a pipeline that only encodes prompts)."""
    return unet is not None and bool(getattr(unet.config, "time_cond_proj_dim", None))


def check_few_step(scheduler, unet) -> None:
    """ValueError naming `scheduler` when it is an LCMScheduler and `unet` was never consistency-distilled
    (no w-embedding and no LoRA adapter loaded)."""
    distilled = embeds_guidance(unet) or getattr(unet, "_hf_peft_config_loaded", False)
    if type(scheduler).__name__ == "LCMScheduler" and not distilled:
        raise ValueError(
            "scheduler: LCMScheduler samples a consistency-distilled model (training/distill.py), but this "
            "U-Net has no w-embedding and no LCM-LoRA loaded; use the model's own scheduler (DDIM) instead"
        )


def cfg_scale(unet, guidance_scale: float) -> float:
    """The w of classifier-free guidance's two rows: 1 (one row) for a U-Net that embeds w itself."""
    return 1.0 if embeds_guidance(unet) else guidance_scale


def guidance_condition(unet, guidance_scale: float, rows: int, device) -> dict:
    """{"timestep_cond": (rows, time_cond_proj_dim)} features of w for a U-Net that embeds it, else {}."""
    if not embeds_guidance(unet):
        return {}
    w = torch.full((rows,), float(guidance_scale), device=device)
    return {"timestep_cond": guidance_scale_embedding(w, unet.config.time_cond_proj_dim).to(unet.dtype)}
