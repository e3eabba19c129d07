"""LDM's Fig. 6 / 7 at our scale: for each downsampling factor f, an autoencoder and an LDM trained under the
same wall-clock budget, then FID vs training time, sampling throughput (images / s) and rFID.

    python benchmarks/f_sweep.py --budget-minutes 30 --out docs

For f in --factors (1, 2, 4, 8): train_autoencoder.py (--config --ae-config, with --downsample_factor f),
then train_ldm.py on it (--ldm-config), then `hfldm eval` of the LDM at --eval-points evenly spaced points of
its training.

Budget. The training scripts have no time-limit option, so the budget becomes a step count: a calibration
run of 2k steps checkpoints at k and 2k; the time between the two checkpoints over k is the seconds per step
(start-up, data loading and the final save fall outside), and steps = budget / seconds per step. The budget
thus buys training steps; the table also shows the measured wall clock, start-up and checkpoints included.
The autoencoder is calibrated with its adversarial loss on from the first step (the slower kind of step),
so it does not run over. Step-count settings of the configs (warm-up, disc_start) are scaled by
steps / config max_train_steps.

FID vs training time. The LDM trains in --eval-points chunks, each resumed exactly from the checkpoint of
the last, with a constant learning rate after warm-up (a cosine schedule would change with each chunk's
max_train_steps); the pipeline saved at the end of each chunk is evaluated.

Resuming. Each stage is recorded in <work-dir>/f<f>/state.json when it finishes; rerunning the same command
skips finished stages and factors (an interrupted training chunk restarts from its last checkpoint). Writes
f_sweep.md, f_sweep.json, f_sweep.png and f_sweep_samples.png (each f's last samples) to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from f_sweep_report import plot, samples_figure, table

from hfldm.eval.outputs import USER_ERRORS, run_benchmark

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = {"ae": REPO / "training" / "train_autoencoder.py", "ldm": REPO / "training" / "train_ldm.py"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-minutes", type=float, required=True, help="wall-clock budget per stage and f")
    p.add_argument("--factors", default="1,2,4,8", help="downsampling factors f, comma-separated")
    p.add_argument("--ae-config", default="training/configs/autoencoder_emoji.yaml", help="autoencoder YAML")
    p.add_argument("--ldm-config", default="training/configs/ldm_emoji.yaml", help="LDM YAML")
    p.add_argument("--data-dir", default=None, help="save_to_disk dataset (default: the configs')")
    p.add_argument("--resolution", type=int, default=None, help="pixels (default: the configs')")
    p.add_argument(
        "--ae-args", default="", help="extra train_autoencoder.py flags, e.g. '--base_channels 32'"
    )
    p.add_argument("--ldm-args", default="", help="extra train_ldm.py flags, e.g. '--text_encoder minilm'")
    p.add_argument("--calibration-steps", type=int, default=10, help="k: the calibration times steps k+1..2k")
    p.add_argument("--eval-points", type=int, default=4, help="evaluations along the LDM's training")
    p.add_argument("--eval-args", default="--num-samples all --steps 50", help="extra `hfldm eval` flags")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument(
        "--jobs", type=int, default=1, help="factors swept at once, each on cpu_count / jobs threads"
    )
    p.add_argument("--work-dir", default="runs/f_sweep", help="models, logs and state of the sweep")
    p.add_argument("--out", default="docs", help="folder for f_sweep.md, f_sweep.json, f_sweep.png")
    args = p.parse_args(argv)
    args.factors = [int(f) for f in args.factors.split(",")]
    if any(f not in (1, 2, 4, 8) for f in args.factors):
        raise ValueError(f"--factors: each f must be one of 1, 2, 4, 8, got {args.factors}")
    for name in ("budget_minutes", "calibration_steps", "eval_points", "jobs"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')}: must be positive, got {getattr(args, name)}")
    return args


def run_logged(command: list[str], log: Path) -> float:
    """Run `command` from the repository root with its output in `log`; returns its wall-clock seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("a") as f:
        f.write(f"\n$ {shlex.join(command)}\n")
        f.flush()
        done = subprocess.run(command, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log.read_text().splitlines()[-5:]
        raise RuntimeError(
            f"{shlex.join(command[:2])} failed ({done.returncode}); see {log}:\n" + "\n".join(tail)
        )
    return time.perf_counter() - start


def train_command(stage: str, config: str, flags: dict, extra: str) -> list[str]:
    """python training/<script> --config <config> --flag value ... <extra>."""
    pairs = [x for k, v in flags.items() for x in (f"--{k}", str(v))]
    return [sys.executable, str(SCRIPTS[stage]), "--config", config, *pairs, *shlex.split(extra)]


def seconds_per_step(stage: str, config: str, flags: dict, extra: str, k: int, folder: Path) -> float:
    """One run of 2k steps that checkpoints at k and 2k: the time between the two checkpoints, over k.

    Start-up, data loading and the final save fall outside the window; one checkpoint save falls inside it.
    """
    shutil.rmtree(folder, ignore_errors=True)
    calibration = {**flags, "max_train_steps": 2 * k, "checkpointing_steps": k, "checkpoints_total_limit": 2}
    run_logged(
        train_command(stage, config, calibration | {"output_dir": folder}, extra), folder.parent / "log.txt"
    )
    written = [max(p.stat().st_mtime for p in (folder / f"checkpoint-{s}").rglob("*")) for s in (k, 2 * k)]
    shutil.rmtree(folder, ignore_errors=True)
    return (written[1] - written[0]) / k


def scaled(config: dict, key: str, steps: int) -> int:
    """A step-count setting of `config` scaled to a run of `steps` instead of its max_train_steps."""
    return round(config.get(key, 0) * steps / config["max_train_steps"])


def read_state(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def write_state(path: Path, state: dict) -> None:
    path.write_text(json.dumps(state, indent=2) + "\n")


def evaluate(ldm_dir: Path, data_dir: str, ldm_config: dict, args, out: Path) -> dict:
    """`hfldm eval` of the pipeline in `ldm_dir`; returns the figures the sweep reports."""
    columns = {
        "--caption-column": ldm_config.get("caption_column"),
        "--label-column": ldm_config.get("label_column"),
    }
    flags = [x for k, v in columns.items() if v for x in (k, str(v))]
    command = [sys.executable, "-m", "hfldm.cli", "eval", "--model", str(ldm_dir), "--dataset", data_dir]
    command += ["--seed", "0", "--out", str(out), *flags, *shlex.split(args.eval_args)]
    run_logged(command, out.parent / "log.txt")
    report = json.loads((out / "report.json").read_text())
    fid = report["samples"]["all"]["fid"]
    text = report["samples"]["all"]["text_image"]
    return {
        "fid_vs_test": fid["generated_vs_test"]["fid"],
        "fid_vs_train": fid["generated_vs_train"]["fid"],
        "floor_vs_test": fid["floor_vs_test"]["fid"],
        "top1": text["generated"]["top1"] if text else None,
        "images_per_second": report["sampling"]["images_per_second"],
        "rfid": report["reconstruction"]["rfid"]["fid"],
        "psnr": report["reconstruction"]["psnr"],
        "ssim": report["reconstruction"]["ssim"],
        "feature_network": report["feature_network"]["name"],
        "eval_command": report["command"],
    }


def budgeted_flags(stage: str, flags: dict, config: dict, per_step: float, args) -> tuple[dict, int]:
    """The training flags of a stage under the budget, and its chunk length in steps (the LDM trains in
    --eval-points chunks, the autoencoder in one)."""
    chunks = 1 if stage == "ae" else args.eval_points
    chunk = max(1, math.floor(60 * args.budget_minutes / per_step / chunks))
    steps = chunk * chunks
    flags = flags | {"max_train_steps": steps, "lr_warmup_steps": scaled(config, "lr_warmup_steps", steps)}
    if stage == "ae":
        flags["disc_start"] = scaled(config, "disc_start", steps)
    resume = {"checkpointing_steps": chunk, "checkpoints_total_limit": 1, "resume_from_checkpoint": "latest"}
    return flags | resume, chunk


def sweep_factor(f: int, args, configs: dict, data: dict, folder: Path) -> dict:
    """Calibrate, train and evaluate one f, skipping the stages its state.json records as done."""
    state_path, state = folder / "state.json", read_state(folder / "state.json")
    base = {"seed": args.seed, "report_to": "none", "validation_steps": 0, **data}
    ae_dir, ldm_dir = folder / "autoencoder", folder / "ldm"
    ae_flags = {**base, "downsample_factor": f, "output_dir": ae_dir}
    # constant LR after warm-up, so that chunked training follows one schedule; a latent cache belongs to
    # one autoencoder, so every f trains on images through its own
    ldm_flags = {
        **base,
        "autoencoder": ae_dir,
        "output_dir": ldm_dir,
        "lr_scheduler": "constant_with_warmup",
        "cached_latents": "none",
    }
    for stage, flags in (("ae", ae_flags), ("ldm", ldm_flags)):
        config, extra = configs[stage], getattr(args, f"{stage}_args")
        if f"{stage}_seconds_per_step" not in state:  # 1. calibrate (the autoencoder with its GAN on)
            timing = flags | {"disc_start": 0} if stage == "ae" else flags
            state[f"{stage}_seconds_per_step"] = seconds_per_step(
                stage, config["path"], timing, extra, args.calibration_steps, folder / f"calibrate-{stage}"
            )
            write_state(state_path, state)
        flags, chunk = budgeted_flags(stage, flags, config, state[f"{stage}_seconds_per_step"], args)
        points = state.setdefault(f"{stage}_points", [])
        for i in range(1 if stage == "ae" else args.eval_points):
            target = (i + 1) * chunk
            if i == len(points):  # 2. train (the next chunk), resuming from the last checkpoint
                command = train_command(stage, config["path"], flags | {"max_train_steps": target}, extra)
                points.append({"steps": target, "seconds": run_logged(command, folder / "log.txt")})
                write_state(state_path, state)
            if stage == "ldm" and "fid_vs_test" not in points[i]:  # 3. evaluate the pipeline of this chunk
                points[i] |= evaluate(
                    ldm_dir, data["train_data_dir"], config, args, folder / f"eval-{target}"
                )
                write_state(state_path, state)
    state["done"] = True
    write_state(state_path, state)
    return state


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configs = {}
    for stage in ("ae", "ldm"):
        path = getattr(args, f"{stage}_config")
        if not (REPO / path).is_file() and not Path(path).is_file():
            raise FileNotFoundError(f"--{stage}-config: no such file {path}")
        configs[stage] = {**yaml.safe_load(Path(REPO / path).read_text()), "path": path}
    data_dir = args.data_dir or configs["ae"]["train_data_dir"]
    resolution = args.resolution or configs["ae"]["resolution"]
    if not (REPO / data_dir).is_dir():
        raise FileNotFoundError(
            f"--data-dir: no such folder {data_dir} (build it: hfldm data emoji --out data/emoji)"
        )
    data = {"train_data_dir": data_dir, "resolution": resolution}
    work = REPO / args.work_dir
    settings = {k: v for k, v in vars(args).items() if k not in ("factors", "out")} | data
    recorded = read_state(work / "sweep.json")
    if recorded and recorded != settings:
        raise ValueError(
            f"--work-dir: {args.work_dir} holds a sweep with other settings; pass a new --work-dir"
        )
    work.mkdir(parents=True, exist_ok=True)
    write_state(work / "sweep.json", settings)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    if args.jobs > 1:  # every training and evaluation subprocess inherits these
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)

    def sweep(f: int) -> dict:
        log = work / f"f{f}" / "log.txt"
        print(f"f = {f}: {args.budget_minutes} min per stage; log in {log}", flush=True)
        return sweep_factor(f, args, configs, data, work / f"f{f}")

    # the stages of one f run in order; --jobs factors at a time (each job a chain of subprocesses)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = dict(zip(args.factors, pool.map(sweep, args.factors)))
    last = results[args.factors[-1]]["ldm_points"][-1]
    result = {
        "command": "python benchmarks/f_sweep.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "budget_minutes": args.budget_minutes,
        "machine": f"{os.cpu_count()} CPU cores"
        + (", CUDA" if _has_cuda() else "")
        + (f", {args.jobs} factors at a time on {threads} thread(s) each" if args.jobs > 1 else ""),
        "feature_network": last["feature_network"],
        "eval_args": args.eval_args,
        "factors": results,
    }
    out = REPO / args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "f_sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "f_sweep.md").write_text(markdown := table(result))
    plot(result, out / "f_sweep.png")
    samples_figure(result, work, out / "f_sweep_samples.png")
    print(markdown, end="")
    return 0


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    run_benchmark(main, (*USER_ERRORS, RuntimeError))
