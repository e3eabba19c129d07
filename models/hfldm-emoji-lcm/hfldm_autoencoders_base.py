"""What the KL and VQ autoencoders share: encoder E, 1x1 quant convs, decoder D, input checks, f, and the
`LatentSpace` interface through which the rest of hfldm uses them.

The subclasses add only their regulariser (`DiagonalGaussian` or `VectorQuantizer`) and their config.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import ConfigMixin, ModelMixin
from torch import nn

from .hfldm_autoencoders_encoder_decoder import Decoder, Encoder, check_architecture
from .hfldm_autoencoders_latent_space import LatentSpace
from .hfldm_autoencoders_tiling import SlicingTilingMixin
from .hfldm_nn_finite import WarnNonFiniteWeights


class LatentAutoencoder(WarnNonFiniteWeights, SlicingTilingMixin, ModelMixin, ConfigMixin, LatentSpace):
    """Base of `KLAutoencoder` and `VQAutoencoder`; not a model by itself (it has no config of its own).

    Subclasses implement `latent_moments`, `decode_latents` (the `LatentSpace` interface) and
    `regularized_forward`, the training pass x -> (x̂, L_reg) with their regulariser's term.
    """

    _supports_gradient_checkpointing = True

    def _build(
        self,
        *,
        in_channels: int,
        out_channels: int,
        block_out_channels: Sequence[int],
        layers_per_block: int,
        latent_channels: int,
        norm_num_groups: int,
        code_channels: int,
        double_z: bool,
    ) -> None:
        """E -> quant_conv -> [regulariser] -> post_quant_conv -> D, as LDM's `AutoencoderKL` / `VQModel`.

        `code_channels` is the width the regulariser sees (LDM's embed_dim); with `double_z` the encoder and
        quant_conv emit twice that (mean and log-variance).
        """
        check_architecture(block_out_channels, layers_per_block)
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("latent_channels", latent_channels),
            ("norm_num_groups", norm_num_groups),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        moments = 2 if double_z else 1
        self.encoder = Encoder(
            in_channels, moments * latent_channels, block_out_channels, layers_per_block, norm_num_groups
        )
        self.quant_conv = nn.Conv2d(moments * latent_channels, moments * code_channels, 1)
        self.post_quant_conv = nn.Conv2d(code_channels, latent_channels, 1)
        self.decoder = Decoder(
            latent_channels, out_channels, block_out_channels, layers_per_block, norm_num_groups
        )

    @property
    def downsample_factor(self) -> int:
        """f = H / h = 2^(number of levels - 1)."""
        return 2 ** (len(self.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        """Channels of the regularised code the diffusion model sees (KL: c; VQ: D, LDM's embed_dim)."""
        return self.post_quant_conv.in_channels

    def regularized_forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images x (B, C, H, W) in [-1, 1] -> (x̂ of x's shape, scalar L_reg) for training."""
        raise NotImplementedError

    def latent_size(self, image_size: int | None = None) -> int:
        """Side h of the latent for an image of side `image_size` (default: config.sample_size)."""
        image_size = self.config.sample_size if image_size is None else image_size
        if image_size % self.downsample_factor:
            raise ValueError(f"image_size {image_size} is not divisible by f = {self.downsample_factor}")
        return image_size // self.downsample_factor

    def _check_images(self, x: torch.Tensor, name: str) -> None:
        """Raise ValueError naming `name` unless x is (B, in_channels, H, W) with H and W divisible by f."""
        f, c = self.downsample_factor, self.config.in_channels
        if x.ndim != 4 or x.shape[1] != c:
            raise ValueError(f"{name}: expected shape (B, {c}, H, W), got {tuple(x.shape)}")
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(f"{name}: height and width {tuple(x.shape[2:])} must be divisible by f = {f}")

    def _check_latents(self, z: torch.Tensor, channels: int, name: str) -> None:
        """Raise ValueError naming `name` unless z is (B, channels, h, w)."""
        if z.ndim != 4 or z.shape[1] != channels:
            raise ValueError(f"{name}: expected shape (B, {channels}, h, w), got {tuple(z.shape)}")

    def _encode_code(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) -> quant_conv(E(x)), (B, moments * code_channels, H/f, W/f); per image or
        per tile when slicing or tiling is enabled."""
        return self.in_pieces(self._encode_whole, x, in_scale=self.downsample_factor, out_scale=1)

    def _decode_code(self, code: torch.Tensor) -> torch.Tensor:
        """Regularised code (B, code_channels, h, w) -> images D(post_quant_conv(code)), (B, C, h*f, w*f);
        per image or per tile when slicing or tiling is enabled."""
        return self.in_pieces(self._decode_whole, code, in_scale=1, out_scale=self.downsample_factor)

    def _encode_whole(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant_conv(self.encoder(x))

    def _decode_whole(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(code))
