"""The two latent regularisers of LDM (Rombach et al. 2022, Sec. 3.1): a KL-penalised diagonal Gaussian and a
vector quantiser (van den Oord et al. 2017, "VQ-VAE"). The autoencoders differ only in which one they use.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import nn


class DiagonalGaussian(DiagonalGaussianDistribution):
    """Posterior q(z|x) = N(mean, diag(var)) built from encoder moments of shape (B, 2c, h, w).

    diffusers' `DiagonalGaussianDistribution` implements exactly LDM's posterior, so it is reused as is:
    `mean`, `logvar` (clamped to [-30, 20]), `std`, `var` are (B, c, h, w) tensors;
    `sample(generator)` returns mean + std * eps, eps ~ N(0, I) (reparameterisation, Kingma & Welling eq. 10);
    `mode()` returns the mean;
    `kl(other=None)` returns (B,) tensor, KL(q || N(0, I)) = 1/2 sum_{c,h,w} (mean^2 + var - 1 - logvar)
    (Kingma & Welling, Appendix B), or the KL to another diagonal Gaussian `other`;
    `nll(sample)` returns (B,) tensor, -log N(sample; mean, var) summed over (c, h, w).
    The subclass exists so that hfldm code names the regulariser as the paper does and can type-check it;
    `isinstance(posterior, DiagonalGaussianDistribution)` stays true for diffusers code.
    """


class QuantizerOutput(NamedTuple):
    """What `VectorQuantizer.forward` returns."""

    quantized: torch.Tensor  # z_q, (B, D, h, w), with the straight-through gradient of z
    commit_loss: torch.Tensor  # scalar, VQ-VAE eq. 3 without the reconstruction term
    perplexity: torch.Tensor  # scalar, exp(entropy of the code histogram): 1 (one code) .. num_embeddings
    indices: torch.Tensor  # (B, h, w) long, index of the nearest codebook entry at each position


def codebook_perplexity(indices: torch.Tensor, num_embeddings: int) -> torch.Tensor:
    """exp(-sum_k p_k log p_k) of the empirical code distribution p; a scalar in [1, num_embeddings]."""
    counts = torch.bincount(indices.flatten(), minlength=num_embeddings).float()
    p = counts / counts.sum()
    return torch.exp(torch.special.entr(p).sum())  # entr(p) = -p log p, and 0 at p = 0


class VectorQuantizer(nn.Module):
    """Nearest-neighbour codebook lookup with a straight-through gradient and commitment cost beta (VQ-VAE).

    Written here rather than reusing diffusers' `VectorQuantizer`: that one applies beta to the codebook
    term by default (`legacy=True`, "due to a bug"), does not report perplexity, and carries index-remapping
    machinery LDM does not need. The parameter is named `embedding` as there, so state dicts line up.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, beta: float = 0.25):
        super().__init__()
        if num_embeddings < 1:
            raise ValueError(f"num_embeddings must be >= 1, got {num_embeddings}")
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim}")
        if beta < 0:
            raise ValueError(f"beta (commitment cost) must be >= 0, got {beta}")
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.beta = beta
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)  # the codebook e_1..e_K, (K, D)
        nn.init.uniform_(self.embedding.weight, -1.0 / num_embeddings, 1.0 / num_embeddings)

    def nearest_indices(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the codebook entry nearest to each position of z (B, D, h, w); returns (B, h, w) long."""
        if z.ndim != 4 or z.shape[1] != self.embedding_dim:
            raise ValueError(f"z: expected shape (B, {self.embedding_dim}, h, w), got {tuple(z.shape)}")
        b, d, h, w = z.shape
        z_flat = z.permute(0, 2, 3, 1).reshape(-1, d)  # (B, D, h, w) -> (B*h*w, D)
        # k = argmin_j ||z_e(x) - e_j||_2  (VQ-VAE eq. 1)
        indices = torch.cdist(z_flat, self.embedding.weight.to(z_flat.dtype)).argmin(dim=1)
        return indices.view(b, h, w)

    def get_codebook_entry(self, indices: torch.Tensor) -> torch.Tensor:
        """Codebook vectors for indices (B, h, w); returns (B, D, h, w)."""
        return self.embedding(indices).permute(0, 3, 1, 2)  # (B, h, w, D) -> (B, D, h, w)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantise z (B, D, h, w); see `QuantizerOutput` for what is returned."""
        indices = self.nearest_indices(z)
        z_q = self.get_codebook_entry(indices).to(z.dtype)
        # ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2  (VQ-VAE eq. 3, means over elements)
        commit_loss = F.mse_loss(z_q, z.detach()) + self.beta * F.mse_loss(z, z_q.detach())
        # straight-through estimator: forward value z_q, gradient copied to z (VQ-VAE Sec. 3.1)
        z_q = z + (z_q - z).detach()
        return QuantizerOutput(z_q, commit_loss, codebook_perplexity(indices, self.num_embeddings), indices)
