"""FID against text–image alignment across guidance scales, one curve per text encoder (LDM §4.3 / Imagen's
trade-off curves; #20 experiment 3).

For each arm (a trained text pipeline: `--arm LABEL=FOLDER`, repeatable; default the --model) and each
guidance scale w of --scales, one sample per held-out caption with the same per-sample seeds, then
`hfldm eval`'s figures: FID / KID against the training images, CLIP-score (the project's text–image model)
and caption retrieval. The plot puts FID (y) against CLIP-score (x), each point labelled by w.

    python benchmarks/guidance_sweep.py --arm "τ_θ trained jointly (bundled)=models/hfldm-emoji" \
        --arm "frozen MiniLM=runs/ldm-emoji32-minilm" --dataset data/emoji/32 --out docs/guidance_sweep

Writes OUT.json, OUT.md, OUT.png after every (arm, w). Rerun with the same settings, it keeps the points
OUT.json already holds for the same arm folder and draws only the missing ones: an interrupted sweep goes on,
and an arm can be added when its training ends.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from hfldm.commands.eval import add_eval_flags, check_args, load_eval_set, load_feature_model
from hfldm.commands.shared import load_pipeline
from hfldm.eval.outputs import output_file, run_benchmark

SCALES = "1,1.5,2,3,5,8"


def parse_scales(text: str) -> list[float]:
    """'1,1.5,3' -> [1.0, 1.5, 3.0]; ValueError naming --scales for a non-number or a w below 0."""
    try:
        scales = [float(item) for item in text.split(",")]
    except ValueError:
        raise ValueError(f"--scales: expected comma-separated numbers, got {text!r}") from None
    if not scales or any(w < 0 for w in scales):
        raise ValueError(f"--scales: guidance scales must be >= 0, got {text!r}")
    return scales


def parse_arms(items: list[str] | None, default_model: str) -> dict[str, str]:
    """['LABEL=FOLDER', ...] -> {label: folder} in order (labels may hold '='); the --model without any."""
    if not items:
        return {Path(default_model).name: default_model}
    arms = {}
    for item in items:
        label, sep, folder = item.rpartition("=")
        if not sep or not label or not folder:
            raise ValueError(f"--arm: expected LABEL=FOLDER, got {item!r}")
        if label in arms:
            raise ValueError(f"--arm: label {label!r} given twice")
        arms[label] = folder
    return arms


def row_of(arm: str, w: float, figures: dict) -> dict:
    """One (arm, w) point: FID / KID vs train and the text–image figures of the 'all' subset."""
    fid, text = figures["all"]["fid"]["generated_vs_train"], figures["all"]["text_image"]["generated"]
    return {"arm": arm, "guidance_scale": w, "fid": fid["fid"], "kid": fid["kid_mean"]} | {
        k: text[k] for k in ("clip_score", "top1", "top5")
    }


def curves(rows: list[dict]) -> dict[str, list[dict]]:
    """{arm: its rows sorted by w}, arms in the order they first appear."""
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["arm"], []).append(row)
    return {arm: sorted(points, key=lambda r: r["guidance_scale"]) for arm, points in grouped.items()}


def best(rows: list[dict]) -> dict[str, dict]:
    """Per arm: the w of the lowest FID and the w of the highest CLIP-score."""
    return {
        arm: {
            "lowest_fid_at": min(points, key=lambda r: r["fid"])["guidance_scale"],
            "highest_clip_score_at": max(points, key=lambda r: r["clip_score"])["guidance_scale"],
        }
        for arm, points in curves(rows).items()
    }


def settings_of(args: argparse.Namespace) -> dict:
    """What makes two runs' points comparable: the samples, sampler, seed, precision and feature network."""
    keys = ("dataset", "split", "reference_split", "num_samples", "steps", "seed", "dtype", "feature_model")
    return {key: str(getattr(args, key)) for key in keys}


