"""The loop every training script runs: optimiser steps over an endless, resumable stream of batches, with
the EMA update, logs, validation and checkpoints at their intervals. The scripts keep their own
`training_step`; this is only the bookkeeping around it.
"""

from __future__ import annotations

from collections.abc import Callable

from accelerate import Accelerator

from hfldm.training.args import TrainingArguments, training_started
from hfldm.training.checkpoints import save_checkpoint
from hfldm.training.runtime import check_loader, is_every, log_step, progress_bar, train_batches
from hfldm.training.stream import resume_stream

# (batch, micro_step) -> {"loss": scalar, ...}: one forward/backward pass; micro_step counts passes
TrainingStep = Callable[[dict, int], dict]


def train_loop(
    accelerator: Accelerator,
    loader,
    train: TrainingArguments,
    first_step: int,
    training_step: TrainingStep,
    lr_scheduler,
    validate: Callable[[int], object] | None = None,
    after_step: Callable[[int], None] | None = None,
) -> int:
    """Optimiser steps `first_step` + 1 .. max_train_steps; returns the last step.

    Each optimiser step is `gradient_accumulation_steps` calls of `training_step`; after it come
    `after_step(step)` (the EMA update), the logs of its last pass (averaged over processes), `validate(step)`
    on the main process, and the checkpoint, each at its interval of TrainingArguments.
    """
    check_loader(loader)  # a batch larger than the data is the user's argument: say so before training
    resume_stream(accelerator, loader, train.output_dir, train.resume_from_checkpoint, first_step)
    training_started()  # from here on an error is a bug of the run, not a bad argument: keep its traceback
    bar = progress_bar(accelerator, first_step, train.max_train_steps)
    step, micro_step = first_step, first_step * train.gradient_accumulation_steps
    for batch in train_batches(accelerator, loader, first_step, train.gradient_accumulation_steps):
        if step >= train.max_train_steps:  # also when resumed at (or past) the last step
            break
        logs = training_step(batch, micro_step)
        micro_step += 1
        if not accelerator.sync_gradients:
            continue
        step += 1
        if after_step is not None:
            after_step(step)
        bar.update(1)
        if is_every(step, train.logging_steps):
            log_step(accelerator, bar, logs, lr_scheduler, step)
        if validate is not None and is_every(step, train.validation_steps) and accelerator.is_main_process:
            validate(step)
        if is_every(step, train.checkpointing_steps):
            save_checkpoint(accelerator, train.output_dir, step, train.checkpoints_total_limit)
    return step
