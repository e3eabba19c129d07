"""The accelerate plumbing every training script shares: the Accelerator, the seeded data loader, an endless
batch iterator that resumes mid-epoch, the optimiser and LR schedule, and the progress bar.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterable, Iterator

import datasets
import torch
from accelerate import Accelerator, DataLoaderConfiguration, PartialState
from accelerate.utils import GradientAccumulationPlugin, ProjectConfiguration
from diffusers.optimization import get_scheduler
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from hfldm.precision import has_fast_bf16
from hfldm.training.args import TrainingArguments
from hfldm.training.stream import StreamLoader


def warn_idle_cores() -> None:
    """One line when a single CPU process computes on fewer threads than it has cores: `accelerate launch`
    sets OMP_NUM_THREADS=1 unless given --num_cpu_threads_per_process (or --cpu), which made every step
    here 1.6x slower on 2 cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1
    if single and not torch.cuda.is_available() and torch.get_num_threads() < cores:
        warnings.warn(
            f"training on {torch.get_num_threads()} of {cores} CPU threads (OMP_NUM_THREADS="
            f"{os.environ.get('OMP_NUM_THREADS', 'unset')}); `accelerate launch "
            f"--num_cpu_threads_per_process {cores}` uses them all",
            stacklevel=3,
        )


def make_accelerator(train: TrainingArguments, seed: int) -> Accelerator:
    """An Accelerator for `train`: seeded shuffling shared by all processes, tensorboard logs in
    output_dir/logs, and optimiser steps every `gradient_accumulation_steps` batches, across epochs."""
    if train.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ValueError("--mixed_precision: fp16 needs a CUDA GPU; use bf16 on CPU")
    if train.mixed_precision == "bf16" and not torch.cuda.is_available() and not has_fast_bf16("cpu"):
        warnings.warn(
            "--mixed_precision bf16: this CPU has no AVX512-BF16 or AMX, so bf16 is emulated and training "
            "runs many times slower than in fp32 (the results are the same; `hfldm env` shows the features)",
            stacklevel=2,
        )
    warn_idle_cores()
    # zero-initialised layers leave tiny weights, gradients and Adam moments: as subnormal floats they make
    # CPU arithmetic 10x slower as training goes on. Flushing them to zero changes nothing measurable.
    torch.set_flush_denormal(True)
    project = ProjectConfiguration(
        project_dir=train.output_dir, logging_dir=os.path.join(train.output_dir, "logs")
    )
    # sync_with_dataloader=False: a step is always N batches, so the data position follows from the step
    accumulation = GradientAccumulationPlugin(
        num_steps=train.gradient_accumulation_steps, sync_with_dataloader=False
    )
    # N processes and no GPU: without cpu=True accelerate would run N independent single-process trainings
    cpu_processes = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
    return Accelerator(
        cpu=cpu_processes,
        gradient_accumulation_plugin=accumulation,
        mixed_precision=train.mixed_precision,
        log_with=None if train.report_to == "none" else [n.strip() for n in train.report_to.split(",")],
        project_config=project,
        # dispatch_batches=False: each process reads its own part of a stream (accelerate shards a datasets
        # IterableDataset with `.shard(num_processes, rank)`, as `split_dataset_by_node` does) instead of
        # process 0 reading every batch and broadcasting it; each step is still num_processes batches
        dataloader_config=DataLoaderConfiguration(
            use_seedable_sampler=True, data_seed=seed, dispatch_batches=False
        ),
    )


def make_dataloader(
    dataset,
    batch_size: int,
    seed: int,
    collate_fn: Callable | None = None,
    num_workers: int = 0,
    shuffle: bool = True,
    shuffle_buffer_size: int = 1000,
) -> DataLoader | StreamLoader:
    """A DataLoader over `dataset`, shuffled by a permutation that depends only on (seed, epoch).

    Incomplete last batches are dropped, so every step sees `batch_size` images per process. A stream gives
    a StreamLoader instead (`hfldm.training.stream`; accelerate's prepare leaves it as it is): shuffled, it
    is the training loader, reads this process's shards through a checkpointed buffer of
    `shuffle_buffer_size` rows and resumes exactly; unshuffled, every process reads the stream from its start.
    It reads in the training process (`num_workers` is not used).
    """
    if isinstance(dataset, datasets.IterableDataset):
        state = PartialState()
        return StreamLoader(
            dataset,
            batch_size,
            collate_fn,
            seed,
            buffer_size=shuffle_buffer_size if shuffle else 0,
            rank=state.process_index if shuffle else 0,
            world_size=state.num_processes if shuffle else 1,
            device=state.device,
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=shuffle,
        generator=torch.Generator().manual_seed(seed) if shuffle else None,
        collate_fn=collate_fn,
        num_workers=num_workers,
    )


