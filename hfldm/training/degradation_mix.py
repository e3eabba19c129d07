"""The degradation mix of super-resolution training: a documented subset of BSR / Real-ESRGAN's.

Per sample, after the Gaussian blur of `hfldm.training.superres`: downsampling by s with a kernel drawn
uniformly from {bicubic, bilinear, area} (BSR §3.1 / Real-ESRGAN §3.1 "resize" draw these three), then the
Gaussian noise, then, with probability `jpeg_prob`, JPEG compression at quality q ~ U{jpeg_quality_min..95}
(Real-ESRGAN §3.1's last step). Left out: second-order degradation, anisotropic / sinc kernels, Poisson noise.
Without the mix, y is today's bicubic image and JPEG never happens.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# (mode, antialias) of F.interpolate for each downsampling kernel
KERNELS = (("bicubic", True), ("bilinear", True), ("area", False))


def downsample(x: torch.Tensor, factor: int, kernel: int = 0) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H/factor, W/factor) with KERNELS[kernel] (0: antialiased bicubic)."""
    mode, antialias = KERNELS[kernel]
    if mode == "area":
        return F.interpolate(x, scale_factor=1 / factor, mode="area")
    return F.interpolate(x, scale_factor=1 / factor, mode=mode, antialias=antialias, align_corners=False)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """x (C, H, W) in [-1, 1] through a JPEG encode / decode at `quality` (8-bit, 4:2:0), same range."""
    pixels = ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    decoded = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32)  # (H, W, 3)
    return (torch.from_numpy(decoded).permute(2, 0, 1) / 127.5 - 1).to(x)


@dataclass(frozen=True)
class DegradationMix:
    """Which of the mix's random choices are on; draws come from the caller's per-sample generator."""

    enabled: bool = False  # off: bicubic downsampling, no JPEG (the shipped model's recipe)
    jpeg_prob: float = 0.5  # P(JPEG) when enabled
    jpeg_quality_min: int = 30  # q ~ U{jpeg_quality_min..95}

    def draw(self, generator: torch.Generator) -> tuple[int, int | None]:
        """(kernel index, JPEG quality or None): three uniforms, always drawn."""
        u_kernel, u_jpeg, u_quality = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
        if not self.enabled:
            return 0, None
        kernel = min(int(u_kernel * len(KERNELS)), len(KERNELS) - 1)
        quality = self.jpeg_quality_min + int(u_quality * (96 - self.jpeg_quality_min))
        return kernel, (min(quality, 95) if u_jpeg < self.jpeg_prob else None)
