"""The Space's "Upscale" tab: the super-resolution LDM (LDM §4.4) on an uploaded image or a generated one.

The model comes from env `HFLDM_SR_MODEL` (a pipeline folder or a Hub id), else from the bundled
`models/hfldm-emoji-sr` when it is there; without one (or with HFLDM_SR_MODEL=none) the tab is not shown.
Its examples are the PNGs in the model folder's examples/ (optional_models.py).
Requests are bounded by the same request_limits.Limits as generation (steps; the output side by max_size;
steps × output pixels by max_work).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import gradio as gr
import PIL.Image
import torch
from inputs import open_upload, readable
from optional_models import optional_model_source
from request_limits import MAX_SEED, Limits, check_between, whole_number
from serving import JOBS, serving_pipeline_of, step_progress

import hfldm

DEFAULT_SR_MODEL = "models/hfldm-emoji-sr"  # relative to the repo root, or to the Space's folder
_SR_LOCK = threading.Lock()
FRAME = 256  # pixels of the image frames: small images are shown enlarged


def sr_model_source(roots: list[Path], env: Mapping[str, str] = os.environ) -> str | None:
    """HFLDM_SR_MODEL, else the bundled SR folder under one of `roots`, else None (no Upscale tab; also for
    HFLDM_SR_MODEL=none)."""
    return optional_model_source(roots, "HFLDM_SR_MODEL", DEFAULT_SR_MODEL, env)


def serving_sr_pipeline(source: str) -> hfldm.LatentDiffusionSuperResolutionPipeline:
    return serving_pipeline_of(source, "HFLDM_SR_MODEL", hfldm.LatentDiffusionSuperResolutionPipeline)


def upscale(
    pipe,
    limits: Limits,
    image: PIL.Image.Image | None,
    steps: int = 50,
    seed: int = 0,
    progress: Callable | None = None,
) -> PIL.Image.Image:
    """`image` upscaled by the SR pipeline's factor s with `steps` DDIM steps from `seed`; ValueError, worded
    for the user, for a missing image or one outside `limits`, before any sampling."""
    if image is None:
        raise ValueError("Upload an image to upscale (or pick an example).")
    steps, seed = whole_number(steps, "Steps"), whole_number(seed, "Seed")
    check_between("Steps", steps, 1, limits.max_steps)
    check_between("Seed", seed, 0, MAX_SEED)
    s, multiple = pipe.upscale_factor, pipe.size_multiple
    w, h = image.size
    if w % multiple or h % multiple:
        raise ValueError(
            f"The image is {w}×{h} pixels; this model takes sides that are multiples of {multiple}."
        )
    if max(w, h) * s > limits.max_size:
        raise ValueError(
            f"The image is {w}×{h} pixels; upscaled {s}× it would pass this Space's {limits.max_size} pixels."
        )
    work = steps * w * h * s * s
    if work > limits.max_work:
        raise ValueError(
            f"This request is {steps} steps × {w * s}×{h * s} pixels = {work / 1e6:.1f} M pixel-steps; this "
            f"Space serves up to {limits.max_work / 1e6:.1f} M per request. Use fewer steps or a smaller "
            "image."
        )

    with _SR_LOCK:
        generator = torch.Generator("cpu").manual_seed(seed)
        return pipe(
            image.convert("RGB"),
            num_inference_steps=steps,
            generator=generator,
            callback_on_step_end=step_progress(progress, steps, "Upscaling"),
        ).images[0]


def upscale_tab(pipe, limits: Limits, examples: list[str]) -> None:
    """The tab's components and its /upscale endpoint (inside the caller's gr.Blocks)."""
    s = pipe.upscale_factor
    gr.Markdown(
        f"Super-resolution by concatenation (LDM §4.4): the low-resolution image is folded onto the latent "
        f"grid and concatenated to z_t; the U-Net denoises a {s}× larger image's latent."
    )
    with gr.Row():
        with gr.Column():
            # a file path: the upload is decoded by inputs.open_upload, behind hfldm's pixel bound
            low = gr.Image(type="filepath", label="Low-resolution image", height=FRAME, elem_id="sr-input")
            if examples:
                gr.Examples([[e] for e in examples], inputs=[low], label="Examples", elem_id="sr-examples")
            steps = gr.Slider(
                1,
                limits.max_steps,
                value=min(50, limits.max_steps),
                step=1,
                precision=0,
                label="Upscaling steps",
            )
            seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Upscaling seed")
            button = gr.Button("Upscale", variant="primary")
        high = gr.Image(type="pil", label=f"Upscaled {s}×", format="png", height=FRAME, elem_id="sr-output")

    def run(image, steps=50, seed=0, progress=gr.Progress()):  # noqa: B008 (Gradio's progress idiom)
        try:
            picture = open_upload(
                image, "Low-resolution image", "Upload an image to upscale (or pick an example)."
            )
            return upscale(pipe, limits, picture, steps, seed, progress)
        except ValueError as e:
            raise gr.Error(str(e), print_exception=False) from None

    for component, what in ((low, "an image"), (steps, "a whole number"), (seed, "a whole number")):
        readable(component, what)
    button.click(run, [low, steps, seed], [high], api_name="upscale", **JOBS)
