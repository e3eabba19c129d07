"""Distances between the local patch statistics of two image sets, per Laplacian pyramid level: the sliced
Wasserstein distance of Karras et al. 2018 ("Progressive growing of GANs", §5, App. D) and the Fréchet
distance of the same patches (FID's formula, Heusel et al. 2017, on pixels instead of Inception features).

Each image is split into a Laplacian pyramid (Burt & Adelson 1983; finest level first, down to `min_size`
px): level l is the Gaussian level G_l minus the upsampled G_{l+1}, G_{l+1} = ↓2(binomial 5×5 blur of G_l).
From every level of every image `patches_per_image` random 7×7 neighbourhoods are taken (147-dim
descriptors) and each level's descriptors normalised per colour channel. SW_1 is estimated with
`directions` random unit projections: the mean over directions of the mean absolute difference of the two
sorted projections, reported ×10³ as in the paper. The paper normalises each set by its own statistics;
here both sets share one normalisation, so that a uniform loss of energy in a band (what blur is) counts.

The finest level holds what a 2× super-resolution adds: a blurry method (bicubic) loses energy there, a
method that invents wrong texture gains the wrong statistics; both raise that level's distance. No learnt
features, so unlike FID it needs no network trained on anyone's data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PATCH = 7  # neighbourhood side, as in the paper
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16


def _blur(x: torch.Tensor) -> torch.Tensor:
    """The separable 5×5 binomial filter, reflect-padded, per channel."""
    c = x.shape[1]
    k = _BINOMIAL.to(x)
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, 5).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, 5, 1).repeat(c, 1, 1, 1), groups=c)


def _up(x: torch.Tensor) -> torch.Tensor:
    """2× upsampling by zero insertion and the binomial filter (×4 keeps the mean)."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[..., ::2, ::2] = x * 4
    return _blur(up)


def laplacian_pyramid(x: torch.Tensor, min_size: int = 16) -> list[torch.Tensor]:
    """Levels of x (N, C, H, W), finest first; the last is the coarsest Gaussian level (≥ `min_size` px).
    Their sum after upsampling every level back to H × W returns x exactly."""
    levels, g = [], x.float()
    while g.shape[-1] // 2 >= min_size and g.shape[-2] // 2 >= min_size:
        down = _blur(g)[..., ::2, ::2]
        levels.append(g - _up(down))
        g = down
    return levels + [g]


def reconstruct(levels: list[torch.Tensor]) -> torch.Tensor:
    """The inverse of `laplacian_pyramid`."""
    x = levels[-1]
    for band in reversed(levels[:-1]):
        x = band + _up(x)
    return x


def patch_descriptors(level: torch.Tensor, per_image: int, generator: torch.Generator) -> torch.Tensor:
    """(N · per_image, C, 7, 7): random 7×7 neighbourhoods of every image of one level."""
    n, c, h, w = level.shape
    ys = torch.randint(0, h - PATCH + 1, (n, per_image), generator=generator)
    xs = torch.randint(0, w - PATCH + 1, (n, per_image), generator=generator)
    offsets = torch.arange(PATCH)
    rows = (ys[..., None] + offsets)[..., :, None].expand(n, per_image, PATCH, PATCH)
    cols = (xs[..., None] + offsets)[..., None, :].expand(n, per_image, PATCH, PATCH)
    image = torch.arange(n)[:, None, None, None].expand_as(rows)
    return level.permute(0, 2, 3, 1)[image, rows, cols].permute(0, 1, 4, 2, 3).reshape(-1, c, PATCH, PATCH)


def sliced_wasserstein(
    a: torch.Tensor, b: torch.Tensor, directions: int, generator: torch.Generator
) -> float:
    """SW_1 between two equal-size sets of vectors (M, D): mean over random unit directions u of
    mean |sort(a u) − sort(b u)|."""
    if a.shape != b.shape:
        raise ValueError(
            f"a, b: the sets must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    u = torch.randn(a.shape[1], directions, generator=generator, dtype=torch.float64)
    u = u / u.norm(dim=0, keepdim=True)
    pa, pb = (a.double() @ u).sort(dim=0).values, (b.double() @ u).sort(dim=0).values
    return float((pa - pb).abs().mean())


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """||μ_a − μ_b||² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½) of Gaussians fitted to the rows of a and b."""
    a, b = a.double(), b.double()
    mu_a, mu_b, cov_a, cov_b = a.mean(0), b.mean(0), torch.cov(a.T), torch.cov(b.T)
    root_trace = torch.linalg.eigvals(cov_a @ cov_b).sqrt().real.sum()  # Tr((Σ_a Σ_b)^½)
    return float((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * root_trace)


def swd(
    real: torch.Tensor,
    fake: torch.Tensor,
    patches_per_image: int = 128,
    directions: int = 512,
    repeats: int = 4,
    min_size: int = 16,
    seed: int = 0,
) -> dict:
    """SWD ×10³ and the Fréchet distance per pyramid level of two image sets (N, 3, H, W) on the same value
    scale, finest level first. The larger set is subsampled (seeded) to the size of the smaller, so both give
    as many descriptors. Returns {"levels": [size in px, ...], "swd": [...], "frechet": [...]}."""
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(
            f"real, fake: image shapes differ, {tuple(real.shape[1:])} vs {tuple(fake.shape[1:])}"
        )
    if min(real.shape[-2:]) < max(PATCH, min_size):
        raise ValueError(
            f"real, fake: images of {tuple(real.shape[-2:])} px are smaller than min_size {min_size}"
        )
    g = torch.Generator().manual_seed(seed)
    n = min(len(real), len(fake))
    real = real[torch.randperm(len(real), generator=g)[:n]]
    fake = fake[torch.randperm(len(fake), generator=g)[:n]]
    sizes, distances, frechet = [], [], []
    for level_real, level_fake in zip(laplacian_pyramid(real, min_size), laplacian_pyramid(fake, min_size)):
        a = patch_descriptors(level_real, patches_per_image, g)
        b = patch_descriptors(level_fake, patches_per_image, g)
        both = torch.cat([a, b])
        mean = both.mean(dim=(0, 2, 3), keepdim=True)
        std = both.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-8)
        a, b = ((a - mean) / std).flatten(1), ((b - mean) / std).flatten(1)
        runs = [sliced_wasserstein(a, b, directions, g) for _ in range(repeats)]
        sizes.append(level_real.shape[-1])
        distances.append(1e3 * sum(runs) / repeats)
        frechet.append(frechet_distance(a, b))
    return {"levels": sizes, "swd": distances, "frechet": frechet}
