"""hfldm Space: a Gradio app that samples a LatentDiffusionPipeline on CPU.

The model comes from env `HFLDM_MODEL` (a pipeline folder or a Hub id), else from the bundled
`models/hfldm-emoji`; the Upscale tab's from env `HFLDM_SR_MODEL`, else `models/hfldm-emoji-sr`
(upscale_tab.py); the Inpaint tab's from env `HFLDM_INPAINT_MODEL`, else `models/hfldm-emoji-inpaint`
(inpaint_tab.py); the "LCM (fast)" scheduler entry's few-step model from env `HFLDM_FEW_STEP_MODEL`, else
`models/hfldm-emoji-lcm` beside the bundled model (docs/few_step.md). The limits of request_limits.py (env
HFLDM_MAX_STEPS, ...) are checked in `generate`, so that a client of the API cannot go past them either.
Run: `python space/app.py`; host and port from env HFLDM_HOST / HFLDM_PORT (else GRADIO_SERVER_NAME / _PORT,
as on a Space), default 127.0.0.1:7860.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import gradio as gr
import PIL.Image
import torch
from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler
from inpaint_tab import inpaint_example_rows, inpaint_model_source, inpaint_tab, serving_inpaint_pipeline
from inputs import clear_request_errors, flag, readable, real, text
from optional_models import example_images, optional_model_source
from request_limits import MAX_SEED, Limits, check_request, whole_number
from serving import JOBS, serving_pipeline_of, step_progress
from sketch_tab import serving_sketch_pipeline, sketch_model_source, sketch_tab
from upscale_tab import serving_sr_pipeline, sr_model_source, upscale, upscale_tab

import hfldm
from hfldm.runtime.folders import is_export
from hfldm.text.vocabulary import known_examples, read_vocabulary

SPACE_DIR = Path(__file__).resolve().parent
REPO_ROOT = SPACE_DIR.parent
DEFAULT_MODEL = "models/hfldm-emoji"  # relative to the repo root, or to this folder on a Space
EXAMPLES_FILE = "example_captions.txt"  # optional, in the model folder: held-out captions, one a line
# CLDR names of emoji held out of training (hfldm.data.emoji.is_test); examples when there is no EXAMPLES_FILE
HELD_OUT_CAPTIONS = ["thinking face", "robot", "weary cat", "blue heart", "tiger", "sunflower", "cupcake"]
# what each of _settings' components takes, for its error message
SETTING_KINDS = [
    "a whole number",
    "a number",
    "a whole number",
    "true or false",
    "a listed scheduler",
    "a whole number",
    "a listed size",
    "true or false",
]
MAX_UPLOAD = "5mb"  # bytes of one uploaded file (Gradio refuses more); pixels are bounded by inputs.py


SCHEDULERS = {
    "DDPM": hfldm.DDPMScheduler,
    "DDIM": hfldm.DDIMScheduler,
    "DPM-Solver": DPMSolverMultistepScheduler,
    "Euler": EulerDiscreteScheduler,
}
FAST = (
    "LCM (fast)"  # the few-step student (its own LCMScheduler), when there is one: 4 steps, one row per image
)
FAST_STEPS = 4
# small images (32 / 64 px) scaled up to their frame without blur
CSS = """#gallery img { image-rendering: pixelated; }
#inpaint-output img, #sr-input img, #sr-output img {
  image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain;
}
"""


# ---------------------------------------------------------------------------------------------------- model
def model_source(env: Mapping[str, str] = os.environ) -> str:
    """HFLDM_MODEL, else the bundled default folder; SystemExit saying what to do when neither is there."""
    if env.get("HFLDM_MODEL"):
        return env["HFLDM_MODEL"]
    for root in (REPO_ROOT, SPACE_DIR):
        if (root / DEFAULT_MODEL / "model_index.json").is_file():
            return str(root / DEFAULT_MODEL)
    raise SystemExit(
        f"No model: {REPO_ROOT / DEFAULT_MODEL} does not exist. Train it with `make train-default`, "
        "or set HFLDM_MODEL to a pipeline folder or a Hugging Face Hub id."
    )


def serving_pipeline(source: str, env: Mapping[str, str] = os.environ) -> hfldm.LatentDiffusionPipeline:
    """The pipeline saved at `source` (folder or Hub id) on CPU, built by the installed hfldm; its U-Net and
    τ_θ in env HFLDM_DTYPE (default auto: bfloat16 where the CPU computes it natively, else float32; the
    autoencoder stays float32); with env HFLDM_COMPILE=1 its U-Net is torch.compile'd (fullgraph: the first
    request compiles, minutes)."""
    pipe = serving_pipeline_of(source, "HFLDM_MODEL", env=env)
    if env.get("HFLDM_COMPILE") == "1" and not is_export(source):  # an export is compiled by its runtime
        pipe.unet = torch.compile(pipe.unet, fullgraph=True)
    return pipe


def example_captions(pipe: hfldm.LatentDiffusionPipeline, source: str) -> list[str]:
    """Held-out examples: the class names, else the model folder's EXAMPLES_FILE, else held-out emoji."""
    if not pipe.is_text_conditional:
        return list(pipe.label2id)[:8]
    path = Path(source) / EXAMPLES_FILE
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return [line.strip() for line in lines if line.strip()][:12] or HELD_OUT_CAPTIONS


