"""Concatenation conditioning (LDM §3.3; CompVis' DiffusionWrapper with `conditioning_key: concat`).

A spatially aligned condition y (the low-resolution image of super-resolution, a mask and masked image for
inpainting) enters the denoiser as extra input channels: ε_θ([z_t, y], t). The U-Net then has
in_channels = z_t's channels + y's channels and out_channels = z_t's channels. This is the one place where
[z_t, y] is built; it works on any U-Net config with `in_channels` / `out_channels` (hfldm's ConditionalUNet,
diffusers' UNet2DModel).
"""

from __future__ import annotations

import torch


def condition_channels(unet_config) -> int:
    """Channels of the condition a U-Net takes concatenated to z_t: in_channels - out_channels (0: none)."""
    return unet_config.in_channels - unet_config.out_channels


def concat_condition(z_t: torch.Tensor, condition: torch.Tensor, unet_config) -> torch.Tensor:
    """[z_t, y] along the channels: (B, out_channels, H, W) and (B, c, H, W) -> (B, in_channels, H, W).

    Raises ValueError naming `condition` (or `z_t`) when the channels or the size do not fit the U-Net.
    """
    expected = condition_channels(unet_config)
    if z_t.shape[1] != unet_config.out_channels:
        raise ValueError(f"z_t: expected {unet_config.out_channels} channels, got {z_t.shape[1]}")
    if expected <= 0:
        raise ValueError(
            f"condition: this U-Net takes no concatenated condition (in_channels {unet_config.in_channels} "
            f"= out_channels {unet_config.out_channels})"
        )
    if condition.shape[1] != expected:
        raise ValueError(
            f"condition: expected {expected} channels (the U-Net's in_channels {unet_config.in_channels} "
            f"- out_channels {unet_config.out_channels}), got {condition.shape[1]}"
        )
    if condition.shape[0] != z_t.shape[0] or condition.shape[2:] != z_t.shape[2:]:
        raise ValueError(
            f"condition: expected shape ({z_t.shape[0]}, {expected}, {z_t.shape[2]}, {z_t.shape[3]}) to "
            f"match z_t, got {tuple(condition.shape)}"
        )
    return torch.cat([z_t, condition.to(z_t.dtype)], dim=1)


def with_condition_channels(unet, channels: int):
    """A copy of a trained U-Net that takes `channels` more input channels, their conv_in weights zero: the
    new U-Net computes what the old one did on z_t whatever the condition holds (Stable Diffusion 2's
    inpainting model was initialised from the text model so). Any ModelMixin with a `conv_in` convolution
    (hfldm's ConditionalUNet, diffusers' UNet2DModel / UNet2DConditionModel)."""
    config = {k: v for k, v in unet.config.items() if not k.startswith("_")}
    widened = type(unet).from_config({**config, "in_channels": unet.config.in_channels + channels})
    state = unet.state_dict()
    weight = state["conv_in.weight"]  # (out, in, k, k)
    zeros = weight.new_zeros(weight.shape[0], channels, *weight.shape[2:])
    state["conv_in.weight"] = torch.cat([weight, zeros], dim=1)
    widened.load_state_dict(state)
    if widened.dtype != weight.dtype:
        widened = widened.to(weight.dtype)
    return widened.to(weight.device).train(unet.training)
