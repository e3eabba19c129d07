"""Geometric augmentation of a training batch, drawn per sample so that resumed runs draw the same.

`Augmentation` maps images (B, 3, H, W) in [-1, 1] to images of the same range: each sample is scaled by
s ~ U(scale_min, scale_max) about the frame's centre and shifted by (dx, dy) ~ U(−max_shift, max_shift)²
pixels (bilinear resampling; what leaves the source frame is white, or the edge pixel repeated), then, with
`crop_size`, cut to a random crop_size² patch (super-resolution is local: LDM and BSR train on patches).
Every number comes from the sample's own generator (hfldm.training.randomness.sample_generators on the
AUGMENT_STREAM), in a fixed order, so a run resumed from a checkpoint augments as the uninterrupted run did.

`flippable(captions)` says which captions survive a left-right mirror: not those naming a direction or
showing letters and digits (arrows, "left-facing fist", keycaps, flags, "NG button").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

AUGMENT_STREAM = 4  # after randomness' TRAINING / SCALE, superres' SUPERRES and inpaint's INPAINT streams
PADDING = {"white": "zeros", "edge": "border"}  # padding -> grid_sample's padding_mode (white: see apply)
# words of captions whose picture a mirror makes false: a direction, a clock, text, digits or a flag
_NOT_MIRRORED = re.compile(
    r"\b(left\w*|right\w*|\w*clock\w*|arrow\w*|keycap|flag|letters?|numbers?|button|input|symbol)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class AugmentDraws:
    """The draws of one batch: s (B,), shift (B, 2) in pixels (x, y), crop corner (B, 2) in pixels."""

    scale: torch.Tensor
    shift: torch.Tensor
    corner: torch.Tensor


@dataclass(frozen=True)
class Augmentation:
    scale_min: float = 1.0  # smallest s: the content's size relative to the frame
    scale_max: float = 1.0  # largest s
    max_shift: float = 0.0  # largest |dx|, |dy|, pixels of the input frame
    padding: str = "white"  # what fills the frame where the scaled image does not reach: white | edge
    crop_size: int | None = None  # side of the random training patch, pixels (None: the whole frame)

    def __post_init__(self):
        if not 0 < self.scale_min <= self.scale_max:
            raise ValueError(
                f"--augment_scale_min: need 0 < min <= max, got {self.scale_min}, {self.scale_max}"
            )
        if self.max_shift < 0:
            raise ValueError(f"--augment_shift: must be >= 0 pixels, got {self.max_shift}")
        if self.padding not in PADDING:
            raise ValueError(f"--augment_padding: {self.padding!r} is not one of {list(PADDING)}")
        if self.crop_size is not None and self.crop_size <= 0:
            raise ValueError(f"--crop_size: must be positive, got {self.crop_size}")

    @property
    def is_identity(self) -> bool:
        return self.scale_min == self.scale_max == 1.0 and self.max_shift == 0 and self.crop_size is None

    def output_size(self, resolution: int) -> int:
        """Side of the augmented images of `resolution`² inputs; ValueError when the crop does not fit."""
        if self.crop_size is not None and self.crop_size > resolution:
            raise ValueError(f"--crop_size: {self.crop_size} is larger than --resolution {resolution}")
        return self.crop_size or resolution

    def draw(self, generators: list[torch.Generator], resolution: int) -> AugmentDraws:
        """Five uniforms per sample (s, dx, dy, crop x, crop y), always all drawn whatever the options."""
        room = resolution - self.output_size(resolution)
        u = torch.stack([torch.rand(5, generator=g, dtype=torch.float64) for g in generators])  # (B, 5)
        scale = self.scale_min + u[:, 0] * (self.scale_max - self.scale_min)
        shift = (2 * u[:, 1:3] - 1) * self.max_shift
        corner = torch.floor(u[:, 3:5] * (room + 1)).clamp(max=room).long()
        return AugmentDraws(scale.float(), shift.float(), corner)

    def apply(self, images: torch.Tensor, draws: AugmentDraws) -> torch.Tensor:
        """(B, C, H, W) in [-1, 1] -> (B, C, h, w): scaled, shifted (white / edge around), then cropped."""
        b, _, height, width = images.shape
        s = draws.scale.to(images)
        t = draws.shift.to(images) * 2 / torch.tensor([width, height]).to(images)  # pixels -> [-1, 1] units
        # output point p samples the input at (p − t) / s: the content is s times as large, moved by t
        theta = torch.zeros(b, 2, 3).to(images)
        theta[:, 0, 0], theta[:, 1, 1] = 1 / s, 1 / s
        theta[:, :, 2] = -t / s[:, None]
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        white = self.padding == "white"  # zeros padding of x − 1 is white (+1) once 1 is added back
        source = images.float() - 1 if white else images.float()
        warped = F.grid_sample(
            source, grid, mode="bilinear", padding_mode=PADDING[self.padding], align_corners=False
        )
        warped = (warped + 1 if white else warped).clamp(-1, 1).to(images.dtype)
        size = self.output_size(height)
        patches = [w[:, y : y + size, x : x + size] for w, (x, y) in zip(warped, draws.corner.tolist())]
        return torch.stack(patches)

    def __call__(self, images: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        return self.apply(images, self.draw(generators, images.shape[-1]))


def flippable(captions: list[str] | None, batch_size: int) -> torch.Tensor:
    """(B,) bool: True where a left-right mirror keeps the caption true (all True without captions)."""
    if captions is None:
        return torch.ones(batch_size, dtype=torch.bool)
    return torch.tensor([_NOT_MIRRORED.search(c or "") is None for c in captions], dtype=torch.bool)
