"""The torch graphs an exported pipeline is made of: τ_θ, ε_θ, E and D with plain tensor inputs and outputs.

Each wraps one component of a torch pipeline so that tracing sees tensors only (no dataclass outputs, no
optional arguments): the runtime components (`hfldm.runtime.components`) call the exported graphs with the
same names. `pipeline_graphs(pipe, batch, height, width)` lists them with example inputs of the shapes the
pipeline's loop feeds them: the U-Net at the guidance batch 2B (B for super-resolution, which has no
guidance), τ_θ at B prompts, E at B images, D at B latents.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hfldm.autoencoders.latent_space import latent_space
from hfldm.text.encoder import text_max_length


class UNetGraph(nn.Module):
    """ε_θ(sample, timestep[, encoder_hidden_states, encoder_attention_mask][, class_labels]) -> ε."""

    def __init__(self, unet: nn.Module, masked: bool):
        super().__init__()
        self.unet, self.masked = unet, masked

    def forward(self, sample, timestep, *conditions):
        kwargs = dict(zip(unet_condition_names(self.unet.config, self.masked), conditions))
        return self.unet(sample, timestep, **kwargs, return_dict=False)[0]


class TextEncoderGraph(nn.Module):
    """τ_θ(input_ids[, attention_mask]) -> last_hidden_state (B, L, D)."""

    def __init__(self, text_encoder: nn.Module):
        super().__init__()
        self.text_encoder = text_encoder

    def forward(self, input_ids, *attention_mask):
        mask = attention_mask[0] if attention_mask else None
        return self.text_encoder(input_ids, attention_mask=mask).last_hidden_state


class EncoderGraph(nn.Module):
    """x (B, 3, H, W) in [-1, 1] -> (mean, std) of q(z|x), unscaled (`LatentSpace.latent_moments`)."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, x):
        return latent_space(self.vae).latent_moments(x)


class DecoderGraph(nn.Module):
    """Unscaled z (B, c, h, w) -> D(z) (B, 3, h·f, w·f) (`LatentSpace.decode_latents`; VQ quantises first)."""

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        return latent_space(self.vae).decode_latents(z)


def unet_condition_names(unet_config, masked: bool) -> list[str]:
    """The U-Net's inputs after (sample, timestep), in the graph's order: τ_θ(y) and its mask for a
    cross-attention U-Net (the mask only when the pipeline masks padding), class labels for a
    class-conditional one."""
    names = []
    if getattr(unet_config, "cross_attention_dim", None):
        names += ["encoder_hidden_states"] + (["encoder_attention_mask"] if masked else [])
    if getattr(unet_config, "num_class_embeds", None):
        names.append("class_labels")
    return names


@dataclass
class Graph:
    """One graph to export: `subfolder/name`, its torch module, example inputs by name, output names."""

    subfolder: str
    name: str
    module: nn.Module
    inputs: dict[str, torch.Tensor]
    outputs: list[str]


def pipeline_graphs(pipe, batch: int, height: int, width: int) -> list[Graph]:
    """The graphs of a torch hfldm pipeline (text-to-image, super-resolution or inpainting), with example
    inputs for `batch` images of `height` × `width` pixels (the output's size)."""
    space, unet_cfg = latent_space(pipe.vae), pipe.unet.config
    f, c = space.downsample_factor, space.latent_channels
    masked = bool(getattr(pipe.config, "text_attention_mask", True))
    text = getattr(pipe, "text_encoder", None) is not None
    guided = text or bool(getattr(unet_cfg, "num_class_embeds", None))
    rows = 2 * batch if guided else batch  # the guidance batch: unconditional half first
    grid = (height // f, width // f)  # z_t's grid, for every kind: the output's size / f
    tokens = text_max_length(pipe.tokenizer) if text else 1
    examples = {
        "sample": torch.randn(rows, unet_cfg.in_channels, *grid),
        "timestep": torch.full((rows,), 500.0),
        "encoder_hidden_states": torch.randn(rows, tokens, getattr(unet_cfg, "cross_attention_dim", 1) or 1),
        "encoder_attention_mask": torch.ones(rows, tokens, dtype=torch.int64),
        "class_labels": torch.zeros(rows, dtype=torch.int64),
    }
    names = ["sample", "timestep", *unet_condition_names(unet_cfg, masked)]
    graphs = [Graph("unet", "model", UNetGraph(pipe.unet, masked), {n: examples[n] for n in names}, ["eps"])]
    if text:
        ids = {"input_ids": torch.ones(batch, tokens, dtype=torch.int64)}
        ids |= {"attention_mask": torch.ones(batch, tokens, dtype=torch.int64)} if masked else {}
        graphs.append(
            Graph("text_encoder", "model", TextEncoderGraph(pipe.text_encoder), ids, ["last_hidden_state"])
        )
    x = torch.rand(batch, 3, grid[0] * f, grid[1] * f) * 2 - 1
    graphs.append(Graph("vae", "encoder", EncoderGraph(pipe.vae), {"x": x}, ["mean", "std"]))
    z = torch.randn(batch, c, *grid)
    graphs.append(Graph("vae", "decoder", DecoderGraph(pipe.vae), {"z": z}, ["image"]))
    return graphs
