"""Exponential moving average of the U-Net weights (diffusers' EMAModel), checkpointed with the run.

θ_EMA ← d·θ_EMA + (1 − d)·θ after every optimiser step, with diffusers' warm-up of d (power 2/3 by default);
validation images and the saved pipeline use θ_EMA.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from torch import nn

from hfldm.training.state_files import load_ema, save_ema


def make_ema(
    accelerator: Accelerator, model: nn.Module, decay: float, power: float = 2 / 3, warmup: bool = True
) -> EMAModel:
    """An EMAModel of `model`'s (unwrapped) parameters on its device, hooked into `accelerator.save_state` /
    `load_state` so that checkpoints carry its shadow weights and step count (as `ema.safetensors`, not
    accelerate's pickled custom state). `warmup=False`: a fixed decay from the first step (LCM's target)."""
    model = accelerator.unwrap_model(model)
    ema = EMAModel(
        model.parameters(),
        decay=decay,
        use_ema_warmup=warmup,
        power=power,
        model_cls=type(model),
        model_config=model.config,
    )
    ema.to(accelerator.device)

    def save_hook(models, weights, folder):
        if accelerator.is_main_process:
            save_ema(ema, folder)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(lambda models, folder: load_ema(ema, folder))
    return ema


@contextmanager
def ema_weights(ema: EMAModel | None, model: nn.Module) -> Iterator[nn.Module]:
    """Within the block `model` holds the EMA weights (if `ema` is given); its own weights come back after."""
    if ema is None:
        yield model
        return
    ema.store(model.parameters())
    ema.copy_to(model.parameters())
    try:
        yield model
    finally:
        ema.restore(model.parameters())
