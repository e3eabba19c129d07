"""VQ-regularised autoencoder of LDM (Rombach et al. 2022, Sec. 3.1), a drop-in for diffusers' VQModel.

As in LDM, the diffusion model works on the pre-quantisation latents (`encode(x).latents`); the quantiser is
applied inside `decode`.
"""

from __future__ import annotations

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' loader looks this name up in the module)
from diffusers.configuration_utils import register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.autoencoders.vq_model import VQEncoderOutput
from diffusers.utils.accelerate_utils import apply_forward_hook

from .hfldm_autoencoders_base import LatentAutoencoder
from .hfldm_autoencoders_regularizers import VectorQuantizer


class VQAutoencoder(LatentAutoencoder):
    """x -> z_e -> z_q (nearest codebook entry) -> x_hat. `self.quantize(h)` also reports codebook usage."""

    # keep the codebook in full precision under layerwise casting, as diffusers' VQModel does
    _skip_layerwise_casting_patterns = ["quantize"]

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,  # channels of the image x
        out_channels: int = 3,  # channels of the reconstruction x_hat
        block_out_channels: tuple[int, ...] = (64, 128, 256),  # width per level; f = 2^(levels - 1)
        layers_per_block: int = 2,  # ResBlocks per encoder level (decoder: one more)
        latent_channels: int = 3,  # channels of the encoder output before quant_conv
        norm_num_groups: int = 32,  # GroupNorm groups (reduced to a divisor of each width)
        sample_size: int = 256,  # image side in pixels the model is trained at
        num_vq_embeddings: int = 256,  # K, codebook size
        vq_embed_dim: int | None = None,  # D, width of a codebook vector; None: latent_channels
        commitment_cost: float = 0.25,  # beta of VQ-VAE eq. 3
        scaling_factor: float = 1.0,  # LDM's latent scale: 1 / std of the latents, applied for the U-Net
    ):
        super().__init__()
        code_channels = latent_channels if vq_embed_dim is None else vq_embed_dim
        if num_vq_embeddings < 1:
            raise ValueError(f"num_vq_embeddings must be >= 1, got {num_vq_embeddings}")
        if code_channels < 1:
            raise ValueError(f"vq_embed_dim must be >= 1, got {vq_embed_dim}")
        if commitment_cost < 0:
            raise ValueError(f"commitment_cost must be >= 0, got {commitment_cost}")
        self._build(
            in_channels=in_channels,
            out_channels=out_channels,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            latent_channels=latent_channels,
            norm_num_groups=norm_num_groups,
            code_channels=code_channels,
            double_z=False,
        )
        self.quantize = VectorQuantizer(num_vq_embeddings, code_channels, beta=commitment_cost)

    @apply_forward_hook
    def encode(self, x: torch.Tensor, return_dict: bool = True) -> VQEncoderOutput | tuple[torch.Tensor]:
        """Images x (B, C, H, W) -> `VQEncoderOutput.latents`, pre-quantisation, (B, D, H/f, W/f)."""
        self._check_images(x, "x")
        h = self._encode_code(x)
        if not return_dict:
            return (h,)
        return VQEncoderOutput(latents=h)

    @apply_forward_hook
    def decode(
        self, h: torch.Tensor, force_not_quantize: bool = False, return_dict: bool = True
    ) -> DecoderOutput | tuple[torch.Tensor, torch.Tensor]:
        """Latents h (B, D, h, w) -> `DecoderOutput` with `.sample` (B, C, h*f, w*f) and the scalar
        `.commit_loss` (VQ-VAE eq. 3; zero when `force_not_quantize` skips the quantiser)."""
        self._check_latents(h, self.latent_channels, "h")
        if force_not_quantize:
            quant, commit_loss = h, h.new_zeros(())
        else:
            quant, commit_loss, _, _ = self.quantize(h)
        dec = self._decode_code(quant)
        if not return_dict:
            return dec, commit_loss
        return DecoderOutput(sample=dec, commit_loss=commit_loss)

    @property
    def codebook_size(self) -> int:
        """K, the number of codebook vectors."""
        return self.config.num_vq_embeddings

    def latent_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h, 0): the pre-quantisation code (B, D, H/f, W/f), which LDM's diffusion models, and zero std."""
        h = self.encode(x.to(self.device, self.dtype)).latents
        return h, torch.zeros_like(h)

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """D(quantise(z)) (B, C, h*f, w*f)."""
        return self.decode(z.to(self.device, self.dtype)).sample

    def codebook_indices(self, z: torch.Tensor) -> torch.Tensor:
        """(B, h, w) indices of the codebook vectors nearest to z."""
        return self.quantize.nearest_indices(z)

    def regularized_forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̂, L_reg): x̂ decoded through the quantiser, L_reg = codebook + β·commitment (VQ-VAE eq. 3);
        `noise` is unused (the encoder is deterministic)."""
        out = self.decode(self.encode(x).latents)
        return out.sample, out.commit_loss

    def forward(
        self, sample: torch.Tensor, return_dict: bool = True
    ) -> DecoderOutput | tuple[torch.Tensor, ...]:
        """Reconstruction of `sample` through the quantiser: `.sample` (B, C, H, W) and `.commit_loss`."""
        self._check_images(sample, "sample")
        return self.decode(self.encode(sample).latents, return_dict=return_dict)