def working_sizes(pipe: hfldm.LatentDiffusionPipeline) -> list[int]:
    """The image sides the model draws: its native size only (at others a small model draws texture)."""
    return [pipe.default_image_size()[0]]


# ------------------------------------------------------------------------------------------------ sampling
_PIPE_LOCK = threading.Lock()  # the scheduler is swapped on the shared pipeline: one request at a time


def generate(
    pipe: hfldm.LatentDiffusionPipeline,
    limits: Limits,
    prompt: str = "",
    negative_prompt: str = "",
    class_name: str | None = None,
    steps: int = 50,
    guidance_scale: float = 3.0,
    seed: int = 0,
    scheduler: str = "DDIM",
    num_images: int = 1,
    size: int | None = None,
    progress: Callable | None = None,
    sr_pipe=None,
    fast_pipe=None,
) -> list[PIL.Image.Image]:
    """Sample `num_images` images of size × size pixels (default: the model's) with `scheduler` from `seed`.

    Text models use `prompt` (empty: unconditional), class-conditional ones `class_name`; given `sr_pipe`,
    each image is then upscaled by it (the cascade, LDM §4.4) with the same steps, image i from seed + i.
    `progress((i, steps))` is called after each denoising step. Returns `num_images` RGB PIL images.
    A request outside `limits` or the model's options raises ValueError, worded for the user, before sampling.
    `scheduler` FAST samples `fast_pipe`, the model's consistency-distilled student, with its LCMScheduler.
    """
    prompt = text(prompt, "Prompt", limits.max_prompt_chars)
    negative_prompt = text(negative_prompt, "Negative prompt", limits.max_prompt_chars)
    steps, seed = whole_number(steps, "Steps"), whole_number(seed, "Seed")
    num_images = whole_number(num_images, "Number of images")
    size = working_sizes(pipe)[0] if size is None else whole_number(size, "Image size")
    guidance_scale = real(guidance_scale, "Guidance scale")
    check_request(limits, steps, num_images, size, pipe.size_multiple, guidance_scale, seed)
    if size not in working_sizes(pipe):
        raise ValueError(
            f"Image size {size} px: this model draws {working_sizes(pipe)[0]} px (the size it was trained at)"
            + (", and 64 px through Upscale." if sr_pipe is not None else ".")
        )
    fast = scheduler == FAST and fast_pipe is not None
    if scheduler not in SCHEDULERS and not fast:
        raise ValueError(f"Unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}.")
    if pipe.label2id and class_name not in pipe.label2id:
        raise ValueError(f"Unknown class {class_name!r}; choose one of the listed classes.")

    textual = pipe.is_text_conditional
    with _PIPE_LOCK:
        if fast:
            pipe = fast_pipe  # its LCMScheduler stays
        else:
            pipe.scheduler = SCHEDULERS[scheduler].from_config(pipe.scheduler.config)
        images = pipe(
            prompt=prompt if textual else None,
            negative_prompt=negative_prompt if textual and negative_prompt else None,
            class_labels=class_name if pipe.label2id else None,
            height=size,
            width=size,
            num_inference_steps=steps,
            guidance_scale=float(guidance_scale),
            num_images_per_prompt=num_images,
            generator=torch.Generator("cpu").manual_seed(seed),
            callback_on_step_end=step_progress(progress, steps, "Denoising"),
        ).images
    if sr_pipe is None:
        return images
    return [upscale(sr_pipe, limits, image, steps, seed + i, progress) for i, image in enumerate(images)]


