"""Checkpoints: `accelerator.save_state` into `output_dir/checkpoint-<step>`, pruning, and exact resume.

A checkpoint holds the models, optimisers, LR schedulers, every registered object (the EMA), the RNG states
of each process and accelerate's gradient-accumulation step. The data position is not stored: it follows
from the step, because the data order is a function of (seed, epoch) and an optimiser step always consumes
`gradient_accumulation_steps` batches (`hfldm.training.runtime.train_batches`). `checkpoint.json`, written
last, lists every file with its size and SHA-256, the step, and the run's shape (processes, global batch,
accumulation). Resume verifies every file's hash, so bytes overwritten in place (same size) are found, and
takes the step from the manifest, not from the folder's name (a copy renamed `checkpoint-35` of step 20
resumes at step 20, with a note).

A checkpoint is written under a temporary name and renamed when complete, so a run killed while saving
never leaves a half-written `checkpoint-<step>` for `--resume_from_checkpoint latest` to pick up; older ones
are pruned (to --checkpoints_total_limit) only after that rename, so a kill never leaves none.

Resume never unpickles: the RNG states and the EMA are safetensors + JSON (`hfldm.training.state_files`),
the optimiser and LR-scheduler states are loaded by accelerate with `torch.load(weights_only=True)`, and a
checkpoint holding any `.pkl` file is refused. It validates the checkpoint first (`checkpoint_problem`):
`latest` falls back, loudly, past damaged checkpoints to the newest complete one; a named damaged one is
an error naming the file. A checkpoint resumes with another number of processes when the global batch
(processes × --train_batch_size) and --gradient_accumulation_steps are the same: the per-sample
generators then draw the same numbers for the same samples. Otherwise resume refuses.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors import safe_open

from hfldm.training.state_files import load_rng_state, rng_file, save_rng_state

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
MANIFEST = "checkpoint.json"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Returns the complete checkpoint folders of `output_dir`, oldest (smallest step) first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))
    ]
    return [p for _, p in sorted(found)]


def checkpoint_step(path: str | Path) -> int:
    """The optimiser step a checkpoint folder was saved at (from its name `checkpoint-<step>`)."""
    match = _CHECKPOINT.match(Path(path).name)
    if match is None:
        raise ValueError(f"--resume_from_checkpoint: {path} is not named checkpoint-<step>")
    return int(match.group(1))


def save_checkpoint(
    accelerator: Accelerator, output_dir: str | Path, step: int, total_limit: int | None
) -> Path:
    """Save the full training state at `step` (call on every process); keep at most `total_limit` checkpoints.

    Returns the folder `output_dir/checkpoint-<step>`.
    """
    output_dir = Path(output_dir)
    final, partial = output_dir / f"checkpoint-{step}", output_dir / f".checkpoint-{step}.partial"
    if accelerator.is_main_process:
        for stale in output_dir.glob(".checkpoint-*"):  # left by runs killed while saving or pruning
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(partial))
    except (OSError, RuntimeError) as e:  # torch says "unexpected pos ..." when the disk fills
        shutil.rmtree(partial, ignore_errors=True)
        raise OSError(
            f"--output_dir: {final.name} could not be written to {output_dir} "
            f"({str(e).splitlines()[0][:120]}; a full disk?); the earlier checkpoints are kept"
        ) from e
    # accelerate pickles each process's RNG states: keep them as safetensors instead
    (partial / f"random_states_{accelerator.process_index}.pkl").unlink(missing_ok=True)
    save_rng_state(partial / rng_file(accelerator.process_index))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        files = {str(p.relative_to(partial)): file_record(p) for p in partial.rglob("*") if p.is_file()}
        manifest = dict(step=step, accelerate_step=accelerator.step, run=run_shape(accelerator), files=files)
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1))
        replaced = output_dir / f".{final.name}.deleting"
        if final.exists():  # saved again after resuming from an earlier step
            os.replace(final, replaced)
        os.replace(partial, final)
        shutil.rmtree(replaced, ignore_errors=True)
        # prune only now: until the rename above, the older checkpoints are the only complete ones
        if total_limit is not None:
            older = [p for p in list_checkpoints(output_dir) if p != final]
            for old in older[: max(0, len(older) - total_limit + 1)]:
                doomed = output_dir / f".{old.name}.deleting"  # never a half-deleted checkpoint-<step>
                os.replace(old, doomed)
                shutil.rmtree(doomed)
    accelerator.wait_for_everyone()
    return final


def file_record(path: Path) -> dict:
    """What the manifest keeps of a file: its size and SHA-256."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return dict(size=path.stat().st_size, sha256=digest.hexdigest())


def run_shape(accelerator: Accelerator) -> dict:
    """What a checkpoint must share with the run resuming it: processes, global batch, accumulation."""
    loaders = accelerator._dataloaders  # the prepared training loader (no public accessor)
    return dict(
        num_processes=accelerator.num_processes,
        global_batch_size=loaders[0].total_batch_size if loaders else None,  # per forward pass, all processes
        gradient_accumulation_steps=accelerator.gradient_accumulation_steps,
    )


