"""KL-regularised autoencoder of LDM (Sec. 3.1); a drop-in for diffusers' AutoencoderKL."""

from __future__ import annotations

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers' loader looks this name up in the module)
from diffusers.configuration_utils import register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.utils.accelerate_utils import apply_forward_hook

from .hfldm_autoencoders_base import LatentAutoencoder
from .hfldm_autoencoders_regularizers import DiagonalGaussian


class KLAutoencoder(LatentAutoencoder):
    """x -> q(z|x) = N(mean, var) -> z -> x_hat. The KL term itself is computed by the training loss."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,  # channels of the image x
        out_channels: int = 3,  # channels of the reconstruction x_hat
        block_out_channels: tuple[int, ...] = (64, 128, 256, 256),  # width per level; f = 2^(levels - 1)
        layers_per_block: int = 2,  # ResBlocks per encoder level (decoder: one more)
        latent_channels: int = 4,  # c, channels of the latent z
        norm_num_groups: int = 32,  # GroupNorm groups (reduced to a divisor of each width)
        sample_size: int = 256,  # image side in pixels the model is trained at
        scaling_factor: float = 1.0,  # LDM's latent scale: 1 / std of z, z is multiplied by it for the U-Net
    ):
        super().__init__()
        self._build(
            in_channels=in_channels,
            out_channels=out_channels,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            latent_channels=latent_channels,
            norm_num_groups=norm_num_groups,
            code_channels=latent_channels,
            double_z=True,
        )

    @apply_forward_hook
    def encode(
        self, x: torch.Tensor, return_dict: bool = True
    ) -> AutoencoderKLOutput | tuple[DiagonalGaussian]:
        """Images x (B, C, H, W) in [-1, 1] -> `AutoencoderKLOutput` whose `latent_dist` is the posterior
        `DiagonalGaussian` over z of shape (B, latent_channels, H/f, W/f)."""
        self._check_images(x, "x")
        posterior = DiagonalGaussian(self._encode_code(x))  # moments (B, 2c, h, w) -> N(mean, var)
        if not return_dict:
            return (posterior,)
        return AutoencoderKLOutput(latent_dist=posterior)

    @apply_forward_hook
    def decode(
        self, z: torch.Tensor, return_dict: bool = True, generator: torch.Generator | None = None
    ) -> DecoderOutput | tuple[torch.Tensor]:
        """Latents z (B, latent_channels, h, w), unscaled -> `DecoderOutput.sample` (B, C, h*f, w*f).

        `generator` is unused; it is accepted because diffusers pipelines pass it to AutoencoderKL.decode.
        """
        self._check_latents(z, self.config.latent_channels, "z")
        dec = self._decode_code(z)
        if not return_dict:
            return (dec,)
        return DecoderOutput(sample=dec)

    def latent_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of q(z|x), each (B, latent_channels, H/f, W/f)."""
        posterior = self.encode(x.to(self.device, self.dtype)).latent_dist
        return posterior.mean, posterior.std

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """D(z) (B, C, h*f, w*f) of unscaled latents z."""
        return self.decode(z.to(self.device, self.dtype)).sample

    def regularized_forward(
        self, x: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̂, L_reg): x̂ = D(z), z = μ + σ·η ~ q(z|x) with η = `noise` (or fresh N(0, I));
        L_reg = KL(q ‖ N(0, I)) (LDM Sec. 3.1), summed over latent dims, averaged over the batch, divided by
        the pixel values of one image (the per-pixel-value normalisation of hfldm.training.losses)."""
        posterior = self.encode(x).latent_dist
        eta = torch.randn_like(posterior.mean) if noise is None else noise.to(posterior.mean)
        z = posterior.mean + posterior.std * eta  # reparameterisation (Kingma & Welling 2014, eq. 10)
        return self.decode(z).sample, posterior.kl().mean() / x[0].numel()

    def forward(
        self,
        sample: torch.Tensor,
        sample_posterior: bool = False,
        return_dict: bool = True,
        generator: torch.Generator | None = None,
    ) -> DecoderOutput | tuple[torch.Tensor]:
        """Reconstruction (B, C, H, W) of `sample` via z ~ q(z|x) if `sample_posterior`, else via its mean."""
        self._check_images(sample, "sample")
        posterior = self.encode(sample).latent_dist
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(z, return_dict=return_dict)