def warm_up(pipe: hfldm.LatentDiffusionPipeline, limits: Limits, examples: list[str]) -> threading.Thread:
    """Starts one 2-step sample of the first example in a daemon thread: torch's first call on a shape sets
    up its kernels (about 4 s of the first request here), which the first visitor then no longer waits for;
    a request that arrives during it waits on the pipeline's lock, as behind any other request."""
    first = examples[0] if examples else None
    condition = {"class_name": first} if pipe.label2id else {"prompt": first or ""}

    def run() -> None:
        try:
            generate(pipe, limits, steps=2, num_images=min(4, limits.max_images), **condition)
        except Exception as e:  # a warm-up never takes the Space down; the first request will tell
            print(f"hfldm Space: warm-up skipped: {e}", flush=True)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------------------------------------------- UI
def default_scheduler(pipe: hfldm.LatentDiffusionPipeline) -> str:
    """The menu entry of the model's own scheduler class, else DDIM (LDM's sampler)."""
    names = {cls.__name__: name for name, cls in SCHEDULERS.items()}
    return names.get(type(pipe.scheduler).__name__, "DDIM")


def _settings(
    pipe: hfldm.LatentDiffusionPipeline, limits: Limits, guided: bool, sr_pipe, fast: bool = False
) -> list[gr.components.Component]:
    """Sliders and menus: [steps, guidance, seed, randomise, scheduler, number of images, size, upscale]."""
    with gr.Accordion("Settings", open=True):
        steps = gr.Slider(
            1, limits.max_steps, value=min(50, limits.max_steps), step=1, precision=0, label="Steps"
        )
        guidance = gr.Slider(
            0, limits.max_guidance, value=3.0, step=0.5, label="Guidance scale", visible=guided
        )
        choices = [*SCHEDULERS, *([FAST] if fast else [])]
        scheduler = gr.Dropdown(choices, value=default_scheduler(pipe), label="Scheduler")
        if fast:  # the few-step student: show its step count
            scheduler.change(
                lambda s: gr.update(value=FAST_STEPS) if s == FAST else gr.update(),
                scheduler,
                steps,
                api_name=False,
            )
        n = gr.Slider(
            1, limits.max_images, value=min(4, limits.max_images), step=1, precision=0, label="Images"
        )
        sizes = working_sizes(pipe)
        size = gr.Radio(
            sizes, value=sizes[0], label="Image size (pixels)", info="the size the model was trained at"
        )
        factor = getattr(sr_pipe, "upscale_factor", 2)
        upscale = gr.Checkbox(
            False,
            label=f"Upscale {factor}× with the super-resolution model ({sizes[0] * factor} px, LDM §4.4)",
            visible=sr_pipe is not None,
        )
        with gr.Row():
            seed = gr.Number(0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed")
            randomize = gr.Checkbox(True, label="Randomise seed")
    return [steps, guidance, seed, randomize, scheduler, n, size, upscale]


def prompt_box(
    pipe: hfldm.LatentDiffusionPipeline, names: list[str], held_out: Sequence[str], first: str
) -> gr.components.Component:
    """A text model's prompt: a menu of the names it was trained on, then the held-out example names marked
    "(held out)", that takes any text too."""
    choices = [(n, n) for n in names] + [(f"{h} (held out)", h) for h in held_out if h not in set(names)]
    return gr.Dropdown(
        choices,
        value=first,
        allow_custom_value=True,
        filterable=True,
        label="Prompt",
        info=f"Type or pick: the model draws the {len(names)} emoji names it was trained on best."
        if names
        else "Type a prompt (empty: unconditional).",
        visible=pipe.is_text_conditional,
    )


def example_blocks(component, known: Sequence[str], held_out: Sequence[str]) -> None:
    """Two example sets for `component`: names from training, and held-out ones, each labelled."""
    if known:
        gr.Examples(
            [[e] for e in known],
            inputs=[component],
            label="Names the model was trained on",
            examples_per_page=len(known),
        )
    if held_out:
        gr.Examples(
            [[e] for e in held_out],
            inputs=[component],
            label="Held-out names (never seen in training: often generic shapes)",
            examples_per_page=len(held_out),
        )


def build_demo(
    pipe: hfldm.LatentDiffusionPipeline,
    limits: Limits,
    examples: Sequence[str] = (),
    sr_pipe=None,
    sr_examples: Sequence[str] = (),
    inpaint_pipe=None,
    inpaint_examples: Sequence[Sequence[str]] = (),
    vocabulary: Sequence[str] = (),
    sketch_pipe=None,
    fast_pipe=None,
) -> gr.Blocks:
    """The Blocks app around `generate` (and, given `sr_pipe`, an Upscale tab, upscale_tab.py, and the
    Upscale option; given `inpaint_pipe`, an Inpaint tab, inpaint_tab.py): one request at a time across all
    tabs (one concurrency id), `limits.queue_size` more may wait. `examples` are held-out captions;
    `vocabulary` the names the model was trained on (its prompt menu and known examples)."""
    textual, classes = pipe.is_text_conditional, list(pipe.label2id)
    kind = "text-to-image" if textual else "class-conditional" if classes else "unconditional"
    names = list(vocabulary) if textual else []
    known = known_examples(names, 8)
    with gr.Blocks(title="hfldm latent diffusion") as demo:
        gr.Markdown(
            f"# hfldm: latent diffusion on CPU\nA {kind} latent diffusion model (Rombach et al., 2022): "
            f"a U-Net denoises a latent {pipe.vae_scale_factor}× smaller than the image; a decoder paints it."
        )
        with gr.Tab("Generate"), gr.Row():
            with gr.Column():
                first = (known or list(examples) or [""])[0] if textual else ""
                prompt = readable(prompt_box(pipe, names, list(examples) if textual else [], first), "text")
                negative = readable(gr.Textbox("", label="Negative prompt", visible=textual), "text")
                label = gr.Dropdown(
                    classes, value=(classes or [None])[0], label="Class", visible=bool(classes)
                )
                if textual:
                    example_blocks(prompt, known, examples)
                elif classes and examples:
                    gr.Examples([[e] for e in examples], inputs=[label], label="Examples")
                button = gr.Button("Generate", variant="primary")
                settings = _settings(pipe, limits, textual or bool(classes), sr_pipe, fast_pipe is not None)
                for component, what in zip(settings, SETTING_KINDS, strict=True):
                    readable(component, what)
            gallery = gr.Gallery(
                label="Samples", format="png", columns=4, object_fit="contain", elem_id="gallery"
            )

        def respond(
            prompt,
            negative_prompt,
            class_name,
            steps,
            guidance_scale,
            seed,
            randomize_seed,
            scheduler,
            num_images,
            size,
            upscale,
            progress,
        ):
            """Sample with the UI's / API's values; a bad request becomes a Gradio error before any work."""
            try:
                randomize_seed, upscale = flag(randomize_seed, "Randomise seed"), flag(upscale, "Upscale")
                seed = random.randint(0, MAX_SEED) if randomize_seed else seed
                images = generate(
                    pipe,
                    limits,
                    prompt=prompt,
                    negative_prompt=negative_prompt,
                    class_name=class_name,
                    steps=steps,
                    guidance_scale=guidance_scale,
                    seed=seed,
                    scheduler=scheduler,
                    num_images=num_images,
                    size=size,
                    progress=progress,
                    sr_pipe=sr_pipe if upscale else None,
                    fast_pipe=fast_pipe,
                )
            except ValueError as e:
                raise gr.Error(str(e), print_exception=False) from None
            caption = ((prompt or "").strip() if textual else class_name) or "unconditional"
            return [(image, f"{caption} #{i + 1}") for i, image in enumerate(images)], seed

        # the endpoint takes only the inputs this kind of model shows (a text model has no class argument);
        # its parameters are named as the UI labels them
        progress_bar = gr.Progress()
        if textual:

            def run(
                prompt,
                negative_prompt,
                steps,
                guidance_scale,
                seed,
                randomize_seed,
                scheduler,
                num_images,
                size,
                upscale,
                progress=progress_bar,
            ):
                return respond(
                    prompt,
                    negative_prompt,
                    None,
                    steps,
                    guidance_scale,
                    seed,
                    randomize_seed,
                    scheduler,
                    num_images,
                    size,
                    upscale,
                    progress,
                )

            conditioning = [prompt, negative]
        elif classes:

            def run(
                class_name,
                steps,
                guidance_scale,
                seed,
                randomize_seed,
                scheduler,
                num_images,
                size,
                upscale,
                progress=progress_bar,
            ):
                return respond(
                    "",
                    "",
                    class_name,
                    steps,
                    guidance_scale,
                    seed,
                    randomize_seed,
                    scheduler,
                    num_images,
                    size,
                    upscale,
                    progress,
                )

            conditioning = [label]
        else:

            def run(
                steps,
                guidance_scale,
                seed,
                randomize_seed,
                scheduler,
                num_images,
                size,
                upscale,
                progress=progress_bar,
            ):
                return respond(
                    "",
                    "",
                    None,
                    steps,
                    guidance_scale,
                    seed,
                    randomize_seed,
                    scheduler,
                    num_images,
                    size,
                    upscale,
                    progress,
                )

            conditioning = []
        inputs = [*conditioning, *settings]  # settings: steps, guidance, seed, randomise, ...
        button.click(run, inputs, [gallery, settings[2]], api_name="generate", **JOBS)
        if sr_pipe is not None:
            with gr.Tab("Upscale"):
                upscale_tab(sr_pipe, limits, list(sr_examples))
        if inpaint_pipe is not None:
            with gr.Tab("Inpaint"):
                inpaint_tab(inpaint_pipe, limits, list(inpaint_examples))
        if sketch_pipe is not None:  # sketch_tab.py
            with gr.Tab("Sketch"):
                sketch_tab(sketch_pipe, limits)
    demo.queue(default_concurrency_limit=1, max_size=limits.queue_size)
    return clear_request_errors(demo)


def main() -> None:
    source = model_source()
    limits = Limits.from_env()
    pipe = serving_pipeline(source)
    sr_source = sr_model_source([REPO_ROOT, SPACE_DIR])
    sr_pipe = serving_sr_pipeline(sr_source) if sr_source else None
    sr_examples = example_images(sr_source) if sr_source else []
    inpaint_source = inpaint_model_source([REPO_ROOT, SPACE_DIR])
    inpaint_pipe = serving_inpaint_pipeline(inpaint_source) if inpaint_source else None
    inpaint_rows = inpaint_example_rows(inpaint_source) if inpaint_source else []
    sketch_source = sketch_model_source([REPO_ROOT, SPACE_DIR])
    sketch_pipe = serving_sketch_pipeline(sketch_source) if sketch_source else None
    captions = example_captions(pipe, source)
    vocabulary = read_vocabulary(source)
    few_step_roots = [] if os.environ.get("HFLDM_MODEL") else [REPO_ROOT, SPACE_DIR]  # the bundled model's
    fast_source = optional_model_source(few_step_roots, "HFLDM_FEW_STEP_MODEL", "models/hfldm-emoji-lcm")
    fast_pipe = serving_pipeline_of(fast_source, "HFLDM_FEW_STEP_MODEL") if fast_source else None
    demo = build_demo(
        pipe,
        limits,
        captions,
        sr_pipe,
        sr_examples,
        inpaint_pipe,
        inpaint_rows,
        vocabulary=vocabulary,
        sketch_pipe=sketch_pipe,
        fast_pipe=fast_pipe,
    )
    env = os.environ  # GRADIO_SERVER_NAME / _PORT: what Hugging Face Spaces sets
    host = env.get("HFLDM_HOST") or env.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = int(env.get("HFLDM_PORT") or env.get("GRADIO_SERVER_PORT") or 7860)
    print(
        f"hfldm Space: model {source}, super-resolution {sr_source or 'none'}, inpainting "
        f"{inpaint_source or 'none'}, sketch {sketch_source or 'none'}, few-step {fast_source or 'none'}, "
        f"{limits}",
        flush=True,
    )
    demo.launch(
        server_name=host,
        server_port=port,
        ssr_mode=False,
        css=CSS,
        prevent_thread_lock=True,
        max_file_size=MAX_UPLOAD,
    )
    warm_up(pipe, limits, known_examples(vocabulary, 1) or captions)
    print(f"hfldm Space running on http://{host}:{port}/", flush=True)
    demo.block_thread()


if __name__ == "__main__":
    main()
