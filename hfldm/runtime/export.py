"""`export_pipeline`: an hfldm pipeline folder -> an OpenVINO or ONNX folder that `hfldm.runtime` runs.

τ_θ, the U-Net (at the guidance batch the pipeline's loop feeds it), the autoencoder's encoder and decoder are
traced from the torch pipeline in fp32 (`hfldm.runtime.graphs`) and written by the chosen `Format`; the
scheduler, the tokenizer, model_index.json and each component's config.json are copied, so the runtime loader
rebuilds the same pipeline class around runtime-backed components. The folder is written beside OUT and moved
into place at the end: an existing OUT is replaced (with `overwrite`) only by a complete export.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from hfldm import __version__
from hfldm.autoencoders.latent_space import latent_space
from hfldm.pipelines.loading import load_pipeline as load_torch_pipeline
from hfldm.runtime.folders import EXPORT_FILE, is_export, pipeline_class
from hfldm.runtime.formats import PRECISIONS, get_format
from hfldm.runtime.graphs import pipeline_graphs

COPIED = ["model_index.json", "scheduler", "tokenizer"]  # as they are; components keep their config.json
COMPRESSED = ("unet", "text_encoder")  # --weights int8 applies to ε_θ and τ_θ; E and D keep fp32 weights


def export_pipeline(
    model: str | Path,
    out: str | Path,
    format: str,
    dtype: str = "float32",
    batch_size: int | None = None,
    height: int | None = None,
    width: int | None = None,
    overwrite: bool = False,
    weights: str = "fp32",
) -> Path:
    """Export the hfldm pipeline folder `model` to `out` in `format` ("openvino" or "onnx").

    `dtype`: the precision the runtime computes in ("float32"; "bfloat16": OpenVINO's inference precision
    hint, kept in export.json). `batch_size`: images per call, which makes every graph but τ_θ static (the
    U-Net's at 2 × batch_size rows under guidance) at `height` × `width` output pixels (default: the model's
    native size); None keeps every dimension dynamic. `weights`: "fp32", or "int8" (OpenVINO: NNCF weight
    compression of the U-Net and τ_θ; the autoencoder keeps fp32, as in bf16). Returns `out`. ValueError
    naming the argument for a folder that is not an hfldm pipeline, an existing `out` without `overwrite`, a
    bad format, shape or weights.
    """
    fmt, model, out = get_format(format), Path(model), Path(out)
    check_args(model, out, dtype, batch_size, height, width, overwrite)
    if weights not in fmt.weights:
        raise ValueError(f"--weights: {fmt.name} exports store {' or '.join(fmt.weights)}, got {weights!r}")
    cls = pipeline_class(model, "MODEL")
    pipe = load_torch_pipeline(str(model), "MODEL", pipeline_class=cls)
    space = latent_space(pipe.vae)
    native = pipe.unet.config.sample_size * space.downsample_factor
    height, width = height or native, width or native
    multiple = space.downsample_factor * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
    if height % multiple or width % multiple:
        raise ValueError(f"--height/--width: {height}x{width} are not multiples of {multiple} for this model")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would stay on OUT
    try:
        with torch.no_grad():
            for graph in pipeline_graphs(pipe, batch_size or 2, height, width):
                (staging / graph.subfolder).mkdir(exist_ok=True)
                static = batch_size is not None and graph.subfolder != "text_encoder"  # τ_θ: any prompt
                path = staging / graph.subfolder / (graph.name + fmt.suffix)
                with warnings.catch_warnings():  # the tracers' notes on the input checks they bake in
                    warnings.simplefilter("ignore")
                    kept = weights if graph.subfolder in COMPRESSED else "fp32"
                    fmt.export(graph.module.eval(), graph.inputs, graph.outputs, path, static, weights=kept)
        copy_configs(model, staging)
        facts = dict(
            format=fmt.name,
            precision=dtype,
            weights=weights,
            hfldm_version=__version__,
            source=str(model),
            static=None if batch_size is None else dict(batch_size=batch_size, height=height, width=width),
            latent_channels=space.latent_channels,
            downsample_factor=space.downsample_factor,
        )
        (staging / EXPORT_FILE).write_text(json.dumps(facts, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def check_args(model: Path, out: Path, dtype, batch_size, height, width, overwrite: bool) -> None:
    """One-line ValueErrors for the arguments, before anything is loaded."""
    if not model.is_dir():
        raise ValueError(f"MODEL: no such folder {model}")
    if is_export(model):
        raise ValueError(
            f"MODEL: {model} is an exported folder already; export the torch folder it came from"
        )
    pipeline_class(model, "MODEL")
    if out.exists() and not overwrite:
        raise ValueError(f"OUT: {out} exists; pass --overwrite to replace it")
    if out.exists() and not (is_export(out) or (out.is_dir() and not any(out.iterdir()))):
        raise ValueError(
            f"OUT: {out} exists and is not an export; --overwrite replaces only an earlier export"
        )
    if out.resolve() == model.resolve() or model.resolve() in out.resolve().parents:
        raise ValueError(f"OUT: {out} is inside MODEL {model}; export somewhere else")
    if dtype not in PRECISIONS:
        raise ValueError(f"--dtype: expected one of {', '.join(PRECISIONS)}, got {dtype!r}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    if batch_size is None and (height or width):
        raise ValueError("--height/--width: they fix the size of a static export; give --batch-size too")


def copy_configs(model: Path, out: Path) -> None:
    """model_index.json, scheduler/, tokenizer/ and each component's config.json from `model` into `out`."""
    for name in COPIED:
        source = model / name
        if source.is_dir():
            shutil.copytree(source, out / name)
        elif source.is_file():
            shutil.copy2(source, out / name)
    for component in ("unet", "text_encoder", "vae"):
        if (model / component / "config.json").is_file():
            (out / component).mkdir(exist_ok=True)
            shutil.copy2(model / component / "config.json", out / component / "config.json")
