"""What the sampling commands share (generate, upscale, inpaint, eval, sketch): --model / --dtype resolution,
pipeline loading with a scheduler swapped, a user's image, grids, the SR model of the cascade. One module,
so that the commands import it and not each other. torch and diffusers are imported inside the functions,
after the arguments have been checked.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from hfldm.commands import MAX_PIXELS

DEFAULT_MODEL = None  # --model's default: env HFLDM_MODEL, else the bundled model (hfldm.resources)
# --scheduler choice -> (module, class); "saved" keeps the scheduler stored with the model
SCHEDULERS = {
    "ddpm": ("hfldm.schedulers.ddpm", "DDPMScheduler"),
    "ddim": ("hfldm.schedulers.ddim", "DDIMScheduler"),
    "dpm": ("diffusers", "DPMSolverMultistepScheduler"),
    "euler": ("diffusers", "EulerDiscreteScheduler"),
    "lcm": ("diffusers", "LCMScheduler"),  # consistency-distilled models only (docs/few_step.md), 1-8 steps
}


PROGRESS_DELAY = 2.0  # seconds before a sampling progress bar appears (tqdm's delay)


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # user/repo (hfldm.pipelines.loading's, not imported
# here so that bad arguments fail before torch is imported)


def add_dtype_flag(parser, default: str = "auto") -> None:
    """--dtype of the commands that sample: the U-Net's and text encoder's precision (`hfldm.precision`)."""
    parser.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16", "float16"],
        default=default,
        help=f"U-Net and text encoder precision (default {default}; auto: bfloat16 where the device computes "
        "it natively, else float32, `hfldm env` says which); the autoencoder and the sampler stay float32",
    )


def resolve_model(model: str | None, default_model=None, variable: str = "HFLDM_MODEL") -> str:
    """A local folder with model_index.json, or a Hub id (None: `default_model()`, by default
    hfldm.resources.default_model, which env `variable` overrides); FileNotFoundError otherwise."""
    from hfldm import resources

    default = model is None
    model = (default_model or resources.default_model)() if default else model
    path = Path(model)
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(f"{model} is not a saved pipeline (no model_index.json in it)")
        return str(path)
    if not default and HUB_ID.match(model) and not path.parent.is_dir():
        return model
    hint = f" (set {variable}, train one first, or pass the model's flag)" if default else ""
    raise FileNotFoundError(f"model folder not found: {model}{hint}")


def resolve_sr_model(model: str, argument: str = "--upscale") -> str:
    """`resolve_model` for a super-resolution model ("default": the default SR model), its errors naming
    `argument`."""
    from hfldm.resources import default_sr_model

    try:
        return resolve_model(None if model == "default" else model, default_sr_model, "HFLDM_SR_MODEL")
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{argument}: {e}") from None


@contextlib.contextmanager
def quiet_loading():
    """No loading bars or info logs from diffusers / transformers: an error stays one line on stderr."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(verbosity)
        diffusers_logging.enable_progress_bar()
        transformers_logging.enable_progress_bar()


def load_pipeline(
    model: str,
    scheduler: str,
    device: str | None,
    argument: str = "--model",
    pipeline_class=None,
    dtype: str = "float32",
):
    """The saved pipeline (a LatentDiffusionPipeline unless `pipeline_class`) on `device`, with its scheduler
    swapped if asked; U-Net and τ_θ in `dtype` (a `hfldm.precision.resolve_dtype` name)."""
    import importlib

    import torch

    from hfldm.pipelines.loading import load_pipeline as load
    from hfldm.pipelines.pipeline_latent_diffusion import LatentDiffusionPipeline
    from hfldm.precision import resolve_dtype
    from hfldm.runtime.folders import is_export

    pipeline_class = pipeline_class or LatentDiffusionPipeline
    if is_export(model):  # an `hfldm export` folder: the same pipeline class on OpenVINO / ONNX Runtime
        pipe = load_exported(model, device, argument, pipeline_class, dtype)
    else:
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = resolve_dtype(dtype, "--dtype", device)
        with quiet_loading():
            pipe = load(model, argument, torch_dtype, pipeline_class=pipeline_class)
    if scheduler != "saved":
        module, name = SCHEDULERS[scheduler]
        pipe.scheduler = getattr(importlib.import_module(module), name).from_config(pipe.scheduler.config)
    if not is_export(model):
        pipe.to(device)
    pipe.set_progress_bar_config(delay=PROGRESS_DELAY)  # no bar for work done in a second or two
    return pipe


def load_exported(model: str, device: str | None, argument: str, pipeline_class, dtype: str):
    """The exported folder `model` as a `pipeline_class` run by its runtime on the CPU; "auto" `dtype` is the
    precision it was exported with. ValueError naming `argument` for another kind of pipeline, and naming
    --device for a device other than the CPU."""
    from hfldm.runtime import load_pipeline

    if device not in (None, "cpu"):
        raise ValueError(f"--device: {model} is an exported folder, which runs on the CPU; got {device}")
    with quiet_loading():
        pipe = load_pipeline(model, None if dtype == "auto" else dtype, argument=argument)
    if not isinstance(pipe, pipeline_class):
        raise ValueError(
            f"{argument}: {model} is an export of a {type(pipe).__name__}; this command needs a "
            f"{pipeline_class.__name__}"
        )
    return pipe


def grid_of(images: list, cols: int):
    """diffusers' make_image_grid with `cols` columns, the last row filled with black cells."""
    from hfldm.data.grid import tile

    return tile(images, cols, fill="black")


def open_image(path: str, flag: str = "--image", mode: str = "RGB", max_pixels: int = MAX_PIXELS):
    """The `flag` file as a PIL image in `mode` (RGB: 16-bit, float, palette, alpha on white converted as the
    data loader does; L for a mask), through the one door `hfldm.data.user_images.open_user_image`: its
    pixel count checked against `max_pixels` before decoding; ValueError naming `flag` otherwise."""
    from hfldm.data.user_images import open_user_image

    return open_user_image(path, flag, mode=mode, max_pixels=max_pixels)


def check_device(device: str | None) -> None:
    """ValueError naming --device when torch does not know it or this machine lacks it."""
    import torch

    if device is None:
        return
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise ValueError(
            f"--device: {device!r} is not a torch device (cpu, cuda, cuda:0, mps, ...)"
        ) from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device: {device} asked for, but torch sees no CUDA GPU here; use cpu")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device: {device} asked for, but torch has no MPS device here; use cpu")


def load_sr_pipeline(
    model: str, scheduler: str, device: str | None, argument: str = "--model", dtype: str = "float32"
):
    """The saved LatentDiffusionSuperResolutionPipeline on `device`, scheduler swapped if asked, its U-Net
    in `dtype` (a `hfldm.precision.resolve_dtype` name)."""
    from hfldm.pipelines.pipeline_latent_diffusion_superres import LatentDiffusionSuperResolutionPipeline

    return load_pipeline(model, scheduler, device, argument, LatentDiffusionSuperResolutionPipeline, dtype)


def upscale(pipe, images: list, steps: int, seed: int, eta: float = 0.0) -> list:
    """`images` (PIL) upscaled by the SR pipeline, image i drawn with a generator seeded by seed + i."""
    import torch

    generators = [torch.Generator("cpu").manual_seed(seed + i) for i in range(len(images))]
    return pipe(images, num_inference_steps=steps, eta=eta, generator=generators).images
