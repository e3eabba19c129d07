"""The Space's "Inpaint" tab: the inpainting LDM (LDM §4.5) on an uploaded image with a mask painted on it.

The model comes from env `HFLDM_INPAINT_MODEL` (a pipeline folder or a Hub id), else from the bundled
`models/hfldm-emoji-inpaint` when it is there; without one (or with HFLDM_INPAINT_MODEL=none) the tab is not
shown. The image is edited in Gradio's ImageEditor on a fixed canvas: whatever is painted on its layer (any
colour), or is white in the optional mask uploaded beside it, is repainted, the rest is kept. The examples
(the model folder's held-out examples/*.png with their captions) come with a mask (examples/centre-mask.png,
the centre 16 × 16 of 32 px: the hole the model card evaluates), so that one click and Inpaint run. Image
and mask are brought to the model's own size (a small model is trained at one size: emoji at 32 px) and
the result is the model's size. Requests are bounded by the same request_limits.Limits as generation.
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
from optional_models import example_images, optional_model_source
from request_limits import MAX_SEED, Limits, check_request, whole_number
from serving import JOBS, serving_pipeline_of, step_progress

import hfldm
from hfldm.data.images import to_rgb
from hfldm.data.user_images import open_user_image

DEFAULT_INPAINT_MODEL = "models/hfldm-emoji-inpaint"
EXAMPLE_MASK = Path(__file__).parent / "examples" / "centre-mask.png"
CANVAS = 256  # pixels of the editor's canvas: small images are shown (and painted on) enlarged
_INPAINT_LOCK = threading.Lock()


def inpaint_model_source(roots: list[Path], env: Mapping[str, str] = os.environ) -> str | None:
    """HFLDM_INPAINT_MODEL, else the bundled inpainting folder under one of `roots`, else None (no tab)."""
    return optional_model_source(roots, "HFLDM_INPAINT_MODEL", DEFAULT_INPAINT_MODEL, env)


def serving_inpaint_pipeline(source: str) -> hfldm.LatentDiffusionInpaintPipeline:
    return serving_pipeline_of(source, "HFLDM_INPAINT_MODEL", hfldm.LatentDiffusionInpaintPipeline)


def inpaint_example_rows(source: str) -> list[list[str]]:
    """[image, mask, prompt] rows: the folder's examples/*.png (export_model.py writes them in the order of
    its example_captions.txt, whose lines are their captions; "" without one), each with EXAMPLE_MASK."""
    images = example_images(source)
    path = Path(source) / "example_captions.txt"
    captions = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    captions += [""] * (len(images) - len(captions))
    return [[image, str(EXAMPLE_MASK), caption] for image, caption in zip(images, captions, strict=False)]


def editor_image_and_mask(
    value: dict | None, mask_path: str | None = None
) -> tuple[PIL.Image.Image, PIL.Image.Image]:
    """(the background as RGB, transparency on white, and the mask: white where any layer is painted, its
    alpha > 0, or where the uploaded mask at `mask_path` is white) of an ImageEditor value;
    ValueError, worded for the user, when there is no image, nothing is painted or the mask is unreadable."""
    background = (value or {}).get("background")
    if background is None:
        raise ValueError("Upload an image to inpaint (or pick an example), then paint over what to repaint.")
    painted = np.zeros((background.height, background.width), dtype=bool)
    for layer in value.get("layers") or []:
        alpha = np.asarray(layer.convert("RGBA").resize(background.size, PIL.Image.NEAREST))[..., 3]
        painted |= alpha > 0
    if mask_path is not None:
        mask = open_user_image(mask_path, "Mask", mode="L").resize(background.size, PIL.Image.NEAREST)
        painted |= np.asarray(mask) >= 128
    if not painted.any():
        raise ValueError(
            "Paint over the part of the image to repaint (the brush marks the mask), or upload a mask "
            "(white = repaint)."
        )
    return to_rgb(background), PIL.Image.fromarray(painted.astype(np.uint8) * 255)


def inpaint(
    pipe,
    limits: Limits,
    editor_value: dict | None,
    prompt: str = "",
    steps: int = 25,
    guidance_scale: float = 3.0,
    seed: int = 0,
    progress: Callable | None = None,
    mask: str | None = None,
) -> PIL.Image.Image:
    """The painted region of the editor's image (and the white of the mask file `mask`) repainted by the
    inpainting pipeline with `prompt`, at the model's size; ValueError, worded for the user, for a request it
    cannot serve, before any sampling."""
    image, mask = editor_image_and_mask(editor_value, mask)
    prompt = text(prompt, "Prompt", limits.max_prompt_chars)
    steps, seed = whole_number(steps, "Steps"), whole_number(seed, "Seed")
    guidance_scale = real(guidance_scale, "Guidance scale")
    height, width = pipe.default_image_size()
    check_request(limits, steps, 1, height, pipe.size_multiple, guidance_scale, seed)
    image = image.resize((width, height), PIL.Image.BOX) if image.size != (width, height) else image
    mask = mask.resize((width, height), PIL.Image.BOX)  # then binarised at 0.5 by the pipeline

    with _INPAINT_LOCK:
        return pipe(
            prompt if pipe.is_text_conditional else None,
            image=image,
            mask_image=mask,
            num_inference_steps=steps,
            guidance_scale=float(guidance_scale),
            generator=torch.Generator("cpu").manual_seed(seed),
            callback_on_step_end=step_progress(progress, steps, "Inpainting"),
        ).images[0]


def inpaint_tab(pipe, limits: Limits, examples: list[list[str]]) -> None:
    """The tab's components and its /inpaint endpoint (inside the caller's gr.Blocks); `examples`: rows of
    `inpaint_example_rows`."""
    height, width = pipe.default_image_size()
    gr.Markdown(
        f"Inpainting by concatenation (LDM §4.5): the masked image's latent and the mask are concatenated to "
        f"z_t, the prompt enters by cross-attention. Paint over what to repaint (or upload a mask, white = "
        f"repaint); the rest is kept exactly. "
        f"Images are brought to the model's {width}×{height} pixels."
    )
    with gr.Row():
        with gr.Column():
            editor = gr.ImageEditor(  # bounded_editor: pixels checked before Gradio decodes an upload
                type="pil",
                label="Image: paint the region to repaint",
                image_mode="RGBA",  # layer alpha
                canvas_size=(CANVAS, CANVAS),
                fixed_canvas=True,
                layers=False,
                transforms=(),
                brush=gr.Brush(colors=["#ff00ff"], color_mode="fixed", default_size=24),
                sources=("upload", "clipboard"),
                elem_id="inpaint-editor",
            )
            # a file path: the upload is decoded by hfldm.data.user_images, behind its pixel bound
            mask = gr.Image(
                type="filepath",
                label="Mask (optional)",
                height=CANVAS // 2,
                sources=("upload", "clipboard"),
                elem_id="inpaint-mask",
            )
            prompt = gr.Textbox(
                "", label="Prompt", visible=pipe.is_text_conditional, elem_id="inpaint-prompt"
            )
            with gr.Row():
                steps = gr.Slider(
                    1, limits.max_steps, value=min(25, limits.max_steps), step=1, precision=0, label="Steps"
                )
                guidance = gr.Slider(0, limits.max_guidance, value=3.0, step=0.5, label="Guidance scale")
                seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
            button = gr.Button("Inpaint", variant="primary")
        with gr.Column():
            result = gr.Image(
                type="pil", label="Inpainted", format="png", height=CANVAS, elem_id="inpaint-output"
            )
            if examples:  # each row: image, mask, caption (inpaint_example_rows); one click fills all three
                gr.Examples(
                    examples,
                    inputs=[editor, mask, prompt],
                    label="Examples: pick one, then Inpaint",
                    examples_per_page=4,
                    elem_id="inpaint-examples",
                )

    def run(image, prompt="", steps=25, guidance_scale=3.0, seed=0, mask=None, progress=gr.Progress()):  # noqa: B008
        try:
            return inpaint(pipe, limits, image, prompt, steps, guidance_scale, seed, progress, mask=mask)
        except ValueError as e:
            raise gr.Error(str(e), print_exception=False) from None

    bounded_editor(editor)
    for component, what in ((prompt, "text"), (steps, "a whole number"), (guidance, "a number")):
        readable(component, what)
    readable(seed, "a whole number")
    readable(mask, "an image")
    button.click(run, [editor, prompt, steps, guidance, seed, mask], [result], api_name="inpaint", **JOBS)
