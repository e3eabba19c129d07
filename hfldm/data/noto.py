"""The default style, Noto: Unicode's emoji-test.txt (the CLDR names) and Debian's Noto Color Emoji font.

Both come from Debian packages (`unicode-data`, `fonts-noto-color-emoji`). The other styles
(hfldm.data.emoji_styles) draw the same entries; the dataset builder (hfldm.data.emoji) composes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
MISSING_HINT = "install the Debian packages: apt-get install fonts-noto-color-emoji unicode-data"

# Noto Color Emoji is a bitmap (CBDT) font: its strikes exist only at 109 px, one glyph is 136 x 128
FONT_SIZE = 109
CANVAS = 136

_LINE = re.compile(r"^(?P<cps>[0-9A-F ]+?)\s*;\s*fully-qualified\s*#\s*\S+\s+E\d+\.\d+\s+(?P<name>.+)$")


@dataclass(frozen=True)
class EmojiEntry:
    codepoints: str  # e.g. "1F468 200D 1F4BB"
    text: str  # CLDR name, e.g. "man technologist"
    group: str
    subgroup: str

    @property
    def string(self) -> str:
        return "".join(chr(int(cp, 16)) for cp in self.codepoints.split())


def parse_emoji_test(path: str | Path = EMOJI_TEST) -> list[EmojiEntry]:
    """Returns the fully-qualified entries of emoji-test.txt, in file (CLDR) order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; {MISSING_HINT}")
    entries, group, subgroup = [], "", ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif match := _LINE.match(line):
            entries.append(EmojiEntry(match["cps"].strip(), match["name"].strip(), group, subgroup))
    return entries


class EmojiRenderer:
    """Draws one emoji string at the font's native 109 px onto a white 136 x 136 RGB canvas."""

    def __init__(self, font_path: str | Path = EMOJI_FONT):
        if not Path(font_path).is_file():
            raise FileNotFoundError(f"{font_path} not found; {MISSING_HINT}")
        try:
            self.font = ImageFont.truetype(str(font_path), FONT_SIZE)
        except OSError as e:  # not a font, or no 109 px strike
            raise ValueError(f"--font: {font_path} is not a bitmap emoji font Pillow opens ({e})") from None
        self.advance = self.font.getlength("\U0001f600")  # width of one glyph
        self._notdef = self._draw("\U000e0000")  # an unassigned code point draws the .notdef glyph

    def _draw(self, string: str) -> Image.Image:
        glyph = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
        # the glyph box is 136 x 128: shift down by 4 px to centre it vertically
        ImageDraw.Draw(glyph).text((0, (CANVAS - 128) // 2), string, font=self.font, embedded_color=True)
        return glyph

    def render(self, string: str) -> Image.Image | None:
        """Returns a (136, 136) RGB image on white, or None when the font has no single glyph for it."""
        if self.font.getlength(string) > 1.5 * self.advance:  # a sequence the font draws as pieces
            return None
        glyph = self._draw(string)
        if glyph.getbbox(alpha_only=True) is None or glyph.tobytes() == self._notdef.tobytes():
            return None
        white = Image.new("RGBA", glyph.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, glyph).convert("RGB")
