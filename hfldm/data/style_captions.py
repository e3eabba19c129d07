"""Captions that name the drawing's style, half the time (#30's text model).

A corpus of one name drawn by several artists (`hfldm data emoji --styles ...`) teaches a text model one
picture per caption if the caption is the bare name, and a lookup of the artist's picture if it always names
the artist. `--style_caption_column style` gives each image the two captions
["<style> style: <name>", "<name>"], of which the loader draws one per image and epoch (its draw among a
row's several captions, p = 1/2 each): the bare name then samples across the styles, and the prefixed one
pins one style.
"""

from __future__ import annotations

TEMPLATE = "{style} style: {caption}"


def styled(style: str) -> str:
    """The caption prefix of `style`: styled("noto") + "cat face" == "noto style: cat face"."""
    return TEMPLATE.format(style=style, caption="")


def style_captions(caption: str | list[str] | None, style: str | None) -> list[str] | str | None:
    """[the caption with its style phrase, the caption] for each of a row's captions; as it is without a
    style or a caption (an empty caption stays the unconditional prompt)."""
    if not style or not caption:
        return caption
    captions = caption if isinstance(caption, (list, tuple)) else [caption]
    return [styled(style) + c for c in captions if c] + [c for c in captions if c]
