"""Checkpoints: `accelerator.save_state` into `output_dir/checkpoint-<step>`, pruning, and exact resume.

A checkpoint holds the models, optimisers, LR schedulers, every registered object (the EMA), the RNG states
of each process and accelerate's gradient-accumulation step. The data position is not stored: it follows
from the step, because the data order is a function of (seed, epoch) and an optimiser step always consumes
`gradient_accumulation_steps` batches (`hfldm.training.runtime.train_batches`).

A checkpoint is written under a temporary name and renamed when complete, so a run killed while saving
never leaves a half-written `checkpoint-<step>` for `--resume_from_checkpoint latest` to pick up; older ones
are pruned (to --checkpoints_total_limit) only after that rename, so a kill never leaves none. The state
files are accelerate's (the RNG states and registered objects are pickles): resume only your own runs.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from accelerate import Accelerator

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


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
        for stale in output_dir.glob(".checkpoint-*.partial"):  # left by runs killed while saving
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():  # saved again after resuming from an earlier step
            os.replace(final, output_dir / f".{final.name}.old.partial")
        os.replace(partial, final)
        # prune only now: until the rename above, the older checkpoints are the only complete ones
        if total_limit is not None:
            older = [p for p in list_checkpoints(output_dir) if p != final]
            for old in older[: max(0, len(older) - total_limit + 1)]:
                doomed = output_dir / f".{old.name}.partial"  # never a half-deleted checkpoint-<step>
                os.replace(old, doomed)
                shutil.rmtree(doomed)
    accelerator.wait_for_everyone()
    return final


def resume(accelerator: Accelerator, output_dir: str | Path, resume_from_checkpoint: str | None) -> int:
    """Load the state named by --resume_from_checkpoint ('latest' or a folder); returns its optimiser step.

    Returns 0 (a fresh start) when it is None, or 'latest' and `output_dir` holds no checkpoint yet.
    """
    if resume_from_checkpoint is None:
        return 0
    if resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(output_dir)
        if not checkpoints:
            accelerator.print(f"no checkpoint in {output_dir}: starting from scratch")
            return 0
        path = checkpoints[-1]
    else:
        path = Path(resume_from_checkpoint)
    step = checkpoint_step(path)
    accelerator.print(f"resuming from {path} (step {step})")
    accelerator.load_state(str(path))
    return step
