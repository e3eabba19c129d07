"""A latent cache in K Parquet shards plus an index: written by several processes, resumable, streamable.

`hfldm cache-latents --num_shards K` splits the dataset into K contiguous shards (`Dataset.shard`) and
encodes each on its own (the rows of `hfldm.data.latent_cache`: posterior mean and std, text embeddings).
Process r of N writes the shards k with k mod N = r, so `accelerate launch` on N processes writes the same
files as one process. Each shard is written under a temporary name and renamed when complete: an
interrupted run, started again with the same command, skips the finished shards (never rewritten) and
resumes at the first incomplete one. The plan (`cache_plan.json`, written first) pins the arguments a
resumed run must repeat; the index (`cache_info.json` with the shards' names and row counts) is written
last, by process 0, once every shard exists. Training reads the shards as a Parquet dataset, map-style or
streamed with each process reading its own files (`--cached_latents DIR --streaming`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import uuid
from pathlib import Path

import datasets
import pyarrow.parquet
import torch
from accelerate import PartialState
from safetensors.torch import save_file

from hfldm.data.arguments import DataArguments
from hfldm.data.latent_cache import INFO_FILE, UNCOND_FILE, _features, _rows, write_info
from hfldm.data.loader import load_image_dataset, make_dataloader

PLAN_FILE = "cache_plan.json"


def shard_name(k: int, num_shards: int) -> str:
    """'shards/latents-00003-of-00016.parquet'."""
    return f"shards/latents-{k:05d}-of-{num_shards:05d}.parquet"


def is_sharded_cache(path: str | Path) -> bool:
    """True when `path` is a cache of `cache_latents_sharded` (its index lists shards)."""
    info = Path(path) / INFO_FILE
    return info.is_file() and "shards" in json.loads(info.read_text())


def check_plan(out: Path, plan: dict) -> None:
    """Writes `plan` into a new `out`, or checks that a resumed run repeats it; ValueError naming --out."""
    file = out / PLAN_FILE
    if file.is_file():
        if (before := json.loads(file.read_text())) != plan:
            changed = sorted(k for k in plan if plan[k] != before.get(k))
            raise ValueError(
                f"--out: {out} holds a cache begun with other arguments ({', '.join(changed)}); "
                "repeat them to resume it, or give a new --out"
            )
        return
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"--out: {out} exists, is not empty and holds no {PLAN_FILE} to resume")
    (out / "shards").mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(plan, indent=1))


def encode_shard(rows: datasets.Dataset, vae, text_model, features, batch_size: int, target: Path) -> int:
    """Encodes `rows` into the Parquet file `target` (renamed into place when complete); returns its rows."""
    loader = make_dataloader(rows, batch_size, shuffle=False)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        shard = datasets.Dataset.from_generator(
            _rows,
            features=features,
            cache_dir=tmp,
            fingerprint=uuid.uuid4().hex,
            gen_kwargs={"loader": loader, "vae": vae, "text_model": text_model, "features": features},
        )
        shard.to_parquet(str(partial))
    os.replace(partial, target)
    return len(shard)


def cache_latents_sharded(
    data: DataArguments,
    vae: torch.nn.Module,
    out: str | Path,
    num_shards: int,
    text_model: tuple | None = None,
    batch_size: int = 32,
) -> dict:
    """Encodes the shards of this process (all of them with one process) into `out`; returns the index
    (cache_info.json) once every shard exists, else None on the processes other than 0."""
    # processes without GPUs: torch.distributed on CPU (gloo), else each would think itself process 0 of 1
    out, state = Path(out), PartialState(cpu=not torch.cuda.is_available())
    if num_shards <= 0:
        raise ValueError(f"--num_shards: must be positive, got {num_shards}")
    if text_model is not None and data.caption_column is None:
        raise ValueError("--caption_column: a text encoder needs captions; set --caption_column")
    dataset, report = load_image_dataset(data)
    if num_shards > len(dataset):
        raise ValueError(
            f"--num_shards: {num_shards} shards of {len(dataset)} rows would leave some empty; "
            f"use at most {len(dataset)}"
        )
    uncond = None
    if text_model is not None:
        from hfldm.text import encode_text

        with torch.no_grad():
            hidden_states, mask = encode_text(*text_model, [""], device=next(vae.parameters()).device)
        uncond = {"encoder_hidden_states": hidden_states[0].float().cpu(), "attention_mask": mask[0].cpu()}
    features = _features(vae, data.resolution, uncond, report.label_names)
    plan = dict(
        num_shards=num_shards,
        num_rows=len(dataset),
        vae_class=type(vae).__name__,
        text_encoder=type(text_model[1]).__name__ if text_model else None,
        features=features.to_dict(),
        data=dataclasses.asdict(data),
    )
    if state.is_main_process:
        check_plan(out, json.loads(json.dumps(plan)))
    state.wait_for_everyone()
    check_plan(out, json.loads(json.dumps(plan)))  # every process: the same arguments
    for k in range(state.process_index, num_shards, state.num_processes):
        target = out / shard_name(k, num_shards)
        if not target.is_file():  # a finished shard is never rewritten
            rows = dataset.shard(num_shards=num_shards, index=k, contiguous=True)
            encode_shard(rows, vae, text_model, features, batch_size, target)
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    if uncond is not None:
        save_file({k: v.contiguous() for k, v in uncond.items()}, str(out / UNCOND_FILE))
    write_index(out, num_shards, vae=vae, text_model=text_model, report=report, data=data, features=features)
    return json.loads((out / INFO_FILE).read_text())


def write_index(out: Path, num_shards: int, **made) -> None:
    """cache_info.json of a sharded cache: `write_info`'s fields plus the shards with their row counts."""
    names = [shard_name(k, num_shards) for k in range(num_shards)]
    counts = [pyarrow.parquet.ParquetFile(out / n).metadata.num_rows for n in names]
    write_info(out, cache=range(sum(counts)), **made)  # it reads the cache's length
    info = json.loads((out / INFO_FILE).read_text())
    info["shards"] = [dict(file=n, num_rows=c) for n, c in zip(names, counts)]
    info["label_names"] = made["report"].label_names
    (out / INFO_FILE).write_text(json.dumps(info, indent=2))


def load_sharded_cache(path: str | Path, streaming: bool) -> datasets.Dataset | datasets.IterableDataset:
    """The shards of a sharded cache in torch format: a Dataset, or with `streaming` an IterableDataset with
    one shard per file (so that processes read their own files)."""
    path = Path(path)
    info = json.loads((path / INFO_FILE).read_text())
    files = [str(path / shard["file"]) for shard in info["shards"]]
    dataset = datasets.load_dataset("parquet", data_files=files, split="train", streaming=streaming)
    return dataset.with_format("torch")
