"""One process's part of a stream, shuffled by a buffer whose contents are checkpointed: a resumed run draws
exactly the batches an uninterrupted one would, and reads none of the stream it had consumed.

Each process reads its own shards (`datasets.distributed.split_dataset_by_node`). Rows pass a shuffle buffer
of `buffer_size` rows, the algorithm of `datasets.IterableDataset.shuffle`: once the buffer is full, each new
row takes the place of one drawn uniformly from it, and the end of an epoch empties it in random order. The
draws come from a NumPy generator seeded by (seed, epoch, rank). datasets' own buffer loses its contents on
resume; here a checkpoint stores, per process, the stream position (`IterableDataset.state_dict()`), the
buffer's rows and the generator's state, as `stream_state_<rank>.safetensors` (tensors + JSON, no pickle).

The position is taken between batches: the loader reads no batch ahead, so what a checkpoint stores is what
the optimiser steps before it consumed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import datasets
import numpy as np
import torch
from accelerate.utils import send_to_device
from datasets.distributed import split_dataset_by_node

from hfldm.training.checkpoints import MANIFEST, list_checkpoints
from hfldm.training.state_files import load_tensors, save_tensors


def state_file(rank: int) -> str:
    """The name of process `rank`'s stream state in a checkpoint folder."""
    return f"stream_state_{rank}.safetensors"


class StreamLoader:
    """Batches of `collate_fn(rows)` from process `rank`'s part of `dataset`, epoch after epoch, resumable.

    `dataset` is the whole stream (what the data checks read); with `buffer_size` 0 rows keep their order.
    The last batch of an epoch may be smaller than `batch_size`.
    """

    def __init__(
        self,
        dataset: datasets.IterableDataset,
        batch_size: int,
        collate_fn: Callable | None,
        seed: int,
        buffer_size: int,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | None = None,
    ):
        self.dataset, self.batch_size = dataset, batch_size
        self.collate_fn = collate_fn or torch.utils.data.default_collate
        self.seed, self.buffer_size, self.rank, self.world_size = seed, buffer_size, rank, world_size
        self.device = device
        self.epoch = 0
        self.rows_read = 0  # rows this process has read from the stream since it started
        self._live: tuple | None = None  # (part, buffer, rng) of the epoch being read
        self._restored: dict | None = None  # a checkpoint's state, for the next __iter__

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _part(self) -> datasets.IterableDataset:
        """This process's shards of the stream (all of it with one process), as a new object: a loaded
        state stays with the object it was loaded into, and the next epoch starts from the beginning."""
        return split_dataset_by_node(self.dataset, rank=self.rank, world_size=self.world_size)

    def rows(self) -> Iterator[dict]:
        """The rows of epoch `self.epoch` in buffer order, from the restored position if there is one."""
        part, restored, self._restored = self._part(), self._restored, None
        if restored is None:
            buffer, rng = [], np.random.default_rng([self.seed, self.epoch, self.rank])
        else:
            part.load_state_dict(restored["source"])
            buffer, rng = restored["buffer"], np.random.default_rng()
            rng.bit_generator.state = restored["rng"]
        self._live = (part, buffer, rng)
        for row in part:
            self.rows_read += 1
            if len(buffer) < self.buffer_size:
                buffer.append(row)
                continue
            if self.buffer_size == 0:
                yield row
                continue
            i = int(rng.integers(len(buffer)))
            out, buffer[i] = buffer[i], row  # the slot holds the new row before `out` leaves: a clean state
            yield out
        while buffer:
            yield buffer.pop(int(rng.integers(len(buffer))))

    def __iter__(self) -> Iterator[dict]:
        batch = []
        for row in self.rows():
            batch.append(row)
            if len(batch) == self.batch_size:
                yield self._collate(batch)
                batch = []
        if batch:
            yield self._collate(batch)

    def _collate(self, rows: list[dict]) -> dict:
        batch = self.collate_fn(rows)
        return batch if self.device is None else send_to_device(batch, self.device)

    def endless(self) -> Iterator[dict]:
        """The batches of this epoch (from the restored position), then of every following epoch."""
        while True:
            yield from self
            self.epoch += 1

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """Where this process is: epoch, stream position, the buffer's rows, the generator's state."""
        if self._live is None:  # nothing read yet
            return dict(epoch=self.epoch, source=None, buffer=[], rng=None)
        part, buffer, rng = self._live
        source, generator = part.state_dict(), rng.bit_generator.state
        return dict(epoch=self.epoch, source=source, buffer=list(buffer), rng=generator)

    def save(self, folder: str | Path) -> None:
        """This process's state into `folder/stream_state_<rank>.safetensors`."""
        state = self.state_dict()
        tensors, rows = rows_to_tensors(state.pop("buffer"))
        shape = dict(world_size=self.world_size, batch_size=self.batch_size, buffer_size=self.buffer_size)
        state |= shape | dict(rows=rows, rows_read=self.rows_read)  # rows_read: since this process started
        Path(folder).mkdir(parents=True, exist_ok=True)
        save_tensors(Path(folder) / state_file(self.rank), tensors, state)

    def load(self, folder: str | Path) -> None:
        """Continue from this process's state in `folder` (see `check_stream_state` for the checks)."""
        tensors, state = load_tensors(Path(folder) / state_file(self.rank))
        self.epoch = state["epoch"]
        if state["source"] is not None:
            buffer = tensors_to_rows(tensors, state["rows"])
            self._restored = dict(source=state["source"], buffer=buffer, rng=state["rng"])


