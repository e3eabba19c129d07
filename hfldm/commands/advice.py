"""One-line warnings of `hfldm generate` about requests the model will draw badly: prompts far from the
names it was trained on (hfldm.text.vocabulary), and sizes other than the one it was trained at."""

from __future__ import annotations

import sys

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
    """A warning when --height/--width differ from the model's native size (what it was trained at: another
    size gives texture, not the training images' layout); True when it warned."""
    native_h, native_w = pipe.default_image_size()
    h, w = height or native_h, width or native_w
    if (h, w) == (native_h, native_w):
        return False
    warn(
        command,
        f"warning: this model was trained at {native_w}x{native_h} px and draws texture, not whole images, "
        f"at {w}x{h}; leave out --height/--width for its native size, or add --upscale for the "
        "super-resolution cascade",
    )
    return True
