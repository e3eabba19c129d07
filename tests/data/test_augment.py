"""Augmentation of training batches (hfldm.data.augment) and the SR degradation mix: exact geometry, range,
per-sample seeded draws (so a resumed run augments as the uninterrupted one)."""

from __future__ import annotations

import pytest
import torch

from hfldm.data.arguments import DataArguments
from hfldm.data.augment import AUGMENT_STREAM, Augmentation, AugmentDraws, flippable
from hfldm.training.degradation_mix import DegradationMix, downsample, jpeg
from hfldm.training.randomness import sample_generators
from hfldm.training.superres import SuperResolutionTask, bicubic_down


def disc(size: int = 32, radius: float = 8.0) -> torch.Tensor:
    """(1, 3, size, size): a dark disc (−1) centred in a white (+1) frame."""
    c = torch.arange(size) + 0.5 - size / 2
    inside = (c[:, None] ** 2 + c[None, :] ** 2) < radius**2
    return torch.where(inside, -1.0, 1.0).expand(1, 3, size, size).clone()


def draws(scale: float, dx: float = 0.0, dy: float = 0.0, corner=(0, 0)) -> AugmentDraws:
    return AugmentDraws(torch.tensor([scale]), torch.tensor([[dx, dy]]), torch.tensor([corner]))


def ink(image: torch.Tensor) -> tuple[float, float, float]:
    """(area in pixels, centroid x, centroid y) of the darkness (1 − x)/2 of channel 0."""
    weight = (1 - image[0, 0]) / 2
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    area = weight.sum()
    return float(area), float((weight * xs).sum() / area), float((weight * ys).sum() / area)


def test_identity_is_exact_and_a_scale_keeps_the_image_centred_and_in_range():
    x = disc()
    torch.testing.assert_close(Augmentation().apply(x, draws(1.0)), x, rtol=0, atol=1e-6)
    area, cx, cy = ink(x)
    for s in (0.7, 0.87, 1.15):
        y = Augmentation(0.7, 1.15).apply(x, draws(s))
        assert y.min() >= -1 and y.max() <= 1 and y.shape == x.shape
        area_s, cx_s, cy_s = ink(y)
        assert cx_s == pytest.approx(cx, abs=0.05) and cy_s == pytest.approx(cy, abs=0.05)  # centred
        assert area_s / area == pytest.approx(s**2, rel=0.03)  # the content is s times as large per side
        assert (y[..., 0, :] == 1).all() and (y[..., :, 0] == 1).all()  # white border kept / padded


def test_a_shift_moves_by_whole_pixels_with_white_or_edge_padding():
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    y = Augmentation(max_shift=4).apply(x, draws(1.0, dx=4, dy=-2))
    torch.testing.assert_close(y[..., :30, 4:], x[..., 2:, :28], rtol=0, atol=1e-5)
    assert (y[..., :, :4] == 1).all() and (y[..., 30:, :] == 1).all()  # white where nothing was
    edge = Augmentation(max_shift=4, padding="edge").apply(x, draws(1.0, dx=4))
    torch.testing.assert_close(edge[..., :, :4], x[..., :, :1].expand(-1, -1, -1, 4), rtol=0, atol=1e-5)


def test_a_crop_cuts_the_drawn_corner():
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    crop = Augmentation(crop_size=16).apply(x, draws(1.0, corner=(5, 9)))
    torch.testing.assert_close(crop, x[..., 9:25, 5:21], rtol=0, atol=1e-6)
    assert Augmentation(crop_size=16).output_size(32) == 16
    with pytest.raises(ValueError, match="--crop_size: 64 is larger than --resolution 32"):
        Augmentation(crop_size=64).output_size(32)


def test_the_same_seed_gives_the_same_draw_per_sample():
    augment = Augmentation(0.7, 1.15, max_shift=4, crop_size=24)
    x = torch.rand(4, 3, 32, 32) * 2 - 1

    def run(images, step, indices):
        return augment(images, sample_generators(7, step, indices, AUGMENT_STREAM))

    whole = run(x, 3, [0, 1, 2, 3])
    torch.testing.assert_close(run(x, 3, [0, 1, 2, 3]), whole, rtol=0, atol=0)  # resume: same draw
    torch.testing.assert_close(run(x[2:], 3, [2, 3]), whole[2:], rtol=0, atol=0)  # per sample, any process
    assert not torch.equal(run(x, 4, [0, 1, 2, 3]), whole)  # another step, another draw
    d = augment.draw(sample_generators(7, 3, list(range(2000)), AUGMENT_STREAM), 32)
    assert 0.7 <= d.scale.min() < 0.72 and 1.13 < d.scale.max() <= 1.15  # U(0.7, 1.15)
    assert d.shift.abs().max() <= 4 and d.shift.abs().max() > 3.9
    assert d.corner.min() == 0 and d.corner.max() == 8  # every corner of the 9 x 9 possible


def test_bad_augmentation_flags_name_the_flag():
    for kwargs, flag in (
        ({"augment_scale_min": 1.2, "augment_scale_max": 1.0}, "--augment_scale_min"),
        ({"augment_shift": -1}, "--augment_shift"),
        ({"augment_padding": "black"}, "--augment_padding"),
        ({"crop_size": 0}, "--crop_size"),
    ):
        with pytest.raises(ValueError, match=flag):
            DataArguments(train_data_dir="x", **kwargs).augmentation()


def test_flips_only_where_the_caption_survives_a_mirror():
    captions = ["cat face", "right arrow", "flag: France", "keycap: 1", "left-facing fist", "rocket", ""]
    assert flippable(captions, 7).tolist() == [True, False, False, False, False, True, True]
    assert flippable(None, 3).tolist() == [True, True, True]


def test_degradation_mix_draws_kernels_and_jpeg_and_off_is_bicubic():
    gens = sample_generators(0, 0, list(range(600)), 2)
    picks = [DegradationMix(enabled=True).draw(g) for g in gens]
    kernels = torch.bincount(torch.tensor([k for k, _ in picks]), minlength=3) / 600
    assert torch.allclose(kernels, torch.full((3,), 1 / 3), atol=0.06)
    qualities = [q for _, q in picks if q is not None]
    assert 0.42 < len(qualities) / 600 < 0.58 and min(qualities) >= 30 and max(qualities) == 95
    assert DegradationMix().draw(gens[0]) == (0, None)

    x = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(downsample(x, 2, 2), torch.nn.functional.avg_pool2d(x, 2))  # area = box mean
    assert torch.equal(downsample(x, 2, 0), bicubic_down(x, 2))
    smooth = downsample(disc(), 2, 0)[0]
    assert (jpeg(smooth, 95) - smooth).abs().mean() < (jpeg(smooth, 30) - smooth).abs().mean() < 0.1


def test_superres_task_with_the_mix_keeps_the_draws_without_it():
    """The mix's draws come after the blur / noise draws: its off switch leaves y as it was."""
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    off = SuperResolutionTask(2, 4, noise_std=0.1, blur_sigma=1.0, seed=0, process_index=0)
    on = SuperResolutionTask(2, 4, 0.1, 1.0, seed=0, process_index=0, mix=DegradationMix(enabled=True))
    y_off, y_on = (t.low_res({"pixel_values": x}, micro_step=1, flip=None) for t in (off, on))
    assert y_on.shape == y_off.shape == (4, 3, 8, 8) and y_on.min() >= -1 and y_on.max() <= 1
    assert not torch.equal(y_on, y_off)
    torch.testing.assert_close(off.low_res({"pixel_values": x}, 1, None), y_off, rtol=0, atol=0)
