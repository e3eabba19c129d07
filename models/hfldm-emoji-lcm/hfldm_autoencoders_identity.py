"""The f = 1 first stage: E(x) = x, D(z) = z.

With it the same U-Net, training script and pipelines run a pixel-space diffusion model: LDM's "LDM-1"
(Fig. 6, the f-sweep's left end) and the pixel-space DDPM of Ho et al. (2020) whose rate–distortion curve
opens the LDM paper (Fig. 2). It has no weights; `scaling_factor` is 1, so x ∈ [−1, 1] is diffused as DDPM
does, unless the training script is asked to estimate a scale.
"""

from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config

from .hfldm_autoencoders_latent_space import LatentSpace


class IdentityAutoencoder(ModelMixin, ConfigMixin, LatentSpace):
    """E(x) = x and D(z) = z on images of `in_channels` channels: q(z|x) = δ(z − x), f = 1."""

    @register_to_config
    def __init__(self, in_channels: int = 3, sample_size: int = 32, scaling_factor: float = 1.0):
        super().__init__()
        # no weights, but a device and a dtype (ModelMixin reads them from the module's tensors)
        self.anchor = torch.nn.Parameter(torch.zeros(()), requires_grad=False)

    @property
    def latent_channels(self) -> int:
        return self.config.in_channels

    @property
    def downsample_factor(self) -> int:
        return 1

    def latent_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(self.anchor.device, self.anchor.dtype)
        return x, torch.zeros_like(x)

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        return z.to(self.anchor.device, self.anchor.dtype)
