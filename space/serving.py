"""What every tab of the Space shares: how its pipeline is loaded (one dtype for all, from HFLDM_DTYPE) and
how a pipeline's steps reach Gradio's progress bar."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from hfldm.pipelines.loading import load_pipeline
from hfldm.pipelines.pipeline_latent_diffusion import LatentDiffusionPipeline
from hfldm.precision import resolve_dtype
from hfldm.runtime.folders import is_export

# every tab's event runs under this one concurrency id: one job at a time across the whole Space (the CPU
# is shared; the tabs' pipelines would compete for its cores)
JOBS = {"concurrency_id": "hfldm", "concurrency_limit": 1}


def serving_pipeline_of(
    source: str, variable: str, pipeline_class=LatentDiffusionPipeline, env: Mapping[str, str] = os.environ
):
    """The `pipeline_class` saved at `source` (named by env `variable` in errors), on CPU, without a console
    progress bar; U-Net and τ_θ in env HFLDM_DTYPE (default auto: bfloat16 where the CPU computes it
    natively, else float32), the autoencoder in float32. An `hfldm export` folder runs on its runtime
    (OpenVINO / ONNX Runtime) in the precision it was exported with, or in HFLDM_DTYPE if set."""
    if is_export(source):
        from hfldm.runtime import load_pipeline as load_exported

        pipe = load_exported(source, env.get("HFLDM_DTYPE"), argument=variable)
        if not isinstance(pipe, pipeline_class):
            kind, wanted = type(pipe).__name__, pipeline_class.__name__
            raise ValueError(f"{variable}: {source} is an export of a {kind}, not a {wanted}")
        pipe.set_progress_bar_config(disable=True)
        return pipe
    dtype = resolve_dtype(env.get("HFLDM_DTYPE", "auto"), "HFLDM_DTYPE")
    pipe = load_pipeline(source, variable, dtype, pipeline_class=pipeline_class)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to("cpu")


def step_progress(progress: Callable | None, steps: int, desc: str) -> Callable:
    """A `callback_on_step_end` that reports step i + 1 of `steps` to Gradio's `progress` (if any)."""

    def on_step_end(_pipe, i: int, _t, _tensors: dict) -> dict:
        if progress is not None:
            progress((i + 1, steps), desc=desc)
        return {}

    return on_step_end
