"""hfldm.eval.swd: the Laplacian pyramid inverts exactly, SW_1 and the Fréchet distance have their closed
forms, and blur raises the finest level's distance."""

import pytest
import torch

from hfldm.eval.swd import frechet_distance, laplacian_pyramid, reconstruct, sliced_wasserstein, swd


def test_laplacian_pyramid_levels_and_exact_inverse():
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    levels = laplacian_pyramid(x, min_size=16)
    assert [level.shape[-1] for level in levels] == [64, 32, 16]
    torch.testing.assert_close(reconstruct(levels), x, atol=1e-5, rtol=0)
    flat = torch.full((1, 3, 32, 32), 0.25)
    assert laplacian_pyramid(flat)[0].abs().max() < 1e-6  # a constant image has no detail band


def test_sliced_wasserstein_in_one_dimension_is_the_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1000, 1, generator=g)
    # in 1-D every unit direction is ±1 and W_1 between a set and its shifted copy is the shift
    assert sliced_wasserstein(a, a + 0.7, 8, g) == pytest.approx(0.7, abs=1e-6)
    assert sliced_wasserstein(a, a[torch.randperm(1000, generator=g)], 8, g) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="a, b"):
        sliced_wasserstein(a, a[:10], 8, g)


def test_frechet_distance_of_shifted_gaussians():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(20000, 4, generator=g), torch.randn(20000, 4, generator=g) * 2
    shift = torch.tensor([1.0, 0.0, -2.0, 0.5])
    # same covariance: the distance is ||μ_a − μ_b||²; I vs 4I: 4 × (1 + 4 − 2·2) = 4 more
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift.square().sum()), rel=1e-6)
    assert frechet_distance(a, b) == pytest.approx(4.0, abs=0.15)


def blur(x: torch.Tensor, times: int) -> torch.Tensor:
    for _ in range(times):
        x = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
    return x


def test_blur_raises_the_finest_level_distance_monotonically():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(64, 3, 32, 32, generator=g)
    other = torch.rand(64, 3, 32, 32, generator=g)
    same = swd(real, other, patches_per_image=32, directions=64, repeats=1, min_size=8)
    assert same["levels"] == [32, 16, 8]
    finest = [
        swd(real, blur(other, k), patches_per_image=32, directions=64, repeats=1, min_size=8) for k in (1, 2)
    ]
    assert same["swd"][0] < finest[0]["swd"][0] < finest[1]["swd"][0]
    assert same["frechet"][0] < finest[0]["frechet"][0] < finest[1]["frechet"][0]
    with pytest.raises(ValueError, match="image shapes differ"):
        swd(real, other[..., :16, :16])
