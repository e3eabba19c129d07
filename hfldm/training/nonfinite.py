"""Stop training at the first non-finite gradient, before it reaches the weights.

A nan/inf loss, or a gradient that overflows, makes some gradient non-finite; one such optimiser step
turns the weights (and every later checkpoint and the saved model) into nan. `stop_on_nonfinite` checks
the gradients before every optimiser step: up to `--skip_nonfinite_steps` such steps are skipped (no
update; data and LR schedule move on), the next one raises `NonFiniteError`, which ends the run with one
line and exit code 3 (`hfldm.training.args.run`) before anything else is saved, so the last checkpoint is
the last good state.
"""

from __future__ import annotations

import sys

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from hfldm.nn.finite import nonfinite_tensors
from hfldm.training.checkpoints import list_checkpoints

EXIT_CODE = 3


class NonFiniteError(RuntimeError):
    """Training met a non-finite loss or gradient with no skips left."""


def stop_on_nonfinite(accelerator: Accelerator, budget: int, *optimizers: torch.optim.Optimizer) -> None:
    """Check the gradients of `optimizers` (prepared ones too) before each of their steps; skip up to
    `budget` steps with a non-finite gradient in all, then raise NonFiniteError at the next one.

    Gradients are checked after DDP has averaged them, so every process decides alike.
    """
    skipped, last_skipped = 0, None

    def check(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        nonlocal skipped, last_skipped
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        bad = nonfinite_tensors(p.grad for p in parameters)
        if not bad:
            return
        step = accelerator.step // accelerator.gradient_accumulation_steps
        what = (
            f"step {step}: the loss or gradient is not finite (nan/inf in {bad} of {len(parameters)} grads)"
        )
        if step != last_skipped:  # a step of two optimisers (autoencoder and PatchGAN) counts once
            if skipped >= budget:
                saved = list_checkpoints(accelerator.project_dir) if accelerator.project_dir else []
                last = f"{saved[-1].name} is the last good state" if saved else "no checkpoint was saved yet"
                raise NonFiniteError(
                    f"training stopped at {what}; --skip_nonfinite_steps {budget} used up. No update was "
                    f"made from it and nothing saved: {last}"
                )
            skipped, last_skipped = skipped + 1, step
            tqdm.write(f"warning: skipped {what} ({skipped} of --skip_nonfinite_steps {budget})", sys.stderr)
        for p in parameters:
            p.grad = None  # the optimiser leaves parameters without a gradient as they are

    for optimizer in optimizers:
        getattr(optimizer, "optimizer", optimizer).register_step_pre_hook(check)
