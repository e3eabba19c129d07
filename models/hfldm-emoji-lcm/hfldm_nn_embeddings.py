"""Conditioning embeddings of the U-Net: the diffusion timestep t, an optional class label y and an optional
guidance scale w (a consistency-distilled student's, LCM, Luo et al. 2023 §4.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from torch import nn


class TimestepEmbedding(nn.Module):
    """t -> sinusoidal features (Transformer positional encoding, DDPM Appendix B) -> Linear-SiLU-Linear."""

    def __init__(
        self,
        base_channels: int,
        embed_dim: int,
        flip_sin_to_cos: bool = True,
        freq_shift: float = 0,
        cond_proj_dim: int | None = None,
    ):
        super().__init__()
        self.base_channels = base_channels
        self.flip_sin_to_cos = flip_sin_to_cos
        self.freq_shift = freq_shift
        self.linear_1 = nn.Linear(base_channels, embed_dim)
        self.linear_2 = nn.Linear(embed_dim, embed_dim)
        # the w-embedding (diffusers' `cond_proj`): w's features projected onto t's, zero-initialised so
        # that a student copied from its teacher starts as the teacher (Luo et al. 2023 §4.2)
        self.cond_proj = nn.Linear(cond_proj_dim, base_channels, bias=False) if cond_proj_dim else None
        if self.cond_proj is not None:
            nn.init.zeros_(self.cond_proj.weight)

    def forward(
        self,
        timesteps: torch.Tensor,
        dtype: torch.dtype = torch.float32,
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """timesteps: (B,) integer or fractional steps -> (B, embed_dim); the features are cast to `dtype`,
        the sample's (as diffusers' U-Nets do): under layerwise casting the weights' own dtype is only
        their storage dtype (e.g. float8), which the hook casts to the compute dtype on the fly.
        `condition`: (B, cond_proj_dim) features of the guidance scale (`guidance_scale_embedding`), added
        to t's through `cond_proj`."""
        features = get_timestep_embedding(
            timesteps,
            self.base_channels,
            flip_sin_to_cos=self.flip_sin_to_cos,
            downscale_freq_shift=self.freq_shift,
        )
        features = features.to(dtype)
        if condition is not None and self.cond_proj is not None:
            features = features + self.cond_proj(condition.to(dtype))
        return self.linear_2(F.silu(self.linear_1(features)))


def guidance_scale_embedding(guidance_scale: torch.Tensor, dim: int) -> torch.Tensor:
    """w (B,), the pipeline's guidance scale, -> (B, dim) sinusoidal features of ω = w − 1 scaled by 1000.

    ω is LCM's guidance scale, ε̃ = (1 + ω) ε(z_t, y) − ω ε(z_t, ∅) (Luo et al. 2023, eq. 8), which is the
    pipeline's ε(∅) + w (ε(y) − ε(∅)) for w = ω + 1; the features are diffusers' LCM pipelines'
    (`get_guidance_scale_embedding`), so a student's `timestep_cond` means what it means there.
    """
    omega = (guidance_scale.float() - 1.0) * 1000.0
    return get_timestep_embedding(omega, dim, flip_sin_to_cos=False, downscale_freq_shift=1)


class ClassEmbedding(nn.Module):
    """y in {0, ..., num_classes - 1} -> a learned vector added to the timestep embedding."""

    def __init__(self, num_classes: int, embed_dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.embedding = nn.Embedding(num_classes, embed_dim)

    def forward(self, class_labels: torch.Tensor) -> torch.Tensor:
        """class_labels: (B,) int64 -> (B, embed_dim)."""
        return self.embedding(class_labels)
