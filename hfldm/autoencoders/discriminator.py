"""PatchGAN discriminator (Isola et al. 2017, "pix2pix", Sec. 3.2.2), as in taming-transformers and LDM.

Used only by the autoencoder's adversarial loss in training; with n_layers = 3 each output logit sees a 70x70
patch of the input.
"""

from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn


class NLayerDiscriminator(ModelMixin, ConfigMixin):
    """Images (B, C, H, W) -> real/fake logits per patch, (B, 1, H/2^n_layers - 2, W/2^n_layers - 2)."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,  # channels of the images judged
        base_channels: int = 64,  # ndf, width of the first conv; doubled per layer up to 8x
        n_layers: int = 3,  # number of stride-2 convs; 3 gives the 70x70 PatchGAN
    ):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if base_channels < 1:
            raise ValueError(f"base_channels must be >= 1, got {base_channels}")
        widths = [base_channels * min(2**i, 8) for i in range(n_layers + 1)]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1  # the last hidden conv keeps the resolution
            layers += [
                nn.Conv2d(widths[i - 1], widths[i], 4, stride, 1, bias=False),
                nn.BatchNorm2d(widths[i]),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, 4, 1, 1))
        self.main = nn.Sequential(*layers)
        self.apply(_pix2pix_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"x: expected shape (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        return self.main(x)


def _pix2pix_init(module: nn.Module) -> None:
    """Conv weights ~ N(0, 0.02); BatchNorm scale ~ N(1, 0.02), shift 0 (pix2pix / taming `weights_init`)."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
