"""Light augmentation for training the text–image model: small random resized crops and colour jitter.

No flips (emoji captions name left/right arrows and hands) and no hue shift (captions name skin tones and
colours); brightness, contrast and saturation move by at most `jitter`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_resized_crop(
    images: torch.Tensor, min_scale: float = 0.8, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Crop a random square of side s * size (s ~ U[min_scale, 1]) at a random position, resize back.

    images: (N, C, H, W) -> (N, C, H, W); bilinear, border pixels repeat outside the image.
    """
    n = images.shape[0]
    scale = min_scale + (1 - min_scale) * torch.rand(n, generator=generator)
    shift = (1 - scale)[:, None] * (2 * torch.rand(n, 2, generator=generator) - 1)  # keeps the crop inside
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale, scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(
    images: torch.Tensor, jitter: float = 0.1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Scale brightness, contrast, saturation by random factors in [1 - jitter, 1 + jitter]; (N, 3, H, W)."""
    n = images.shape[0]
    brightness, contrast, saturation = (
        1 + jitter * (2 * torch.rand(3, n, 1, 1, 1, generator=generator) - 1)
    ).to(images)
    x = images * brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + contrast * (x - mean)
    gray = x.mean(dim=1, keepdim=True)
    x = gray + saturation * (x - gray)
    return x.clamp(0, 1)


def augment(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random resized crop, then colour jitter; [0, 1] images (N, 3, H, W) -> same shape and range."""
    return color_jitter(random_resized_crop(images, generator=generator), generator=generator)
