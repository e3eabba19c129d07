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


def make_ema(accelerator: Accelerator, model: nn.Module, decay: float, power: float = 2 / 3) -> EMAModel:
    """An EMAModel of `model`'s (unwrapped) parameters on its device, registered so that
    `accelerator.save_state` / `load_state` carry its shadow weights and step count."""
    model = accelerator.unwrap_model(model)
    ema = EMAModel(
        model.parameters(),
        decay=decay,
        use_ema_warmup=True,
        power=power,
        model_cls=type(model),
        model_config=model.config,
    )
    ema.to(accelerator.device)
    accelerator.register_for_checkpointing(ema)
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
