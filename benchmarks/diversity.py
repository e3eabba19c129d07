"""Diversity of the text model (#30): how much its seeds of one prompt differ, next to how much the real
drawings of that name differ across styles.

    python benchmarks/diversity.py --model models/hfldm-emoji --data data/emoji-styles/32 --out docs/diversity

Names: the first --names held-out and the first --names training names that at least two styles draw (so
the real statistic exists). For each, --seeds samples of the bare name (DDIM --steps, guidance w) and the
real images of the name in every style; the statistic is the mean pairwise mean-absolute per-pixel
difference in [0, 1] (`hfldm.eval.diversity`). #30's target: the model's ≥ 0.5 × the real images'.
Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import datasets
import numpy as np
import torch

from hfldm.eval.diversity import mean_pairwise_distance
from hfldm.eval.outputs import output_file, run_benchmark
from hfldm.pipelines.loading import load_pipeline
from hfldm.resources import bundled


def real_sets(rows: datasets.Dataset, names: int) -> tuple[list[str], list[torch.Tensor]]:
    """The first `names` captions drawn by >= 2 styles, and their images (K, 3, R, R) in [0, 1]."""
    by_name: dict[str, list[int]] = {}
    for i, text in enumerate(rows["text"]):
        by_name.setdefault(text, []).append(i)
    picked = [(t, idx) for t, idx in by_name.items() if len(idx) >= 2][:names]
    images = []
    for _, idx in picked:
        arrays = np.stack(
            [np.asarray(im.convert("RGB"), dtype=np.float32) for im in rows.select(idx)["image"]]
        )
        images.append(torch.from_numpy(arrays).permute(0, 3, 1, 2) / 255)
    return [t for t, _ in picked], images


@torch.no_grad()
def model_sets(pipe, captions: list[str], seeds: int, steps: int, guidance: float) -> list[torch.Tensor]:
    """`seeds` samples per caption (generators seeded 0 .. seeds − 1), each (seeds, 3, R, R) in [0, 1]."""
    out = []
    for caption in captions:
        generators = [torch.Generator().manual_seed(s) for s in range(seeds)]
        images = pipe(
            [caption] * seeds,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=generators,
            output_type="pt",
        ).images
        out.append(images.float().cpu())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(bundled("hfldm-emoji")))
    parser.add_argument("--data", default="data/emoji-styles/32", help="a multi-style save_to_disk folder")
    parser.add_argument("--names", type=int, default=64, help="held-out names, and as many training names")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--guidance-scale", type=float, default=3.0)
    parser.add_argument("--out", default="docs/diversity")
    args = parser.parse_args()
    if args.names <= 0 or args.seeds < 2:
        raise ValueError(f"--names / --seeds: need >= 1 name and >= 2 seeds, got {args.names}, {args.seeds}")
    data = datasets.load_from_disk(args.data)
    pipe = load_pipeline(args.model, "--model")
    pipe.set_progress_bar_config(disable=True)
    start, results = time.perf_counter(), {}
    for split in ("test", "train"):
        captions, real = real_sets(data[split], args.names)
        samples = model_sets(pipe, captions, args.seeds, args.steps, args.guidance_scale)
        model_d = [mean_pairwise_distance(s) for s in samples]
        real_d = [mean_pairwise_distance(r) for r in real]
        results[split] = {
            "names": len(captions),
            "model": float(np.mean(model_d)),
            "real": float(np.mean(real_d)),
            "ratio": float(np.mean(model_d) / np.mean(real_d)),
            "per_name": {c: {"model": m, "real": r} for c, m, r in zip(captions, model_d, real_d)},
        }
    header = (
        f"{args.model}, {args.seeds} seeds per bare name, {args.steps} DDIM steps, "
        f"w = {args.guidance_scale}; "
        f"real images of the same names across the styles of {args.data}; "
        f"{(time.perf_counter() - start) / 60:.1f} min on this machine"
    )
    columns = (
        "| names | n | model: mean pairwise abs. difference ×255 | real, across styles ×255 | model / real |"
    )
    lines = [header, "", columns, "|---|---|---|---|---|"]
    for split, r in results.items():
        label = "held-out" if split == "test" else "training"
        cells = [
            label,
            str(r["names"]),
            f"{255 * r['model']:.2f}",
            f"{255 * r['real']:.2f}",
            f"{r['ratio']:.3f}",
        ]
        lines.append(f"| {' | '.join(cells)} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    output_file(out, ".json").write_text(json.dumps({"header": header, **results}, indent=2) + "\n")
    output_file(out, ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    run_benchmark(main)