def rows_to_tensors(rows: list[dict]) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """(the rows' tensors keyed 'row.<i>.<column>', the rows with their tensors left out) for save_tensors."""
    tensors = {f"row.{i}.{k}": v for i, row in enumerate(rows) for k, v in row.items() if torch.is_tensor(v)}
    plain = [{k: v for k, v in row.items() if not torch.is_tensor(v)} for row in rows]
    return tensors, plain


def tensors_to_rows(tensors: dict[str, torch.Tensor], plain: list[dict]) -> list[dict]:
    """The rows that `rows_to_tensors` split, put back together."""
    rows = [dict(row) for row in plain]
    for key, value in tensors.items():
        _, i, column = key.split(".", 2)
        rows[int(i)][column] = value
    return rows


# ---------------------------------------------------------------- resume
def resume_stream(accelerator, loader, output_dir: str, resume_from_checkpoint: str | None, first_step: int):
    """Puts a StreamLoader's state into every checkpoint `accelerator.save_state` writes and, when the run
    resumes at `first_step` > 0, continues from the state in that checkpoint. Other loaders: nothing to do.
    ValueError naming --resume_from_checkpoint when the checkpoint cannot continue this stream exactly."""
    if not isinstance(loader, StreamLoader):
        return
    accelerator.register_save_state_pre_hook(lambda models, weights, folder: loader.save(folder))
    if first_step == 0:
        return
    folder = resumed_folder(output_dir, resume_from_checkpoint, first_step)
    check_stream_state(folder, loader)
    loader.load(folder)


def resumed_folder(output_dir: str, resume_from_checkpoint: str, step: int) -> Path:
    """The checkpoint folder `hfldm.training.checkpoints.resume` loaded `step` from."""
    if resume_from_checkpoint != "latest":
        return Path(resume_from_checkpoint)
    for folder in reversed(list_checkpoints(output_dir)):
        if json.loads((folder / MANIFEST).read_text()).get("step") == step:
            return folder
    raise ValueError(f"--resume_from_checkpoint latest: no checkpoint of step {step} in {output_dir}")


def check_stream_state(folder: Path, loader: StreamLoader) -> None:
    """ValueError naming the argument unless `folder` holds the stream states of as many processes as this
    run has, read in batches and a shuffle buffer of this run's sizes: anything else changes the order."""
    files = sorted(folder.glob("stream_state_*.safetensors"))
    name = f"--resume_from_checkpoint: {folder.name}"
    if not files:
        raise ValueError(
            f"{name} holds no stream position (saved without --streaming); resume it without "
            "--streaming, or start a new --output_dir"
        )
    _, saved = load_tensors(files[0])
    if len(files) != loader.world_size:
        raise ValueError(
            f"{name} holds the stream positions of {len(files)} process(es); a --streaming run "
            f"resumes exactly only on as many, this one has {loader.world_size}: launch it with "
            f"--num_processes {len(files)}"
        )
    if saved["batch_size"] != loader.batch_size:
        raise ValueError(
            f"--train_batch_size: {folder.name} read the stream in batches of "
            f"{saved['batch_size']} per process, not {loader.batch_size}"
        )
    if saved["buffer_size"] != loader.buffer_size:
        raise ValueError(
            f"--shuffle_buffer_size: {folder.name} shuffled the stream with a buffer of "
            f"{saved['buffer_size']} rows, not {loader.buffer_size}"
        )
