"""The one interface through which everything outside the autoencoders uses a first stage E/D.

The diffusion model, the latent cache, the pipelines, validation and evaluation see an autoencoder only as a
`LatentSpace`: its posterior q(z|x) = N(mean, std²) (std = 0 for a VQ or deterministic encoder), a decoder
D(z), the latent shape (channels, f = H/h) and LDM's latent scale (Appendix G) with SD-3's optional shift,
z_diffusion = (z − shift) · scale. hfldm's `KLAutoencoder` and `VQAutoencoder` implement it themselves;
diffusers' `AutoencoderKL`, `VQModel` and `AutoencoderTiny` get a small adapter here, so a pretrained
autoencoder of the ecosystem (e.g. Stable Diffusion's) drops in. `latent_space(vae)` returns either.
"""

from __future__ import annotations

import math

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, VQModel


class LatentSpace:
    """What a first stage offers the second: encode to latent moments, sample, scale, decode.

    Subclasses define `latent_moments`, `decode_latents`, `latent_channels` and `downsample_factor`; the
    latent scale is read from the model's config (`scaling_factor`, `shift_factor`).
    """

    def latent_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, H, W) in [-1, 1] -> (mean, std) of q(z|x), each (B, c, H/f, W/f), unscaled."""
        raise NotImplementedError

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Unscaled latents (B, c, h, w) -> images D(z), (B, 3, h·f, w·f) in about [-1, 1]."""
        raise NotImplementedError

    @property
    def latent_channels(self) -> int:
        """c, the channels of the latents the diffusion model sees (VQ: D, the codebook vectors' width)."""
        raise NotImplementedError

    @property
    def downsample_factor(self) -> int:
        """f = H / h."""
        raise NotImplementedError

    @property
    def codebook_size(self) -> int | None:
        """K of a VQ codebook; None for a continuous latent space."""
        return None

    def codebook_indices(self, z: torch.Tensor) -> torch.Tensor | None:
        """Indices (B, h, w) of the nearest codebook vectors of latents z; None without a codebook."""
        return None

    @property
    def latent_config(self):
        """The config that holds scaling_factor (and shift_factor): the model's own."""
        return self.config

    @property
    def scaling_factor(self) -> float:
        """1/σ̂ of LDM's latent rescaling (Appendix G); 1.0 until it is estimated. ValueError when the config's
        value is not a finite positive number (z / nan decodes to a black image)."""
        scale = float(self.latent_config.scaling_factor)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"vae: scaling_factor in its config.json is {scale}; it must be finite and > 0")
        return scale

    @property
    def shift_factor(self) -> float:
        """Mean subtracted before scaling (SD-3 / Flux autoencoders); 0 for LDM's."""
        return float(getattr(self.latent_config, "shift_factor", None) or 0.0)

    def latents(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Unscaled z of images x: mean + std·η ~ q(z|x) with η = `noise` (reparameterised), or the mean."""
        mean, std = self.latent_moments(x)
        return mean if noise is None else mean + std * noise.to(mean)

    def scale_latents(self, z: torch.Tensor) -> torch.Tensor:
        """z -> (z − shift) · scale, the unit-variance latents the U-Net models."""
        return (z - self.shift_factor) * self.scaling_factor

    def unscale_latents(self, z: torch.Tensor) -> torch.Tensor:
        """The inverse of `scale_latents`: what the decoder takes."""
        return z / self.scaling_factor + self.shift_factor

    def latent_shape(self, height: int, width: int | None = None) -> tuple[int, int, int]:
        """(c, h, w) of the latents of an image of `height` × `width` pixels; ValueError unless f divides
        both."""
        width = height if width is None else width
        f = self.downsample_factor
        if height % f or width % f:
            raise ValueError(f"image size {height}x{width} is not divisible by the autoencoder's f = {f}")
        return self.latent_channels, height // f, width // f


class _Adapter(LatentSpace):
    """A diffusers autoencoder seen as a LatentSpace; `model` stays the component that is saved."""

    def __init__(self, model):
        self.model = model

    @property
    def latent_config(self):
        return self.model.config

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.model.config.block_out_channels) - 1)

    def _to_model(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.model.device, self.model.dtype)


class DiffusersKL(_Adapter):
    """diffusers' AutoencoderKL (Stable Diffusion's, CompVis' KL first stages)."""

    @property
    def latent_channels(self) -> int:
        return self.model.config.latent_channels

    def latent_moments(self, x):
        posterior = self.model.encode(self._to_model(x)).latent_dist
        return posterior.mean, posterior.std

    def decode_latents(self, z):
        return self.model.decode(self._to_model(z)).sample


class DiffusersVQ(_Adapter):
    """diffusers' VQModel: the diffusion model works on the pre-quantisation latents, `decode` quantises."""

    @property
    def latent_channels(self) -> int:
        return self.model.config.vq_embed_dim or self.model.config.latent_channels

    @property
    def codebook_size(self) -> int:
        return self.model.config.num_vq_embeddings

    def latent_moments(self, x):
        h = self.model.encode(self._to_model(x)).latents
        return h, torch.zeros_like(h)

    def decode_latents(self, z):
        return self.model.decode(self._to_model(z)).sample

    def codebook_indices(self, z):
        return self.model.quantize(self._to_model(z))[2][2].reshape(z.shape[0], *z.shape[2:])


class DiffusersTiny(_Adapter):
    """diffusers' AutoencoderTiny (TAESD): a deterministic encoder."""

    @property
    def latent_channels(self) -> int:
        return self.model.config.latent_channels

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.model.config.encoder_block_out_channels) - 1)

    def latent_moments(self, x):
        z = self.model.encode(self._to_model(x)).latents
        return z, torch.zeros_like(z)

    def decode_latents(self, z):
        return self.model.decode(self._to_model(z)).sample


ADAPTERS = {AutoencoderKL: DiffusersKL, VQModel: DiffusersVQ, AutoencoderTiny: DiffusersTiny}


def latent_space(vae) -> LatentSpace:
    """`vae` as a LatentSpace: hfldm's autoencoders are one; diffusers' AutoencoderKL, VQModel and
    AutoencoderTiny are adapted. TypeError for any other model."""
    if isinstance(vae, LatentSpace):
        return vae
    for model_class, adapter in ADAPTERS.items():
        if isinstance(vae, model_class):
            return adapter(vae)
    known = ["KLAutoencoder", "VQAutoencoder", *(c.__name__ for c in ADAPTERS)]
    raise TypeError(f"vae: a {type(vae).__name__} is not an autoencoder hfldm knows ({', '.join(known)})")
