"""One module whose forward is the autoencoder's training pass x -> (x̂, L_reg), so that accelerate / DDP
wrap a single `forward` (DDP syncs gradients only through `forward`, not through `encode` / `decode`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class RegularizedAutoencoder(nn.Module):
    """Wraps a KLAutoencoder or VQAutoencoder for training; `self.autoencoder` is the model that is saved."""

    def __init__(self, autoencoder: nn.Module):
        super().__init__()
        self.autoencoder = autoencoder

    @property
    def last_layer(self) -> torch.Tensor:
        """G_L of the adaptive GAN weight: the weight of the decoder's output conv."""
        return self.autoencoder.decoder.conv_out.weight

    def forward(
        self, x: torch.Tensor, posterior_noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images x (B, 3, H, W) in [-1, 1] -> (x̂ of x's shape, scalar L_reg).

        KL: z = μ + σ·η ~ q(z|x) with η = `posterior_noise` (or fresh N(0, I)), L_reg = KL(q ‖ N(0, I)) per
        pixel value; VQ: x̂ decoded through the quantiser, L_reg = codebook + β·commitment (VQ-VAE eq. 3).
        """
        return self.autoencoder.regularized_forward(x, posterior_noise)


def decoder_only(autoencoder: nn.Module) -> nn.Module:
    """Freezes all but D (post_quant_conv, decoder): E, its quant_conv and a VQ codebook keep the latent space
    that LDMs were trained in, so a fine-tuned D decodes their samples."""
    autoencoder.requires_grad_(False)
    for part in (autoencoder.post_quant_conv, autoencoder.decoder):
        part.requires_grad_(True)
    return autoencoder


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block `module`'s parameters take no gradient (the discriminator in the decoder's loss)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)