def checkpoint_problem(folder: str | Path) -> str | None:
    """None when `folder` is a complete checkpoint; otherwise what is wrong with it, naming the file.

    Complete: no pickle files, `checkpoint.json` present, every file it lists present with its size and
    SHA-256, every safetensors header readable and every `.bin` loadable with `torch.load(weights_only=True)`.
    """
    folder = Path(folder)
    if pickles := sorted(p.name for p in folder.rglob("*.pkl")):
        return f"holds pickle files ({', '.join(pickles)}), which resume never loads (they can run code)"
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
    except FileNotFoundError:
        return f"{MANIFEST} is missing (not a complete checkpoint of this hfldm version)"
    except (ValueError, KeyError, TypeError):
        return f"{MANIFEST} is damaged"
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        expected = expected if isinstance(expected, dict) else dict(size=expected)  # older hfldm: sizes only
        if path.stat().st_size != expected["size"]:
            return f"{name} is damaged ({path.stat().st_size:,} of {expected['size']:,} bytes)"
        if "sha256" in expected and file_record(path)["sha256"] != expected["sha256"]:
            return f"{name} is damaged (its content differs from the SHA-256 in {MANIFEST})"
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as f:
                    f.keys()  # parses the header
            elif path.suffix == ".bin":
                torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - whatever the reader says, the file is unusable
            return f"{name} is damaged ({(str(e).splitlines() or [type(e).__name__])[0][:160]})"
    return None


def pick_checkpoint(output_dir: str | Path, resume_from_checkpoint: str) -> Path | None:
    """The complete checkpoint that --resume_from_checkpoint names: a folder, or 'latest', the newest
    complete one of `output_dir` (None when there is none yet); warns on stderr about each damaged one
    skipped. ValueError naming the damaged file when a named folder is damaged."""
    if resume_from_checkpoint != "latest":
        path = Path(resume_from_checkpoint)
        if problem := checkpoint_problem(path):
            raise ValueError(f"--resume_from_checkpoint: {path}: {problem}")
        return path
    checkpoints = list_checkpoints(output_dir)
    for path in reversed(checkpoints):
        if (problem := checkpoint_problem(path)) is None:
            return path
        print(
            f"WARNING: --resume_from_checkpoint latest: {path} is damaged, {problem}: falling back to the "
            "previous checkpoint",
            file=sys.stderr,
        )
    if checkpoints:
        raise ValueError(
            f"--resume_from_checkpoint latest: none of the {len(checkpoints)} checkpoints in "
            f"{output_dir} is complete (see the warnings above)"
        )
    return None


def resume(accelerator: Accelerator, output_dir: str | Path, resume_from_checkpoint: str | None) -> int:
    """Load the state named by --resume_from_checkpoint ('latest' or a folder); returns its optimiser step.

    Returns 0 (a fresh start) when it is None, or 'latest' and `output_dir` holds no checkpoint yet.
    """
    if resume_from_checkpoint is None:
        return 0
    path = pick_checkpoint(output_dir, resume_from_checkpoint)
    if path is None:
        accelerator.print(f"no checkpoint in {output_dir}: starting from scratch")
        return 0
    manifest = json.loads((path / MANIFEST).read_text())
    step, named = manifest["step"], _CHECKPOINT.match(path.name)
    if named is None or int(named.group(1)) != step:
        print(
            f"note: {path} holds step {step} (its {MANIFEST}), not what its name says: resuming at step "
            f"{step}",
            file=sys.stderr,
        )
    then, now = manifest["run"], run_shape(accelerator)
    check_run_shape(path, then, now)
    accelerator.print(f"resuming from {path} (step {step})")
    accelerator.load_state(str(path))
    accelerator.step = manifest["accelerate_step"]  # counts forward passes: drives gradient accumulation
    if then["num_processes"] == now["num_processes"]:
        load_rng_state(path / rng_file(accelerator.process_index))
    else:
        if accelerator.is_main_process:
            print(
                f"note: {path.name} was saved by {then['num_processes']} process(es), resuming with "
                f"{now['num_processes']}: the same global batch and noise per sample; the global RNG "
                "(dropout, random crops) is re-seeded per process",
                file=sys.stderr,
            )
        # the prepared LR schedulers step once per process per optimiser step: rescale their position
        for scheduler in accelerator._schedulers:
            inner = getattr(scheduler, "scheduler", scheduler)
            inner.last_epoch = inner.last_epoch * now["num_processes"] // then["num_processes"]
            inner._step_count = inner.last_epoch + 1
        seed = np.random.SeedSequence([step, accelerator.process_index]).generate_state(1)[0]
        set_seed(int(seed))  # the global RNGs have no saved state for this process
    return step


def check_run_shape(path: Path, then: dict, now: dict) -> None:
    """ValueError unless a run shaped `now` continues the checkpoint's run `then` (see `run_shape`)."""
    g, a, n = then["global_batch_size"], then["gradient_accumulation_steps"], now["num_processes"]
    if (g, a) != (now["global_batch_size"], now["gradient_accumulation_steps"]):
        hint = ""
        if g and g % n == 0:
            hint = f"; use --train_batch_size {g // n} --gradient_accumulation_steps {a} with {n} process(es)"
        raise ValueError(
            f"--resume_from_checkpoint: {path.name} was trained by {shape(then)}; this run is {shape(now)} "
            f"and would continue on other batches and noise{hint}"
        )


def shape(run: dict) -> str:
    """'2 processes × --train_batch_size 4 × --gradient_accumulation_steps 1'."""
    p, g = run["num_processes"], run["global_batch_size"]
    return (
        f"{p} process{'es' if p > 1 else ''} × --train_batch_size {g // p if g else '?'} × "
        f"--gradient_accumulation_steps {run['gradient_accumulation_steps']}"
    )
