"""Known degradations of real images, to give FID / KID numbers a scale (and to test that they grow)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur, std `sigma` pixels (radius 3 sigma, reflect padding): (N, C, H, W) -> same."""
    if sigma <= 0:
        raise ValueError(f"sigma: expected a positive blur width in pixels, got {sigma}")
    radius = math.ceil(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    channels = images.shape[1]
    kernel = (kernel / kernel.sum()).repeat(channels, 1, 1, 1)  # (C, 1, 1, K)
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    rows = F.conv2d(padded, kernel, groups=channels)
    return F.conv2d(rows, kernel.transpose(2, 3), groups=channels)


def add_gaussian_noise(images: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """images + sigma * z with z ~ N(0, I) drawn under `seed`, not clipped; (N, C, H, W) -> same."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    return images + sigma * noise.to(images)
