"""The `hfldm` sub-commands (see `hfldm.cli`) and the argument checks they share."""

from __future__ import annotations

import argparse
import math


def check_finite(args: argparse.Namespace, *names: str) -> None:
    """ValueError naming the first --flag among `names` whose (float) value is nan or inf."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and not math.isfinite(value):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
