"""Inpainting masks drawn from a torch generator: rectangles, free-form strokes, or the whole image.

A mask is (1, H, W) in {0, 1}, 1 = repaint (diffusers' white). `random_mask` covers a share drawn from
U(coverage) of the image with one rectangle of random aspect, or with thick strokes (a random walk of
segments, the free-form masks of Yu et al. 2019 in miniature), or, with probability `full_prob`, all of it
(the model then also learns to generate from nothing, as text-to-image). Training draws one per sample from
the sample's own generator (`hfldm.training.inpaint`); the evaluation's held-out masks are `held_out_masks`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

COVERAGE = (0.1, 0.6)  # the share of the image a rectangle / stroke mask covers


def _uniform(g: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * torch.rand((), generator=g).item()


def rectangle_mask(g: torch.Generator, height: int, width: int, coverage: float) -> torch.Tensor:
    """One axis-aligned rectangle of `coverage`·H·W pixels (as near as whole pixels allow), aspect in
    [1/2, 2], at a uniform position."""
    aspect = math.exp(_uniform(g, -math.log(2), math.log(2)))
    area = coverage * height * width
    h = min(height, max(1, round(math.sqrt(area / aspect))))
    w = min(width, max(1, round(area / h)))
    top = int(torch.randint(0, height - h + 1, (), generator=g))
    left = int(torch.randint(0, width - w + 1, (), generator=g))
    mask = torch.zeros(1, height, width)
    mask[:, top : top + h, left : left + w] = 1
    return mask


def _segment(yy, xx, p, q, radius: float) -> torch.Tensor:
    """Pixels whose centre lies within `radius` of the segment p–q (points as (y, x))."""
    d = q - p
    t = (((yy - p[0]) * d[0] + (xx - p[1]) * d[1]) / max(float(d @ d), 1e-8)).clamp(0, 1)
    return (yy - (p[0] + t * d[0])) ** 2 + (xx - (p[1] + t * d[1])) ** 2 <= radius**2


def stroke_mask(g: torch.Generator, height: int, width: int, coverage: float, max_segments: int = 32):
    """Thick strokes: a random walk of segments (length 15–40 %, width 8–20 % of the side) drawn until
    `coverage` of the image is masked (or `max_segments` are drawn)."""
    side = min(height, width)
    yy, xx = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    mask = torch.zeros(height, width, dtype=torch.bool)
    point = torch.tensor([_uniform(g, 0, height), _uniform(g, 0, width)])
    for _ in range(max_segments):
        angle, length = _uniform(g, 0, 2 * math.pi), _uniform(g, 0.15, 0.4) * side
        end = point + length * torch.tensor([math.sin(angle), math.cos(angle)])
        end = end.clamp(torch.zeros(2), torch.tensor([float(height), float(width)]))
        mask |= _segment(yy, xx, point, end, _uniform(g, 0.04, 0.1) * side)
        point = end
        if mask.float().mean() >= coverage:
            break
    return mask.float()[None]


def random_mask(
    g: torch.Generator, height: int, width: int, full_prob: float = 0.1, coverage=COVERAGE
) -> torch.Tensor:
    """(1, H, W) in {0, 1}: the whole image with probability `full_prob`, else a rectangle or strokes (even
    odds) covering a share ~ U(coverage) of it."""
    if _uniform(g) < full_prob:
        return torch.ones(1, height, width)
    share = _uniform(g, *coverage)
    if _uniform(g) < 0.5:
        return rectangle_mask(g, height, width, share)
    return stroke_mask(g, height, width, share)


def held_out_masks(num_masks: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """(N, 1, H, W): the evaluation's masks, mask i from a generator seeded by (seed, i); no full masks."""
    masks = []
    for i in range(num_masks):
        state = np.random.SeedSequence([seed, i]).generate_state(2, dtype=np.uint32)
        g = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
        masks.append(random_mask(g, height, width, full_prob=0.0))
    return torch.stack(masks)
