"""Autoencoder metrics: PSNR, SSIM (torchmetrics), rFID, and VQ codebook usage / perplexity.

Images are float tensors (N, 3, H, W) in `value_range`, (0, 1) by default or (-1, 1); both are mapped to
[0, 1] first, so PSNR's peak is 1 and the numbers do not depend on the range the caller works in.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from hfldm.autoencoders.regularizers import codebook_perplexity
from hfldm.eval.features import to_unit_range
from hfldm.eval.fid import compute_fid_kid


def _pair(reconstructions: torch.Tensor, targets: torch.Tensor, value_range) -> tuple[torch.Tensor, ...]:
    # float64: SSIM's variances E[x^2] - E[x]^2 lose ~1e-4 to cancellation in float32
    x_hat, x = (
        to_unit_range(reconstructions, value_range).double(),
        to_unit_range(targets, value_range).double(),
    )
    if x_hat.shape != x.shape:
        raise ValueError(f"reconstructions: shape {tuple(x_hat.shape)} differs from targets {tuple(x.shape)}")
    return x_hat, x


def psnr(
    reconstructions: torch.Tensor, targets: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)
) -> float:
    """Mean over images of PSNR = 10 log10(1 / MSE) in dB, on [0, 1] images; inf if all are identical."""
    x_hat, x = _pair(reconstructions, targets, value_range)
    per_image = peak_signal_noise_ratio(x_hat, x, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return float(per_image.mean())


def ssim(
    reconstructions: torch.Tensor, targets: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)
) -> float:
    """Mean SSIM (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) on [0, 1] images."""
    x_hat, x = _pair(reconstructions, targets, value_range)
    return float(structural_similarity_index_measure(x_hat, x, data_range=1.0))


def rfid(
    reconstructions: torch.Tensor,
    targets: torch.Tensor,
    feature_extractor: int | nn.Module,
    value_range: tuple[float, float] = (0.0, 1.0),
    kid_subset_size: int = 100,
) -> dict:
    """Reconstruction FID: `compute_fid_kid` of the originals (real) against their reconstructions (fake).

    Returns the same dict as `compute_fid_kid`, with "rfid" as an alias of "fid".
    """
    result = compute_fid_kid(
        targets, reconstructions, feature_extractor, kid_subset_size=kid_subset_size, value_range=value_range
    )
    return {"rfid": result["fid"], **result}


def codebook_usage(indices: torch.Tensor, codebook_size: int) -> dict:
    """Usage of a VQ codebook from the code `indices` (any shape, ints in [0, codebook_size)).

    Returns {"perplexity": exp(H(p)) with p the empirical code frequencies (1 = one code, codebook_size =
    uniform use), "used_codes": number of codes used at least once, "usage": used_codes / codebook_size}.
    """
    if not isinstance(codebook_size, int) or codebook_size < 1:
        raise ValueError(f"codebook_size: expected a positive int, got {codebook_size!r}")
    flat = torch.as_tensor(indices).reshape(-1).long()
    if flat.numel() == 0 or flat.min() < 0 or flat.max() >= codebook_size:
        raise ValueError(f"indices: expected a non-empty tensor of ints in [0, {codebook_size})")
    used = int((torch.bincount(flat, minlength=codebook_size) > 0).sum())
    perplexity = float(codebook_perplexity(flat, codebook_size))  # exp(H(p)), the quantiser's own figure
    return {"perplexity": perplexity, "used_codes": used, "usage": used / codebook_size}
