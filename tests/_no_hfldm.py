"""Loading saved folders in a fresh interpreter where hfldm cannot be imported (self-contained folders)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# Runs with `python -c` in a fresh interpreter: `import hfldm` raises before diffusers is imported, no path
# of the repository is on sys.path, and hfldm's requirements beyond torch, diffusers and transformers
# (datasets, peft) read as not installed; loads each (name, folder, steps, call kwargs) job and samples.
NO_HFLDM_LOADER = """
import importlib.abc, json, sys

class NoHfldm(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "hfldm" or name.startswith("hfldm."):
            raise ImportError(f"hfldm cannot be imported here ({name})")

sys.meta_path.insert(0, NoHfldm())
sys.modules.update(datasets=None, peft=None)  # import raises ImportError, find_spec answers None
repo = sys.argv[3]
sys.path = [p for p in sys.path if p and not (p.startswith(repo) and "site-packages" not in p)]

import numpy as np, torch
from diffusers import DiffusionPipeline

try:
    import hfldm  # noqa: F401
    raise SystemExit("hfldm is importable")
except ImportError:
    pass
images, modules = {}, {}
for name, folder, steps, call_kwargs in json.loads(sys.argv[1]):
    pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(0)
    call_kwargs = {k: np.asarray(v, dtype=np.float32) if k in ("image", "mask_image") else v
                   for k, v in call_kwargs.items()}
    out = pipe(num_inference_steps=steps, generator=generator, output_type="np", **call_kwargs)
    images[name] = out.images
    modules[name] = [type(m).__module__ for m in (pipe, pipe.unet, pipe.vae, pipe.scheduler)]
modules["loaded hfldm"] = sorted(m for m in sys.modules if m == "hfldm" or m.startswith("hfldm."))
np.savez(sys.argv[2], **images)
print(json.dumps(modules))
"""


def load_without_hfldm(jobs: list, tmp: Path) -> tuple[dict, dict]:
    """({name: images}, {name: module names of pipeline, unet, vae, scheduler}) from NO_HFLDM_LOADER."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "HF_MODULES_CACHE": str(tmp / "mods")}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", NO_HFLDM_LOADER, json.dumps(jobs), str(tmp / "images.npz"), str(REPO)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    return dict(np.load(tmp / "images.npz")), modules
