"""The Space's "Sketch" tab: the sketch LDM (LDM §4.3.2, hfldm.training.sketch) on a drawing made in the page.

The model comes from env `HFLDM_SKETCH_MODEL` (a pipeline folder or a Hub id), else from the bundled
`models/hfldm-emoji-sketch` when it is there; without one (or with HFLDM_SKETCH_MODEL=none) the tab is not
shown. The user draws dark strokes on a white canvas (Gradio's Sketchpad; an uploaded drawing works too);
its composite, transparency on white, is the pipeline's `image`, which brings it to the model's size keeping
every stroke. Requests are bounded by the same request_limits.Limits as generation.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import gradio as gr
import numpy as np
import PIL.Image
import torch
from inputs import bounded_editor, readable, real, text
from optional_models import optional_model_source
from request_limits import MAX_SEED, Limits, check_request, whole_number
from serving import JOBS, serving_pipeline_of, step_progress

import hfldm
from hfldm.data.images import to_rgb

DEFAULT_SKETCH_MODEL = "models/hfldm-emoji-sketch"
CANVAS = 256  # pixels of the drawing canvas
_SKETCH_LOCK = threading.Lock()


def sketch_model_source(roots: list[Path], env: Mapping[str, str] = os.environ) -> str | None:
    """HFLDM_SKETCH_MODEL, else the bundled sketch folder under one of `roots`, else None (no tab)."""
    return optional_model_source(roots, "HFLDM_SKETCH_MODEL", DEFAULT_SKETCH_MODEL, env)


def serving_sketch_pipeline(source: str) -> hfldm.LatentDiffusionSketchPipeline:
    return serving_pipeline_of(source, "HFLDM_SKETCH_MODEL", hfldm.LatentDiffusionSketchPipeline)


def drawing(value: dict | None) -> PIL.Image.Image:
    """The sketchpad's composite (background and strokes; the layers over the background, or over white, when
    an API call sends no composite) as RGB, transparency on white; ValueError, worded for the user, when
    nothing is drawn."""
    value = value or {}
    composite, layers = value.get("composite"), [x for x in value.get("layers") or [] if x is not None]
    if composite is None and layers:
        background = value.get("background") or PIL.Image.new("RGBA", layers[0].size, "white")
        composite = background.convert("RGBA")
        for layer in layers:
            composite = PIL.Image.alpha_composite(composite, layer.convert("RGBA").resize(composite.size))
    if composite is None:
        raise ValueError("Draw a sketch first: dark strokes on the white canvas.")
    image = to_rgb(composite)
    if (np.asarray(image.convert("L")) < 128).sum() == 0:
        raise ValueError("The canvas is empty: draw dark strokes on it (e.g. a face's outline).")
    return image


def sketch(
    pipe,
    limits: Limits,
    value: dict | None,
    prompt: str = "",
    steps: int = 25,
    guidance_scale: float = 3.0,
    seed: int = 0,
    progress: Callable | None = None,
) -> PIL.Image.Image:
    """The image the sketch pipeline draws from the sketchpad's drawing and `prompt`, at the model's size;
    ValueError, worded for the user, for a request it cannot serve, before any sampling."""
    image = drawing(value)
    prompt = text(prompt, "Prompt", limits.max_prompt_chars)
    steps, seed = whole_number(steps, "Steps"), whole_number(seed, "Seed")
    guidance_scale = real(guidance_scale, "Guidance scale")
    height, _ = pipe.default_image_size()
    check_request(limits, steps, 1, height, pipe.size_multiple, guidance_scale, seed)
    with _SKETCH_LOCK:
        return pipe(
            prompt=prompt if pipe.is_text_conditional else None,
            image=image,
            num_inference_steps=steps,
            guidance_scale=float(guidance_scale),
            generator=torch.Generator("cpu").manual_seed(seed),
            callback_on_step_end=step_progress(progress, steps, "Drawing"),
        ).images[0]


def sketch_tab(pipe, limits: Limits) -> None:
    """The tab's components and its /sketch endpoint (inside the caller's gr.Blocks)."""
    height, width = pipe.default_image_size()
    gr.Markdown(
        f"Sketch to image (LDM §4.3.2): the strokes, folded onto the latent grid, are concatenated to z_t; "
        f"the prompt enters by cross-attention. Draw dark strokes on white (an outline, eyes, a mouth); the "
        f"model draws at its {width}×{height} pixels."
    )
    with gr.Row():
        with gr.Column():
            pad = gr.Sketchpad(
                type="pil",
                label="Sketch: draw dark strokes",
                image_mode="RGBA",
                canvas_size=(CANVAS, CANVAS),
                fixed_canvas=True,
                layers=False,
                brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=8),
                elem_id="sketch-pad",
            )
            prompt = gr.Textbox(
                "cat face", label="Prompt", visible=pipe.is_text_conditional, elem_id="sketch-prompt"
            )
            with gr.Row():
                steps = gr.Slider(
                    1, limits.max_steps, value=min(25, limits.max_steps), step=1, precision=0, label="Steps"
                )
                guidance = gr.Slider(0, limits.max_guidance, value=3.0, step=0.5, label="Guidance scale")
                seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
            button = gr.Button("Draw", variant="primary", elem_id="sketch-button")
        with gr.Column():
            result = gr.Image(type="pil", label="Drawn", format="png", height=CANVAS, elem_id="sketch-output")

    def run(image, prompt="", steps=25, guidance_scale=3.0, seed=0, progress=gr.Progress()):  # noqa: B008
        try:
            return sketch(pipe, limits, image, prompt, steps, guidance_scale, seed, progress)
        except ValueError as e:
            raise gr.Error(str(e), print_exception=False) from None

    bounded_editor(pad)
    for component, what in ((prompt, "text"), (steps, "a whole number"), (guidance, "a number")):
        readable(component, what)
    readable(seed, "a whole number")
    button.click(run, [pad, prompt, steps, guidance, seed], [result], api_name="sketch", **JOBS)
