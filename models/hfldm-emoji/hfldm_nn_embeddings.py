"""Conditioning embeddings of the U-Net: the diffusion timestep t and an optional class label y."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from torch import nn


class TimestepEmbedding(nn.Module):
    """t -> sinusoidal features (Transformer positional encoding, DDPM Appendix B) -> Linear-SiLU-Linear."""

    def __init__(
        self, base_channels: int, embed_dim: int, flip_sin_to_cos: bool = True, freq_shift: float = 0
    ):
        super().__init__()
        self.base_channels = base_channels
        self.flip_sin_to_cos = flip_sin_to_cos
        self.freq_shift = freq_shift
        self.linear_1 = nn.Linear(base_channels, embed_dim)
        self.linear_2 = nn.Linear(embed_dim, embed_dim)

    def forward(self, timesteps: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """timesteps: (B,) integer or fractional steps -> (B, embed_dim); the features are cast to `dtype`,
        the sample's (as diffusers' U-Nets do): under layerwise casting the weights' own dtype is only
        their storage dtype (e.g. float8), which the hook casts to the compute dtype on the fly."""
        features = get_timestep_embedding(
            timesteps,
            self.base_channels,
            flip_sin_to_cos=self.flip_sin_to_cos,
            downscale_freq_shift=self.freq_shift,
        )
        features = features.to(dtype)
        return self.linear_2(F.silu(self.linear_1(features)))


class ClassEmbedding(nn.Module):
    """y in {0, ..., num_classes - 1} -> a learned vector added to the timestep embedding."""

    def __init__(self, num_classes: int, embed_dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.embedding = nn.Embedding(num_classes, embed_dim)

    def forward(self, class_labels: torch.Tensor) -> torch.Tensor:
        """class_labels: (B,) int64 -> (B, embed_dim)."""
        return self.embedding(class_labels)
