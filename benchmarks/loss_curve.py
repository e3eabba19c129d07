"""A training run's logged scalar (tensorboard events under OUTPUT_DIR/logs), as a figure: the raw points
and a running mean. docs/few_step.md's distillation loss curve:

    python benchmarks/loss_curve.py --run runs/emoji32-lcm --out docs/few_step_loss.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hfldm.eval.outputs import run_benchmark


def read_scalar(run: Path, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of `tag` from every tensorboard event file under RUN/logs, sorted by step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not (run / "logs").is_dir():
        raise SystemExit(
            f"--run: {run} has no logs/ folder (a training output folder, report_to tensorboard)"
        )
    points = {}
    for folder in sorted({p.parent for p in (run / "logs").rglob("events.out.tfevents.*")}):
        events = EventAccumulator(str(folder))
        events.Reload()
        if tag in events.Tags()["scalars"]:
            points |= {e.step: e.value for e in events.Scalars(tag)}  # a resumed run's later value wins
    if not points:
        raise SystemExit(f"--tag: no scalar {tag!r} under {run / 'logs'}")
    steps = np.array(sorted(points))
    return steps, np.array([points[s] for s in steps])


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    kernel = np.ones(min(window, len(values))) / min(window, len(values))
    return np.convolve(values, kernel, mode="valid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="a training output folder")
    parser.add_argument("--tag", default="train/loss")
    parser.add_argument("--window", type=int, default=10, help="points in the running mean")
    parser.add_argument("--out", required=True, type=Path, help="a .png")
    args = parser.parse_args()
    steps, values = read_scalar(args.run, args.tag)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=120)
    ax.plot(steps, values, ".", ms=3, alpha=0.4, label=args.tag)
    smooth = running_mean(values, args.window)
    ax.plot(
        steps[len(steps) - len(smooth) :], smooth, label=f"running mean of {min(args.window, len(values))}"
    )
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(args.tag)
    ax.set_title(args.run.name, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out)
    first, last = values[: args.window].mean(), values[-args.window :].mean()
    print(
        f"{args.tag}: {len(values)} points, steps {steps[0]}-{steps[-1]}, mean of the first / last "
        f"{args.window}: {first:.4g} / {last:.4g}; wrote {args.out}"
    )


if __name__ == "__main__":
    run_benchmark(main)
