"""Grids of images: `tile` (diffusers' make_image_grid, any count) and `image_grid`, a contact sheet with
captions underneath."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

CAPTION_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf")


def tile(images: Sequence[Image.Image], cols: int, fill: str = "white") -> Image.Image:
    """diffusers' make_image_grid with `cols` columns, the last row padded with `fill` cells."""
    from diffusers.utils import make_image_grid

    rows = -(-len(images) // cols)
    blank = Image.new("RGB", images[0].size, fill)
    return make_image_grid(list(images) + [blank] * (rows * cols - len(images)), rows, cols)


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap to `width` px; the last kept line ends with an ellipsis when text is cut."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(",") + " \u2026"
    return lines


def image_grid(
    images: Sequence[Image.Image],
    captions: Sequence[str],
    columns: int = 8,
    cell: int = 64,
    caption_lines: int = 3,
    font_size: int = 10,
) -> Image.Image:
    """Returns one RGB image: `columns` images per row, each `cell` px, with wrapped captions below."""
    if len(images) != len(captions):
        raise ValueError(f"captions: expected {len(images)} captions, got {len(captions)}")
    if columns <= 0 or cell <= 0:
        raise ValueError(f"columns and cell must be positive, got columns={columns}, cell={cell}")
    font = (
        ImageFont.truetype(str(CAPTION_FONT), font_size)
        if CAPTION_FONT.is_file()
        else ImageFont.load_default(font_size)
    )
    width = max(cell, 2 * cell - 16)  # captions are wider than the 64 px images
    line_height = font_size + 2
    height = cell + 4 + caption_lines * line_height + 6
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * width, rows * height), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, caption) in enumerate(zip(images, captions)):
        x, y = (i % columns) * width, (i // columns) * height
        sheet.paste(image.convert("RGB").resize((cell, cell)), (x + (width - cell) // 2, y + 2))
        lines = _wrap(caption, font, width - 6, caption_lines)
        for j, line in enumerate(lines):
            draw.text(
                (x + width // 2, y + cell + 4 + j * line_height), line, fill="black", font=font, anchor="ma"
            )
    return sheet


def dataset_grid(dataset, count: int = 64, cell: int = 64, caption_column: str = "text") -> Image.Image:
    """Returns the image_grid of `count` rows spread evenly over a map-style dataset (image + caption)."""
    if len(dataset) == 0:
        raise ValueError("dataset is empty: nothing to draw")
    count = min(count, len(dataset))
    rows = dataset.select(sorted({round(i * (len(dataset) - 1) / max(count - 1, 1)) for i in range(count)}))
    return image_grid(rows["image"], rows[caption_column], columns=min(8, count), cell=cell)