def check_loader(dataloader) -> None:
    """ValueError naming --train_batch_size when a map-style dataset gives no full batch per process."""
    if not isinstance(dataloader.dataset, datasets.IterableDataset) and len(dataloader) == 0:
        size = len(dataloader.dataset)
        raise ValueError(
            f"--train_batch_size: larger than the {size} training images per process (no full batch)"
        )


def train_batches(accelerator: Accelerator, dataloader, first_step: int, accumulation: int) -> Iterator:
    """Yields the batches of this process epoch after epoch, from where optimiser step `first_step` left off.

    Epoch e is shuffled with seed + e (accelerate's SeedableRandomSampler); on resume the first
    `first_step * accumulation` batches are skipped without being loaded. A stream continues from the
    position its checkpoint stored (`hfldm.training.stream.resume_stream`), reading nothing twice.
    """
    check_loader(dataloader)
    if isinstance(dataloader, StreamLoader):
        yield from dataloader.endless()
        return
    epoch, skip = divmod(first_step * accumulation, len(dataloader))
    while True:
        dataloader.set_epoch(epoch)
        yield from accelerator.skip_first_batches(dataloader, skip) if skip else dataloader
        epoch, skip = epoch + 1, 0


def make_optimizer(
    parameters: Iterable[torch.nn.Parameter], train: TrainingArguments, lr: float | None = None
) -> torch.optim.AdamW:
    """AdamW over `parameters` with the learning rate (or `lr`), betas and weight decay of `train`, fused."""
    return torch.optim.AdamW(
        [p for p in parameters if p.requires_grad],
        lr=train.learning_rate if lr is None else lr,
        betas=(train.adam_beta1, train.adam_beta2),
        weight_decay=train.adam_weight_decay,
        fused=True,  # one kernel per step: the optimiser step of a 25.6 M U-Net 154 -> 41 ms (docs/speed.md)
    )


def make_lr_scheduler(optimizer: torch.optim.Optimizer, train: TrainingArguments, num_processes: int):
    """diffusers' `get_scheduler` for --lr_scheduler with --lr_warmup_steps warm-up over --max_train_steps.

    Counts are multiplied by `num_processes` because the prepared scheduler steps once per process.
    """
    return get_scheduler(
        train.lr_scheduler,
        optimizer,
        num_warmup_steps=train.lr_warmup_steps * num_processes,
        num_training_steps=train.max_train_steps * num_processes,
    )


def progress_bar(accelerator: Accelerator, first_step: int, max_steps: int) -> tqdm:
    """The progress bar of the optimiser steps (main process only), starting at `first_step`."""
    bar = tqdm(
        range(max_steps), initial=first_step, desc="steps", disable=not accelerator.is_local_main_process
    )
    bar.set_postfix_str("", refresh=False)
    return bar


def optimizer_step(
    accelerator: Accelerator, optimizer, lr_scheduler, parameters, max_grad_norm: float
) -> None:
    """Clip the gradient norm to `max_grad_norm` (0 = no clipping) on a step that updates, then step the
    optimiser and the LR schedule and clear the gradients (no-ops while gradients accumulate)."""
    if accelerator.sync_gradients and max_grad_norm > 0:
        accelerator.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()
    lr_scheduler.step()
    optimizer.zero_grad()


def tracker_config(*objects) -> dict:
    """The scalar fields of argument dataclasses, for the trackers' hyper-parameter table."""
    return {
        k: v
        for o in objects
        for k, v in dataclasses.asdict(o).items()
        if isinstance(v, (int, float, str, bool))
    }


def is_every(step: int, every: int) -> bool:
    """True when `every` > 0 and `step` is a multiple of it."""
    return every > 0 and step % every == 0


def log_step(accelerator: Accelerator, bar: tqdm, logs: dict, lr_scheduler, step: int) -> None:
    """Log the scalars of `logs` averaged over processes as train/<name> (call on every process), and the
    learning rate, at `step`; the progress bar shows the loss."""
    values = {k: torch.as_tensor(v, device=accelerator.device).float() for k, v in logs.items()}
    means = {f"train/{k}": accelerator.reduce(v.detach(), "mean").item() for k, v in values.items()}
    bar.set_postfix(loss=f"{means['train/loss']:.4f}", refresh=False)
    accelerator.log(means | {"lr": lr_scheduler.get_last_lr()[0]}, step)
