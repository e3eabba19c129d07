"""The arithmetic of benchmarks/robustness.py (hfldm.eval.robustness): reframing, baselines, masked errors,
and the count of cells that meet #30's targets."""

from __future__ import annotations

import math

import pytest
import torch

from hfldm.eval.robustness import (
    lanczos_up,
    masked_rmse,
    mean_colour_fill,
    reframe,
    rmse_to_psnr,
    shift_pattern,
    target_counts,
)


def square(size: int = 64, side: int = 32) -> torch.Tensor:
    """(1, 3, size, size): a black side² square centred on white."""
    x = torch.ones(1, 3, size, size)
    lo = (size - side) // 2
    x[..., lo : lo + side, lo : lo + side] = -1
    return x


def ink_box(image: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the pixels darker than mid-grey, channel 0, inclusive."""
    rows, cols = torch.nonzero(image[0, 0] < 0, as_tuple=True)
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def test_reframe_scales_about_the_centre_and_shifts_by_whole_pixels():
    x = square()
    assert torch.equal(reframe(x, 1.0, torch.zeros(1, 2, dtype=torch.long)), x)
    shrunk = reframe(x, 0.75, torch.zeros(1, 2, dtype=torch.long))  # the 64 px frame resized to 48 px
    assert shrunk.shape == x.shape and shrunk.min() >= -1 and shrunk.max() <= 1
    assert ink_box(shrunk) == (20, 43, 20, 43)  # a 24 px square, still centred
    assert (shrunk[..., :8, :] == 1).all()  # white padding where the frame was shrunk
    moved = reframe(x, 1.0, torch.tensor([[4, -4]]))
    assert ink_box(moved) == (12, 43, 20, 51)  # dx = +4 right, dy = −4 up
    grown = reframe(x, 1.5, torch.tensor([[0, 0]]))
    assert ink_box(grown) == (8, 55, 8, 55)  # 48 px, centred, the frame's edge cut off


def test_shift_pattern_cycles_the_four_diagonals():
    assert shift_pattern(5, 4).tolist() == [[4, 4], [-4, 4], [4, -4], [-4, -4], [4, 4]]
    assert shift_pattern(3, 0).abs().sum() == 0


def test_baselines_and_masked_errors():
    y = torch.rand(2, 3, 8, 8) * 2 - 1
    up = lanczos_up(y, 2)
    assert up.shape == (2, 3, 16, 16) and up.min() >= -1 and up.max() <= 1
    flat = torch.full((1, 3, 8, 8), 0.2)
    assert torch.allclose(lanczos_up(flat, 2), torch.full((1, 3, 16, 16), 0.2), atol=1 / 127.5)

    x = torch.zeros(1, 3, 4, 4)
    x[..., :2, :] = 1.0  # top half white, bottom half mid-grey
    masks = torch.zeros(1, 1, 4, 4)
    masks[..., 3, :] = 1  # the bottom row is masked
    filled = mean_colour_fill(x, masks)
    assert torch.allclose(filled[..., 3, :], torch.full((1, 3, 4), 2 / 3))  # mean of 8 ones and 4 zeros
    assert torch.equal(filled[..., :3, :], x[..., :3, :])
    # error 2/3 in [-1, 1] is 1/3 of the [0, 1] range: RMSE 1/3, PSNR 20 log10 3
    assert masked_rmse(filled, x, masks) == pytest.approx(1 / 3)
    assert rmse_to_psnr(1 / 3) == pytest.approx(20 * math.log10(3))
    assert rmse_to_psnr(0.0) == float("inf")


def test_target_counts():
    sr = [
        {"psnr_sr": 26.0, "psnr_bicubic": 25.5, "swd_sr": 90.0, "swd_bicubic": 280.0},  # +0.5 dB: meets
        {"psnr_sr": 26.0, "psnr_bicubic": 25.6, "swd_sr": 300.0, "swd_bicubic": 280.0},
    ]
    inpaint = [{"rmse_model": 0.16, "rmse_mean": 0.2}, {"rmse_model": 0.18, "rmse_mean": 0.2}]
    assert target_counts(sr, inpaint) == {
        "SR PSNR >= bicubic + 0.5 dB": "1 / 2",
        "SR SWD < bicubic": "1 / 2",
        "inpainting RMSE <= 0.85 x mean colour": "1 / 2",
    }
    assert target_counts([], inpaint) == {"inpainting RMSE <= 0.85 x mean colour": "1 / 2"}


def test_mean_pairwise_distance():
    from hfldm.eval.diversity import mean_pairwise_distance

    same = torch.full((6, 3, 4, 4), 0.3)
    assert mean_pairwise_distance(same) == 0.0
    three = torch.stack([torch.zeros(3, 2, 2), torch.ones(3, 2, 2), torch.full((3, 2, 2), 0.5)])
    assert mean_pairwise_distance(three) == pytest.approx((1 + 0.5 + 0.5) / 3)  # pairs (0,1), (0,2), (1,2)
    with pytest.raises(ValueError, match="images: need at least 2"):
        mean_pairwise_distance(same[:1])
