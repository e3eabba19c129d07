"""Where a benchmark writes OUT.json, OUT.md and OUT.png for its --out OUT."""

from __future__ import annotations

from pathlib import Path


def output_file(out: str | Path, suffix: str) -> Path:
    """OUT + suffix beside OUT, dots in OUT's name kept: `Path.with_suffix` would turn "sweep_w1.5" into
    "sweep_w1.json" and write over another run's results."""
    out = Path(out)
    return out.parent / f"{out.name}{suffix}"
