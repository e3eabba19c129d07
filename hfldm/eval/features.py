"""Image value ranges and the feature networks behind FID / KID.

Every evaluation function in `hfldm.eval` takes images as float tensors of shape (N, 3, H, W). Their range is
explicit: `value_range=(0, 1)` (the default) or `value_range=(-1, 1)` (what the autoencoders and the pipeline
produce before post-processing); `to_unit_range` maps both to [0, 1].

A feature network is either
- the int 2048: torchmetrics' standard Inception-v3 pool3 features (needs `torch-fidelity` and its weights,
  i.e. internet on first use), named "inception-v3-compat/pool3-2048";
- an `nn.Module` with a `name` (str) and a `num_features` (int) attribute whose forward maps [0, 1] images
  (N, 3, H, W) to features (N, num_features), e.g. `TextImageFeatures`, the project's own offline network.
Results always carry `feature_network_name(...)`, so numbers from two networks are never compared.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

INCEPTION_FEATURES = 2048  # torchmetrics' default: Inception-v3 pool3 (torch-fidelity weights)


def to_unit_range(images: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Return `images` (N, 3, H, W) as float32 in [0, 1], mapped linearly from `value_range` and clamped."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images: expected a float tensor of shape (N, 3, H, W), got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"images: expected a float tensor, got dtype {images.dtype}")
    low, high = value_range
    if not high > low:
        raise ValueError(f"value_range: expected (low, high) with high > low, got {value_range}")
    return ((images.float() - low) / (high - low)).clamp(0.0, 1.0)


def weights_fingerprint(module: nn.Module, length: int = 10) -> str:
    """Return `length` hex digits of the sha256 of `module`'s state dict (names, shapes, fp32 values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:length]


def feature_network_name(feature: int | nn.Module) -> str:
    """Return the name that every FID/KID result carries for the feature network `feature`."""
    if isinstance(feature, int):
        return f"inception-v3-compat/pool3-{feature}"
    if not isinstance(getattr(feature, "name", None), str):
        raise ValueError("feature_extractor: a custom feature network needs a `name` (str) attribute")
    return feature.name


class TextImageFeatures(nn.Module):
    """The image tower of a `TextImageModel` as a FID/KID feature network (offline Inception replacement).

    forward: images (N, 3, H, W) in [0, 1] -> pooled CNN features (N, num_features), before the projection
    head, as Inception's pool3 features are taken before its classifier.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.num_features = int(model.config.block_out_channels[-1])
        self.name = f"hfldm-textimage@{weights_fingerprint(model)}"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.image_features(images).float()
