"""What the Space accepts from a browser or an API client, before any of its own checks run.

Every input component is wrapped by `readable`: a payload its Gradio preprocessing cannot read (a string or
NaN in a number field, a file that is not an image, ...) becomes one `gr.Error` naming the field, instead of
Gradio's generic "error: null". Uploaded images are bounded by hfldm.data.user_images before decoding:
`gr.Image(type="filepath")` hands over the path unopened (`open_upload` decodes it behind the bound), and
the ImageEditor's files are checked by `bounded_editor` before Gradio decodes them.
"""

from __future__ import annotations

import math

import gradio as gr
import PIL.Image

from hfldm.data.user_images import MAX_PIXELS, ImageTooLarge, check_pixels, open_user_image


def short(value: object, limit: int = 40) -> str:
    """repr(value) cut to `limit` characters (repr escapes lone surrogates, so it is always valid JSON)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def readable(component: gr.components.Component, what: str = "a value it can read"):
    """`component`, its preprocessing made to raise one gr.Error naming its label on a bad payload (a file's
    payload is not shown: it is the server's temporary path)."""
    original = component.preprocess
    files = isinstance(component, gr.Image | gr.ImageEditor)

    def preprocess(payload):
        try:
            return original(payload)
        except Exception as e:  # Gradio's own checks (gr.Error) and whatever its reading raised
            if isinstance(e, gr.Error):  # range / choice checks: their words, the field named
                raise gr.Error(f"{component.label}: {e.message}", print_exception=False) from None
            if isinstance(e, ImageTooLarge):  # its message names the field already
                raise gr.Error(str(e), print_exception=False) from None
            got = "the upload is not one" if files else f"got {short(payload)}"
            message = f"{component.label} must be {what}; {got} ({type(e).__name__})."
            raise gr.Error(message, print_exception=False) from None

    component.preprocess = preprocess
    return component


def bounded_editor(editor: gr.ImageEditor, max_pixels: int = MAX_PIXELS) -> gr.ImageEditor:
    """`editor`, each uploaded file's pixel count checked from its header before Gradio decodes it."""
    original = editor.convert_and_format_image

    def convert(file, flatten_on_white: bool = False):
        path = getattr(file, "path", None)
        if path is not None:
            with PIL.Image.open(path) as image:  # the header only
                check_pixels(image.size, editor.label, max_pixels)
        return original(file, flatten_on_white=flatten_on_white)

    editor.convert_and_format_image = convert
    return readable(editor, "an image")


def open_upload(path: str | None, label: str, missing: str) -> PIL.Image.Image:
    """The uploaded file at `path` as RGB (hfldm.data.user_images: pixel count checked before decoding);
    ValueError `missing` when nothing was uploaded, or one naming `label` when it is not a usable image."""
    if path is None:
        raise ValueError(missing)
    return open_user_image(path, label)


def text(value: object, name: str, max_chars: int) -> str:
    """A text field's value stripped (None: ""); ValueError naming `name` for a non-string, text that is not
    valid Unicode (lone surrogates: nothing can encode it) or more than `max_chars` characters."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, got {short(value)}.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"{name} contains characters that are not valid Unicode text (lone surrogates); retype it."
        ) from None
    value = value.strip()
    if len(value) > max_chars:
        raise ValueError(f"{name} is {len(value)} characters long; the limit is {max_chars}.")
    return value


def real(value: object, name: str) -> float:
    """`value` as a finite float; ValueError naming `name` otherwise (strings, None, NaN, inf, booleans)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {short(value)}.")
    return float(value)


def flag(value: object, name: str) -> bool:
    """A checkbox's value; ValueError naming `name` for anything but true / false (None: false)."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {short(value)}.")
    return value


def clear_request_errors(demo: gr.Blocks) -> gr.Blocks:
    """`demo`, two failures Gradio meets before any component's preprocessing answered by one gr.Error
    instead of its generic error: too few values (a raw HTTP client; gradio_client fills in the defaults),
    and a value its data model refuses (e.g. `false` where a file is expected)."""
    validate, original = demo.validate_inputs, demo.preprocess_data

    def validate_inputs(block_fn, inputs: list) -> None:
        if len(inputs) < len(block_fn.inputs):
            names = ", ".join(str(getattr(block, "label", None) or block) for block in block_fn.inputs)
            raise gr.Error(
                f"This endpoint takes {len(block_fn.inputs)} values ({names}); got {len(inputs)}. "
                "gradio_client fills in the defaults: client.predict(prompt=..., api_name=...).",
                print_exception=False,
            )
        validate(block_fn, inputs)

    async def preprocess_data(block_fn, inputs, state, *args, **kwargs):
        try:
            return await original(block_fn, inputs, state, *args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:
            block = next((b for b, v in zip(block_fn.inputs, inputs, strict=False) if refused(b, v)), None)
            where = (
                f"{block.label} must be a file (an image)" if block is not None else "The request's values"
            )
            message = f"{where}: Gradio could not read {short(inputs)} ({type(e).__name__})."
            raise gr.Error(message, print_exception=False) from None

    demo.validate_inputs, demo.preprocess_data = validate_inputs, preprocess_data
    return demo


def refused(block, value) -> bool:
    """True when `block`'s data model refuses `value` (what Gradio validates before preprocessing)."""
    model = getattr(block, "data_model", None)
    if model is None or value is None:
        return False
    try:
        model.model_validate(value, context={"validate_meta": True})
    except Exception:
        return True
    return False
