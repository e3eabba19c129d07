"""Reference figures that give generated-sample metrics a scale: the real-vs-real floor and the real ceiling.

Floor: FID / KID of held-out real images against training real images; a generator cannot be expected to do
better with the same number of samples and the same feature network. Ceiling: the text–image scores of the
real held-out images with their own captions (retrieval top-1 / top-5 and CLIP-score), beside chance.
"""

from __future__ import annotations

import torch
from torch import nn

from hfldm.eval.degrade import add_gaussian_noise, gaussian_blur
from hfldm.eval.features import TextImageFeatures
from hfldm.eval.fid import compute_fid_kid
from hfldm.eval.retrieval import clip_score, retrieval_accuracy
from hfldm.eval.subsets import skin_tone_variant_mask


def real_ceiling(model, images: torch.Tensor, captions: list[str], train_captions: list[str]) -> dict:
    """Text–image scores of real held-out images (N, 3, H, W) in [0, 1] with their captions.

    Returns {"all": retrieval dict, "not_skin_tone_variant": retrieval dict of the images that are not
    skin-tone variants of training emoji, ranked among the same candidates (all of `captions`),
    "clip_score": float, "num_skin_tone_variants": int}.
    """
    variant = torch.tensor(skin_tone_variant_mask(captions, train_captions))
    unseen = [c for c, v in zip(captions, variant.tolist()) if not v]
    return {
        "all": retrieval_accuracy(model, images, captions),
        "not_skin_tone_variant": retrieval_accuracy(model, images[~variant], unseen, candidates=captions),
        "clip_score": clip_score(model, images, captions),
        "num_skin_tone_variants": int(variant.sum()),
    }


# name -> degradation of [0, 1] images; noise std and blur std in [0, 1] units and pixels
DEGRADATIONS = {
    "noise_0.1": lambda x: add_gaussian_noise(x, 0.1),
    "noise_0.2": lambda x: add_gaussian_noise(x, 0.2),
    "blur_1px": lambda x: gaussian_blur(x, 1.0),
    "blur_2px": lambda x: gaussian_blur(x, 2.0),
}


def degraded_scale(
    train_images: torch.Tensor,
    test_images: torch.Tensor,
    features: int | nn.Module,
    kid_subset_size: int = 100,
) -> dict:
    """Returns {name: compute_fid_kid(train real, degraded test real)} for each of `DEGRADATIONS`."""
    return {
        name: compute_fid_kid(train_images, degrade(test_images), features, kid_subset_size=kid_subset_size)
        for name, degrade in DEGRADATIONS.items()
    }


def reference_figures(
    model,
    train_images: torch.Tensor,
    test_images: torch.Tensor,
    test_captions: list[str],
    train_captions: list[str],
    feature_extractor: int | nn.Module | None = None,
    kid_subset_size: int = 100,
) -> dict:
    """Floor and ceiling for the emoji split; images (N, 3, H, W) in [0, 1].

    feature_extractor: default `TextImageFeatures(model)`; 2048 for Inception (needs torch-fidelity weights).
    Returns {"floor": compute_fid_kid(train real, test real), "ceiling": real_ceiling(...),
    "scale": degraded_scale(...)}.
    """
    features = TextImageFeatures(model) if feature_extractor is None else feature_extractor
    return {
        "floor": compute_fid_kid(train_images, test_images, features, kid_subset_size=kid_subset_size),
        "ceiling": real_ceiling(model, test_images, test_captions, train_captions),
        "scale": degraded_scale(train_images, test_images, features, kid_subset_size),
    }
