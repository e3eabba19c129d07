"""nan/inf checks shared by model loading, training and evaluation.

A model folder whose weights hold nan or inf (a diverged run) still loads, with a RuntimeWarning naming
the folder and how many weight tensors are affected, so it can be inspected; everything it generates is
nan, which `hfldm eval` then refuses to score.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch


def nonfinite_tensors(tensors: Iterable[torch.Tensor | None]) -> int:
    """Number of the (non-None) `tensors` that hold a nan or an inf."""
    return sum(int(not torch.isfinite(t).all()) for t in tensors if t is not None)


def nonfinite_rows(x: torch.Tensor) -> int:
    """Number of entries along dim 0 of `x` (images, samples) that hold a nan or an inf."""
    return int((~torch.isfinite(x.flatten(1))).any(1).sum()) if len(x) else 0


class WarnNonFiniteWeights:
    """Mixin for ModelMixin classes: `from_pretrained` warns when the loaded weights are not all finite."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        tensors = list(model.state_dict().values())
        if bad := nonfinite_tensors(tensors):
            warnings.warn(
                f"{cls.__name__} from {pretrained_model_name_or_path}: {bad} of {len(tensors)} weight "
                "tensors hold nan/inf (a diverged training run?); what it computes will not be finite",
                RuntimeWarning,
                stacklevel=2,
            )
        return model
