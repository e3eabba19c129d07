"""One-line warnings of `hfldm generate` about requests the model will draw badly: prompts far from the
names it was trained on (hfldm.text.vocabulary), and sizes other than the one it was trained at."""

from __future__ import annotations

import contextlib
import logging
import sys

from hfldm.pipelines import native_size
from hfldm.pipelines.native_size import other_size_message
from hfldm.text.vocabulary import nearness, read_vocabulary


def warn(command: str, message: str) -> None:
    print(f"hfldm {command}: {message}", file=sys.stderr)


def warn_far_prompts(pipe, model: str, prompts: list[str] | None, command: str = "generate") -> int:
    """One warning per prompt far from the folder's vocabulary.txt (none without one); returns how many."""
    names = read_vocabulary(model) if prompts and pipe.is_text_conditional else []
    far = [n for n in nearness(pipe.tokenizer, pipe.text_encoder, prompts, names) if n.far] if names else []
    for n in far:
        warn(command, n.warning())
    return len(far)


def warn_other_size(pipe, height: int | None, width: int | None, command: str = "generate") -> bool:
    """The pipelines' warning (hfldm.pipelines.native_size) when --height/--width differ from the model's
    native size, with the flags that fix it; True when it warned."""
    native_h, native_w = pipe.default_image_size()
    message = other_size_message((native_h, native_w), height or native_h, width or native_w)
    if message is not None:
        warn(
            command,
            f"warning: {message}; leave out --height/--width for its native size, or add --upscale for the "
            "super-resolution cascade",
        )
    return message is not None


@contextlib.contextmanager
def size_warned_once(pipe, height: int | None, width: int | None, command: str = "generate"):
    """`warn_other_size` once for the command, and the pipelines' own warning (the same message, once per
    call) silenced while the command's pipeline calls run: the user reads it once."""
    warn_other_size(pipe, height, width, command)
    level = native_size.logger.level
    native_size.logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        native_size.logger.setLevel(level)