def kept_rows(previous: dict, settings: dict, arms: dict[str, str], scales: list[float]) -> list[dict]:
    """The rows of an earlier OUT.json still valid now: same settings, an arm with the same folder, a w asked
    for. Everything else is drawn again."""
    if previous.get("settings") != settings:
        return []
    folders = previous.get("arms", {})
    same_folder = {arm for arm, folder in arms.items() if folders.get(arm) == folder}
    return [r for r in previous.get("rows", []) if r["arm"] in same_folder and r["guidance_scale"] in scales]


def markdown(result: dict) -> str:
    lines = [
        f"`{result['command']}`",
        "",
        f"Feature network `{result['feature_network']}`; {result['num_samples']} held-out captions, DDIM "
        f"{result['steps']} steps, seed {result['seed']}; FID / KID against the training images (floor, real "
        f"held-out vs train: {result['floor']:.4g}).",
        "",
        "| arm | w | FID ↓ | KID ↓ | CLIP-score ↑ | top-1 ↑ | top-5 ↑ |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, points in curves(result["rows"]).items():
        for r in points:
            cells = [arm, f"{r['guidance_scale']:g}", f"{r['fid']:.4g}", f"{r['kid']:.4g}"]
            cells += [f"{r['clip_score']:.2f}", f"{100 * r['top1']:.1f} %", f"{100 * r['top5']:.1f} %"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, points in curves(result["rows"]).items():
        xs, ys = [r["clip_score"] for r in points], [r["fid"] for r in points]
        ax.plot(xs, ys, "o-", label=arm)
        for r, x, y in zip(points, xs, ys):
            ax.annotate(
                f"w={r['guidance_scale']:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7
            )
    ax.axhline(result["floor"], color="k", ls="--", lw=1, label="floor (real held-out vs train)")
    ax.set(
        xlabel="CLIP-score (hfldm text–image model) →", ylabel=f"FID vs train ({result['feature_network']}) ↓"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_eval_flags(parser)
    parser.add_argument(
        "--arm", action="append", help="LABEL=FOLDER of a text pipeline (repeat; default --model)"
    )
    parser.add_argument("--scales", default=SCALES, help="comma-separated guidance scales w")
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps")
    parser.add_argument("--out", default="docs/guidance_sweep", help="writes OUT.json, OUT.md, OUT.png")
    args = parser.parse_args(argv)
    check_args(args)
    scales, arms = parse_scales(args.scales), parse_arms(args.arm, args.model)
    text_image_model, features = load_feature_model(args.feature_model)

    from hfldm.eval.report import evaluate, generate_images

    command = "python benchmarks/guidance_sweep.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    out, settings = Path(args.out), settings_of(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = output_file(out, ".json")
    previous = json.loads(previous.read_text()) if previous.is_file() else {}
    rows = kept_rows(previous, settings, arms, scales)
    done = {(row["arm"], row["guidance_scale"]) for row in rows}
    result = previous if rows else {}
    for arm, folder in arms.items():
        if all((arm, w) in done for w in scales):
            continue
        pipe = load_pipeline(folder, "ddim", args.device, "--arm", dtype=args.dtype)
        if not pipe.is_text_conditional:
            raise ValueError(f"--arm: {folder} is not a text-conditional pipeline")
        data = load_eval_set(args, pipe)
        for w in scales:
            if (arm, w) in done:
                continue
            print(f"{arm}: w = {w:g}", file=sys.stderr)
            images, _ = generate_images(pipe, data, args.steps, w, args.seed, args.batch_size)
            figures = evaluate(images, data, text_image_model, features)
            rows.append(row_of(arm, w, figures))
            floor = figures["all"]["fid"]["floor_vs_train"]["fid"]
            result = {
                "command": command,
                "feature_network": features.name,
                "num_samples": len(data.test_images),
                "steps": args.steps,
                "seed": args.seed,
                "floor": floor,
                "rows": rows,
                "best": best(rows),
                "settings": settings,
                "arms": {name: arms[name] for name in curves(rows)},
            }
            output_file(out, ".json").write_text(json.dumps(result, indent=2) + "\n")
            output_file(out, ".md").write_text(markdown(result))
            plot(result, output_file(out, ".png"))
    print(markdown(result), end="")
    return 0


if __name__ == "__main__":
    run_benchmark(main)
