"""Plot a training run's logged loss (tensorboard scalars in <run>/logs) to a PNG.

python training/plot_loss.py runs/ldm-emoji32 --tag train/loss --out docs/ldm_loss.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def read_scalars(run: Path, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of `tag` over every event file under run/logs, sorted by step."""
    steps, values = [], []
    for events in sorted((run / "logs").rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            for e in acc.Scalars(tag):
                steps.append(e.step)
                values.append(e.value)
    if not steps:
        raise ValueError(f"--tag: no scalar {tag!r} under {run / 'logs'}")
    order = np.argsort(steps, kind="stable")
    return np.asarray(steps)[order], np.asarray(values)[order]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="training output_dir")
    parser.add_argument("--tag", default="train/loss", help="scalar to plot")
    parser.add_argument("--out", required=True, help="PNG to write")
    args = parser.parse_args(argv)
    steps, values = read_scalars(Path(args.run), args.tag)
    window = max(1, len(values) // 20)
    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot(steps, values, alpha=0.3, label=args.tag)
    ax.plot(steps[window - 1 :], smooth, label=f"moving mean ({window} points)")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(args.tag)
    ax.set_yscale("log")
    ax.legend()
    ax.set_title(Path(args.run).name)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}: {args.tag} from {values[:window].mean():.4f} to {values[-window:].mean():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
