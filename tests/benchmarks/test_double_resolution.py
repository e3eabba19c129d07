"""benchmarks/double_resolution.py's arithmetic and step (#20 experiment 2; the long runs are not tests): the
per-pair ratio, the upsampling that puts both models on one size, the 64 px detail distance, and that the
timed training step is a real one (AdamW moves the U-Net's and τ_θ's weights)."""

from __future__ import annotations

import pytest
import torch
from _ldm_fixtures import CAPTIONS, text_pipeline
from _scripts import load_script


@pytest.fixture
def bench(monkeypatch):
    return load_script("benchmarks/double_resolution.py", monkeypatch)


def test_ratio_is_the_median_of_per_pair_ratios_not_the_ratio_of_medians(bench):
    pairs = [{"a": (1.0, 0), "b": (2.0, 0)}, {"a": (3.0, 0), "b": (1.0, 0)}, {"a": (2.0, 0), "b": (4.0, 0)}]
    summary = bench.ratio_summary(pairs, "a", "b")
    assert summary["ratio"] == 0.5  # per pair 0.5, 3, 0.5; medians 2 / 2 would say 1
    assert summary["seconds"] == {"a": 2.0, "b": 2.0} and summary["pairs_kept"] == 3


def test_upsample_keeps_same_size_replicates_nearest_and_clamps_bicubic(bench):
    x = torch.rand(2, 3, 4, 4)
    assert bench.upsample(x, 4, "bicubic") is x
    up = bench.upsample(x, 8, "nearest")
    assert up.shape == (2, 3, 8, 8)
    assert torch.equal(up[..., ::2, ::2], x) and torch.equal(up[..., 1::2, 1::2], x)
    edges = torch.zeros(1, 3, 4, 4)
    edges[..., ::2] = 1.0  # a stripe pattern overshoots under bicubic interpolation
    out = bench.upsample(edges, 8, "bicubic")
    assert out.min() >= 0 and out.max() <= 1


def test_detail_distance_is_small_within_a_distribution_and_grows_with_lost_detail(bench):
    g = torch.Generator().manual_seed(0)
    real, other = torch.rand(2, 24, 3, 64, 64, generator=g)  # two draws of one distribution
    same = bench.detail_figures(real, other)
    half = torch.nn.functional.avg_pool2d(other, 2)  # a 32 px model's images: the finest band is gone
    lost = bench.detail_figures(real, half)
    assert same["level_px"] == lost["level_px"] == 64
    assert lost["swd"] > 5 * same["swd"] and lost["frechet"] > 5 * same["frechet"]


def test_timed_step_trains_unet_and_text_encoder(bench):
    pipe = text_pipeline()
    latents = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    before = [p.detach().clone() for p in (*pipe.unet.parameters(), *pipe.text_encoder.parameters())]
    step = bench.step_function(pipe, CAPTIONS[:4], latents)
    step()
    after = [p.detach() for p in (*pipe.unet.parameters(), *pipe.text_encoder.parameters())]
    changed = sum(not torch.equal(a, b) for a, b in zip(before, after))
    assert changed > 0.9 * len(before)  # AdamW moved (nearly) every tensor, τ_θ's among them
    n_unet = len(list(pipe.unet.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before[n_unet:], after[n_unet:]))
