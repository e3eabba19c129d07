"""Evaluation: FID/KID with a named feature network, reconstruction metrics, a text–image score.

Images are float tensors (N, 3, H, W) in [0, 1] unless a `value_range=(-1, 1)` says otherwise.
Public names are imported lazily (torchmetrics and transformers are slow to import). See docs/eval.md.
"""

import importlib

_EXPORTS = {
    "compute_fid_kid": "hfldm.eval.fid",
    "INCEPTION_FEATURES": "hfldm.eval.features",
    "TextImageFeatures": "hfldm.eval.features",
    "to_unit_range": "hfldm.eval.features",
    "psnr": "hfldm.eval.reconstruction",
    "ssim": "hfldm.eval.reconstruction",
    "rfid": "hfldm.eval.reconstruction",
    "codebook_usage": "hfldm.eval.reconstruction",
    "TextImageModel": "hfldm.eval.text_image",
    "clip_score": "hfldm.eval.retrieval",
    "retrieval_accuracy": "hfldm.eval.retrieval",
    "retrieval_from_embeddings": "hfldm.eval.retrieval",
    "skin_tone_variant_mask": "hfldm.eval.subsets",
    "reference_figures": "hfldm.eval.reference",
    "load_emoji_split": "hfldm.eval.emoji_split",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hfldm.eval' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
