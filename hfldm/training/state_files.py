"""Training state that accelerate would pickle, stored as safetensors + JSON instead, so that resuming a
checkpoint never unpickles anything: the RNG states of each process and the EMA of the U-Net.

A safetensors file holds the tensors (the RNG states are byte or integer tensors); its string metadata
holds the rest as JSON under the key "state". Loading parses the header and copies bytes: no code runs.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from diffusers.training_utils import EMAModel
from safetensors import safe_open
from safetensors.torch import save_file

EMA_FILE = "ema.safetensors"


def rng_file(process_index: int) -> str:
    """The name of process `process_index`'s RNG state file in a checkpoint."""
    return f"rng_state_{process_index}.safetensors"


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Write `tensors` and the JSON-serialisable `state` to the safetensors file `path`."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    save_file(tensors, str(path), metadata={"state": json.dumps(state)})


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict, dict]:
    """Returns (tensors, state) as written by `save_tensors`: a dict of tensors on `device`, and the JSON."""
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        state = json.loads((f.metadata() or {}).get("state", "{}"))
        return {k: f.get_tensor(k) for k in f.keys()}, state


def save_rng_state(path: str | Path) -> None:
    """The global RNGs of this process (Python, NumPy, torch CPU and CUDA) into `path`."""
    py_version, py_state, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    tensors = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_keys.astype(np.int64)),
        "python": torch.tensor(py_state, dtype=torch.int64),
    }
    if torch.cuda.is_available():
        tensors |= {f"cuda_{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    state = dict(
        python_version=py_version,
        python_gauss=py_gauss,
        numpy_kind=np_kind,
        numpy_pos=np_pos,
        numpy_has_gauss=np_has_gauss,
        numpy_gauss=np_gauss,
    )
    save_tensors(path, tensors, state)


def load_rng_state(path: str | Path) -> None:
    """Restore the global RNGs of this process from a file of `save_rng_state`."""
    tensors, s = load_tensors(path)
    random.setstate((s["python_version"], tuple(tensors["python"].tolist()), s["python_gauss"]))
    keys = tensors["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state((s["numpy_kind"], keys, s["numpy_pos"], s["numpy_has_gauss"], s["numpy_gauss"]))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda_{i}"] for i in range(torch.cuda.device_count()) if f"cuda_{i}" in tensors]
    if cuda:
        torch.cuda.set_rng_state_all(cuda)


def save_ema(ema: EMAModel, folder: str | Path) -> None:
    """diffusers' EMAModel state (shadow weights, step, decay settings) into `folder/ema.safetensors`."""
    state = ema.state_dict()
    shadow = state.pop("shadow_params")
    save_tensors(Path(folder) / EMA_FILE, {f"shadow_params.{i}": p for i, p in enumerate(shadow)}, state)


def load_ema(ema: EMAModel, folder: str | Path) -> None:
    """Load `folder/ema.safetensors` into `ema` (its shadow weights stay on their device)."""
    path = Path(folder) / EMA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"--resume_from_checkpoint: {path} is missing (the EMA of --use_ema)")
    tensors, state = load_tensors(path, ema.shadow_params[0].device if ema.shadow_params else "cpu")
    shadow = [tensors[f"shadow_params.{i}"] for i in range(len(tensors))]
    ema.load_state_dict(state | {"shadow_params": shadow})
