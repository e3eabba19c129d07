"""The arithmetic of benchmarks/robustness.py: held-out images drawn off the training layout, the baselines,
and the figures per cell (style × scale × shift).

`reframe(x, scale, shifts)` is what a user's image looks like to the model: the emoji resized by `scale`
(antialiased bicubic, as an image editor would) and pasted centred on a white frame of the same size, moved
by (dx, dy) pixels, cropped where it overflows. `shift_pattern(n, pixels)` gives image i the shift
(±pixels, ±pixels) with the four sign pairs in turn, so a cell sees every direction equally.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

SCALES = (0.7, 0.87, 1.0, 1.15)


def shift_pattern(n: int, pixels: int) -> torch.Tensor:
    """(n, 2) integer shifts (dx, dy): (+p, +p), (−p, +p), (+p, −p), (−p, −p), (+p, +p), ..."""
    signs = torch.tensor([[1, 1], [-1, 1], [1, -1], [-1, -1]])
    return signs[torch.arange(n) % 4] * pixels


def reframe(x: torch.Tensor, scale: float, shifts: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) in [-1, 1] -> the same size: each image resized by `scale` about its centre onto white,
    moved by shifts[i] = (dx, dy) pixels; what leaves the frame is cut."""
    n, c, height, width = x.shape
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    resized = (
        x
        if (h, w) == (height, width)
        else F.interpolate(x.float(), size=(h, w), mode="bicubic", antialias=True, align_corners=False).clamp(
            -1, 1
        )
    )
    out = torch.ones(n, c, height, width, dtype=resized.dtype)
    for i, (dx, dy) in enumerate(shifts.tolist()):
        top, left = (height - h) // 2 + dy, (width - w) // 2 + dx  # the resized image's corner in the frame
        y0, y1, x0, x1 = max(top, 0), min(top + h, height), max(left, 0), min(left + w, width)
        if y0 < y1 and x0 < x1:
            out[i, :, y0:y1, x0:x1] = resized[i, :, y0 - top : y1 - top, x0 - left : x1 - left]
    return out.to(x.dtype)


def lanczos_up(y: torch.Tensor, factor: int) -> torch.Tensor:
    """(N, 3, h, w) in [-1, 1] -> (N, 3, h·factor, w·factor) with Pillow's Lanczos (8-bit, as a user gets)."""
    out = []
    for image in y:
        pixels = ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        size = (pixels.shape[1] * factor, pixels.shape[0] * factor)
        big = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
        out.append(torch.from_numpy(big).permute(2, 0, 1) / 127.5 - 1)
    return torch.stack(out)


def mean_colour_fill(x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """x with its masked pixels (masks (N, 1, H, W) = 1) set to the mean colour of the image's kept ones."""
    keep = 1 - masks
    mean = (x * keep).sum((2, 3), keepdim=True) / keep.sum((2, 3), keepdim=True).clamp_min(1)
    return torch.where(masks.bool(), mean.expand_as(x), x)


def masked_rmse(x_hat: torch.Tensor, x: torch.Tensor, masks: torch.Tensor) -> float:
    """Root-mean-square error over the masked pixels (all channels), images in [-1, 1], reported in units of
    the [0, 1] pixel range (half the [-1, 1] difference)."""
    m = masks.expand_as(x).bool()
    return float(((x_hat.float() - x.float())[m] / 2).square().mean().sqrt())


def rmse_to_psnr(rmse: float) -> float:
    """PSNR (dB) of an RMSE in [0, 1] units: 20 log10(1 / RMSE)."""
    return float("inf") if rmse == 0 else float(-20 * np.log10(rmse))


def target_counts(sr_rows: list[dict], inpaint_rows: list[dict]) -> dict[str, str]:
    """How many cells meet #30's targets, as "k / n": SR PSNR ≥ bicubic's + 0.5 dB; SR's 64 px-level SWD
    below bicubic's; inpainting's masked RMSE ≤ 0.85 × the mean-colour fill's."""

    def count(rows: list[dict], meets) -> str:
        return f"{sum(bool(meets(r)) for r in rows)} / {len(rows)}"

    counts = {}
    if sr_rows:
        counts["SR PSNR >= bicubic + 0.5 dB"] = count(
            sr_rows, lambda r: r["psnr_sr"] >= r["psnr_bicubic"] + 0.5
        )
        counts["SR SWD < bicubic"] = count(sr_rows, lambda r: r["swd_sr"] < r["swd_bicubic"])
    if inpaint_rows:
        counts["inpainting RMSE <= 0.85 x mean colour"] = count(
            inpaint_rows, lambda r: r["rmse_model"] <= 0.85 * r["rmse_mean"]
        )
    return counts
