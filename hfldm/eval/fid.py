"""FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) via torchmetrics, with pluggable feature networks.

FID = ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2)), the Frechet distance of Gaussians fitted to the
features of real and generated images; KID is the unbiased MMD^2 with the cubic kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets (mean and std). Both are only comparable between
results that name the same `feature_network`.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from hfldm.eval.features import feature_network_name, to_unit_range
from hfldm.nn.finite import nonfinite_rows


def build_metrics(
    feature_extractor: int | nn.Module, kid_subset_size: int, kid_subsets: int
) -> tuple[FrechetInceptionDistance, KernelInceptionDistance]:
    """Return (FID, KID) torchmetrics objects that take float images in [0, 1] (`normalize=True`).

    `feature_extractor` is 2048 (Inception pool3, needs torch-fidelity) or an nn.Module with `num_features`.
    With a custom module torchmetrics passes the [0, 1] floats to it unchanged.
    """
    if isinstance(feature_extractor, nn.Module) and not isinstance(
        getattr(feature_extractor, "num_features", None), int
    ):
        raise ValueError("feature_extractor: a custom feature network needs a `num_features` (int) attribute")
    fid = FrechetInceptionDistance(feature=feature_extractor, normalize=True)
    kid = KernelInceptionDistance(
        feature=feature_extractor, subsets=kid_subsets, subset_size=kid_subset_size, normalize=True
    )
    return fid, kid


def compute_fid_kid(
    real_images: torch.Tensor,
    fake_images: torch.Tensor,
    feature_extractor: int | nn.Module,
    kid_subset_size: int = 100,
    kid_subsets: int = 50,
    value_range: tuple[float, float] = (0.0, 1.0),
    batch_size: int = 256,
    seed: int = 0,
) -> dict:
    """FID and KID between two image sets.

    real_images: (N, 3, H, W), fake_images: (M, 3, H, W), floats in `value_range`; N, M >= 2 and
    >= `kid_subset_size`. KID's random subsets are drawn under `seed`, so a result is reproducible.
    Returns {"fid", "kid_mean", "kid_std"} (floats) with "feature_network", "num_real", "num_fake",
    "kid_subset_size", "kid_subsets".
    """
    real, fake = to_unit_range(real_images, value_range), to_unit_range(fake_images, value_range)
    for name, images in (("real_images", real_images), ("fake_images", fake_images)):
        if bad := nonfinite_rows(images):  # the matrix square root would crash in LAPACK, not raise
            raise ValueError(f"{name}: {bad} of {len(images)} images hold nan/inf values")
    if min(len(real), len(fake)) < 2:
        raise ValueError("real_images, fake_images: FID needs at least 2 images in each set")
    if not 2 <= kid_subset_size <= min(len(real), len(fake)):
        raise ValueError(
            f"kid_subset_size: must be in [2, {min(len(real), len(fake))}] (size of the smaller set), "
            f"got {kid_subset_size}"
        )
    with warnings.catch_warnings():  # KID warns that it keeps all features: that is what it needs
        warnings.simplefilter("ignore", UserWarning)
        fid, kid = build_metrics(feature_extractor, kid_subset_size, kid_subsets)
    for images, is_real in ((real, True), (fake, False)):
        for batch in images.split(batch_size):
            fid.update(batch, real=is_real)
            kid.update(batch, real=is_real)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {
        "fid": float(fid.compute()),
        "kid_mean": float(kid_mean),
        "kid_std": float(kid_std),
        "feature_network": feature_network_name(feature_extractor),
        "num_real": len(real),
        "num_fake": len(fake),
        "kid_subset_size": kid_subset_size,
        "kid_subsets": kid_subsets,
    }
