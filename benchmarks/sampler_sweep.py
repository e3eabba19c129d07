"""FID and retrieval vs number of sampling steps: DDPM (1000 steps), DDIM and DPM-Solver (10 / 20 / 50).

One trained pipeline, one set of held-out conditions, the same per-sample seeds for every sampler; only the
scheduler (built from the saved one's config, so the noise schedule is the training one) and the step count
change. Each row is `hfldm eval`'s figures (see docs/eval.md): FID / KID against the held-out and the
training images, CLIP-score and caption retrieval for text models, and the sampling time.

    python benchmarks/sampler_sweep.py --model runs/ldm-emoji --dataset data/emoji/64 --out docs

writes sampler_sweep.md (table), sampler_sweep.json and sampler_sweep.png (FID vs steps) into --out, and
checks the goal: a 20-step sampler within 10 % of the 1000-step DDPM FID.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
from pathlib import Path

from hfldm.commands.eval import add_eval_flags, check_args, guidance_scale, load_eval_set, load_feature_model
from hfldm.commands.eval import resolve_model_flag as resolve_model
from hfldm.commands.shared import SCHEDULERS, load_pipeline
from hfldm.eval.outputs import run_benchmark

RUNS = "ddpm:1000,ddim:10,ddim:20,ddim:50,dpm:10,dpm:20,dpm:50"
GOAL_STEPS, GOAL_TOLERANCE = 20, 0.10  # a 20-step sampler within 10 % of DDPM-1000's FID


def parse_runs(text: str) -> list[tuple[str, int]]:
    """'ddpm:1000,ddim:20' -> [("ddpm", 1000), ("ddim", 20)]; ValueError naming --runs."""
    runs = []
    for item in text.split(","):
        name, _, steps = item.strip().partition(":")
        if name not in SCHEDULERS or not steps.isdigit() or int(steps) < 1:
            raise ValueError(
                f"--runs: expected scheduler:steps with a scheduler of {list(SCHEDULERS)}, got {item!r}"
            )
        runs.append((name, int(steps)))
    return runs


def use_scheduler(pipe, saved_config, name: str) -> None:
    """Replace pipe.scheduler by `name` (generate's SCHEDULERS) built from the saved scheduler's config."""
    module, cls = SCHEDULERS[name]
    pipe.scheduler = getattr(importlib.import_module(module), cls).from_config(saved_config)


def row_of(name: str, steps: int, figures: dict, seconds: float, n: int) -> dict:
    """One table row: the 'all' subset's headline figures and the sampling time."""
    fid, text = figures["all"]["fid"], figures["all"]["text_image"]
    row = {
        "sampler": name,
        "steps": steps,
        "fid_vs_test": fid["generated_vs_test"]["fid"],
        "fid_vs_train": fid["generated_vs_train"]["fid"],
        "kid_vs_train": fid["generated_vs_train"]["kid_mean"],
        "seconds_per_image": seconds / n,
    }
    if text:
        row |= {k: text["generated"][k] for k in ("clip_score", "top1", "top5")}
    return row


def goal_check(rows: list[dict]) -> dict | None:
    """FID vs held-out of each 20-step sampler divided by that of the longest DDPM run (1000 steps by
    default); None without a DDPM run."""
    ddpm = max((r for r in rows if r["sampler"] == "ddpm"), key=lambda r: r["steps"], default=None)
    if ddpm is None:
        return None
    ratios = {r["sampler"]: r["fid_vs_test"] / ddpm["fid_vs_test"] for r in rows if r["steps"] == GOAL_STEPS}
    met = any(abs(x - 1) <= GOAL_TOLERANCE for x in ratios.values())
    return {"ddpm_steps": ddpm["steps"], "ddpm_fid": ddpm["fid_vs_test"], "ratios": ratios, "met": met}


def markdown(result: dict) -> str:
    """The sweep as a Markdown table with the command, the floor, and the goal check."""
    rows, floor = result["rows"], result["floor"]
    text = "top1" in rows[0]
    header = ["sampler", "steps", "FID vs held-out", "FID vs train", "KID vs train", "s / image"]
    header += ["CLIP-score", "top-1", "top-5"] if text else []
    lines = [
        f"`{result['command']}`",
        "",
        f"Feature network `{result['feature_network']}`; {result['num_samples']} samples, guidance "
        f"{result['guidance_scale']}, seed {result['seed']}; floors (real vs real): FID vs held-out "
        f"{floor['vs_test']:.4g}, vs train {floor['vs_train']:.4g}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in rows:
        cells = [r["sampler"], str(r["steps"]), f"{r['fid_vs_test']:.4g}", f"{r['fid_vs_train']:.4g}"]
        cells += [f"{r['kid_vs_train']:.4g}", f"{r['seconds_per_image']:.3g}"]
        if text:
            cells += [f"{r['clip_score']:.2f}", f"{100 * r['top1']:.1f} %", f"{100 * r['top5']:.1f} %"]
        lines.append("| " + " | ".join(cells) + " |")
    if goal := result["goal"]:
        ratios = ", ".join(f"{k}-{GOAL_STEPS} {v:.3f}" for k, v in goal["ratios"].items()) or "no 20-step run"
        reference = f"DDPM-{goal['ddpm_steps']}"
        lines += [
            "",
            f"Goal (a {GOAL_STEPS}-step sampler within {GOAL_TOLERANCE:.0%} of {reference}'s FID "
            f"{goal['ddpm_fid']:.4g}): FID ratios {ratios}: **{'met' if goal['met'] else 'not met'}**.",
        ]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    """FID vs held-out against steps (log x), one line per sampler, the floor and DDPM-1000 ± 10 % dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r["sampler"] for r in result["rows"]):
        rows = sorted((r for r in result["rows"] if r["sampler"] == name), key=lambda r: r["steps"])
        ax.plot([r["steps"] for r in rows], [r["fid_vs_test"] for r in rows], "o-", label=name)
    if goal := result["goal"]:
        band = (goal["ddpm_fid"] * (1 - GOAL_TOLERANCE), goal["ddpm_fid"] * (1 + GOAL_TOLERANCE))
        ax.axhspan(*band, color="grey", alpha=0.2, label=f"DDPM-{goal['ddpm_steps']} ± {GOAL_TOLERANCE:.0%}")
    ax.axhline(result["floor"]["vs_test"], color="k", ls="--", lw=1, label="floor (real vs real)")
    ax.set(xscale="log", xlabel="sampling steps", ylabel=f"FID vs held-out ({result['feature_network']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(result: dict, out: Path) -> None:
    """sampler_sweep.json, .md and .png in `out`."""
    (out / "sampler_sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "sampler_sweep.md").write_text(markdown(result))
    plot(result, out / "sampler_sweep.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_eval_flags(parser)
    parser.add_argument("--runs", default=RUNS, help="comma-separated scheduler:steps")
    parser.add_argument("--out", default="docs", help="folder for sampler_sweep.{md,json,png}")
    args = parser.parse_args(argv)
    check_args(args)
    runs = parse_runs(args.runs)
    pipe = load_pipeline(resolve_model(args.model), "saved", args.device, dtype=args.dtype)
    saved_config = pipe.scheduler.config
    data = load_eval_set(args, pipe)
    text_image_model, features = load_feature_model(args.feature_model)
    w = guidance_scale(pipe, args.guidance_scale)

    from hfldm.eval.report import evaluate, generate_images

    command = "python benchmarks/sampler_sweep.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, steps in runs:
        use_scheduler(pipe, saved_config, name)
        print(f"{name} {steps} steps", file=sys.stderr)
        images, seconds = generate_images(pipe, data, steps, w, args.seed, args.batch_size)
        figures = evaluate(images, data, text_image_model, features)
        rows.append(row_of(name, steps, figures, seconds, len(images)))
        fid = figures["all"]["fid"]
        result = {
            "command": command,
            "feature_network": features.name,
            "num_samples": len(data.test_images),
            "guidance_scale": w,
            "seed": args.seed,
            "floor": {"vs_test": fid["floor_vs_test"]["fid"], "vs_train": fid["floor_vs_train"]["fid"]},
            "rows": rows,
            "goal": goal_check(rows),
        }
        write(result, out)  # after every sampler: an interrupted sweep keeps the rows it finished
    print(markdown(result), end="")
    return 0


if __name__ == "__main__":
    run_benchmark(main)
