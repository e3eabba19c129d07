"""Load the weights of a diffusers UNet2DConditionModel into a ConditionalUNet of the same architecture.

Same architecture means: CrossAttnDownBlock2D / CrossAttnUpBlock2D (or the attention-free DownBlock2D /
UpBlock2D) per level, UNetMidBlock2DCrossAttn, `use_linear_projection=True`, GEGLU feed-forwards and the
same widths, heads and layer counts. Used by the parity test and the benchmark to show that the two models
compute the same function.
"""

from __future__ import annotations

import re

import torch

# (diffusers pattern, hfldm replacement), applied in order to every key.
_RULES = [
    (r"^(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.", r"\1.\2.blocks.\3.resnet."),
    (r"^(down|up)_blocks\.(\d+)\.attentions\.(\d+)\.", r"\1.\2.blocks.\3.attention."),
    (r"^down_blocks\.(\d+)\.downsamplers\.0\.", r"down.\1.resample."),
    (r"^up_blocks\.(\d+)\.upsamplers\.0\.", r"up.\1.resample."),
    (r"^mid_block\.resnets\.0\.", "mid_block.resnet."),
    (r"^mid_block\.attentions\.0\.", "mid_block.attention."),
    (r"^mid_block\.resnets\.1\.", "mid_resnet."),
    (r"\.time_emb_proj\.", ".time_proj."),
    (r"\.conv_shortcut\.", ".skip."),
    (r"\.ff\.net\.0\.proj\.", ".ff.proj_in."),
    (r"\.ff\.net\.2\.", ".ff.proj_out."),
    (r"^class_embedding\.", "class_embedding.embedding."),
]


def diffusers_unet_to_hfldm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of a UNet2DConditionModel state dict to ConditionalUNet's; returns a new dict."""
    converted = {}
    for key, value in state_dict.items():
        for pattern, replacement in _RULES:
            key = re.sub(pattern, replacement, key)
        converted[key] = value
    return converted
