"""scikit-learn's 8x8 handwritten digits as a tiny class-conditional image dataset (for fast tests)."""

from __future__ import annotations

import datasets
import numpy as np
from PIL import Image


def load_digits_dataset(resolution: int = 16, limit: int | None = None) -> datasets.Dataset:
    """Returns a Dataset of 1,797 rows (or `limit`): image (RGB, resolution x resolution), label, text.

    Digits are dark ink on white; `label` is a ClassLabel "0".."9" and `text` reads "digit 3".
    """
    from sklearn.datasets import load_digits

    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    digits = load_digits()
    images, targets = digits.images[:limit], digits.target[:limit]  # (N, 8, 8) in 0..16, (N,)
    pixels = np.round(255.0 - images * (255.0 / 16.0)).astype(np.uint8)
    rows = [
        Image.fromarray(p).resize((resolution, resolution), Image.Resampling.BICUBIC).convert("RGB")
        for p in pixels
    ]
    features = datasets.Features(
        image=datasets.Image(),
        label=datasets.ClassLabel(names=[str(d) for d in range(10)]),
        text=datasets.Value("string"),
    )
    columns = {"image": rows, "label": targets.tolist(), "text": [f"digit {d}" for d in targets]}
    return datasets.Dataset.from_dict(columns, features=features)
