"""The art styles of the emoji corpus: one drawing of each CLDR emoji per style, all on a white 136 px canvas.

A style answers `render(entry) -> (136, 136) RGB image on white | None` (None: the style has no art for that
emoji) and raises `SvgRenderError` when its art does not render; it names its `licence` for the dataset card.

| style | source | code point → art |
|---|---|---|
| noto | Debian's Noto Color Emoji font (hfldm.data.noto) | the font's glyph |
| fluent-flat | npm @iconify-json/fluent-emoji-flat (Microsoft Fluent, flat) | its chars.json, then the name |
| fluent | npm @iconify-json/fluent-emoji (Microsoft Fluent, colour) | fluent-flat's chars.json, then name |
| openmoji | npm @iconify-json/openmoji (OpenMoji) | its chars.json, then the name |
| emojione | npm @iconify-json/emojione (Emoji One) | the name |

"The name" is the CLDR name as an Iconify slug, used only when no other CLDR name has the same slug.

Twemoji (any packaging) is kept out on purpose: it is held back for independent evaluation. Apple's and
Facebook's art are not freely licensed and are left out too.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from hfldm.data.iconify import IconifySet, rasterise
from hfldm.data.noto import CANVAS, EMOJI_FONT, EmojiEntry, EmojiRenderer

DEFAULT_NPM_CACHE = Path("~/.cache/hfldm/npm")
NOTO_LICENCE = "OFL-1.1 (Google, Noto Color Emoji, https://github.com/googlefonts/noto-emoji)"


@dataclass(frozen=True)
class IconifySource:
    package: str  # the npm package
    chars_from: str | None = None  # another package whose chars.json maps this set's names
    by_name: bool = False  # no code-point map: match the CLDR name's slug only


ICONIFY_SOURCES = {
    "fluent-flat": IconifySource("@iconify-json/fluent-emoji-flat"),
    "fluent": IconifySource("@iconify-json/fluent-emoji", chars_from="@iconify-json/fluent-emoji-flat"),
    "openmoji": IconifySource("@iconify-json/openmoji"),
    "emojione": IconifySource("@iconify-json/emojione", by_name=True),
}
KNOWN_STYLES = ("noto", *ICONIFY_SOURCES)


def char_key(codepoints: str) -> str:
    """Iconify's chars.json key of "2764 FE0F 200D 1F525": "2764-200d-1f525" (lower case, FE0F dropped)."""
    return "-".join(cp.lower() for cp in codepoints.split() if cp.upper() != "FE0F")


def slug(name: str) -> str:
    """Iconify's icon name of a CLDR name: "flag: Côte d’Ivoire" -> "flag-cote-divoire"."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")


_ONE_TONE = re.compile(r"(?P<base>.+): (?P<tone>light|medium-light|medium|medium-dark|dark) skin tone")


def name_keys(name: str) -> list[str]:
    """Icon names to try for a CLDR name, in order: its slug, "flag-for-<country>" for a flag, and
    "<base>-<tone>" for one skin tone ("thumbs up: medium-dark skin tone" -> "thumbs-up-medium-dark")."""
    keys = [slug(name)] + ([f"flag-for-{slug(name[6:])}"] if name.startswith("flag: ") else [])
    if match := _ONE_TONE.fullmatch(name):
        keys.append(f"{slug(match['base'])}-{match['tone']}")
    return keys


class NotoStyle:
    """Debian's Noto Color Emoji font, drawn as `hfldm data emoji` always has."""

    name, licence = "noto", NOTO_LICENCE

    def __init__(self, font_path: str | Path = EMOJI_FONT):
        self.renderer = EmojiRenderer(font_path)

    def render(self, entry: EmojiEntry) -> Image.Image | None:
        return self.renderer.render(entry.string)


class IconifyStyle:
    """An Iconify set's SVG art, matched to the entries by code point (or by unique name slug)."""

    def __init__(self, name: str, source: IconifySource, entries: list[EmojiEntry], npm_cache: Path):
        self.name, self.set = name, IconifySet.from_npm(source.package, npm_cache)
        self.licence = self.set.licence
        chars = (
            IconifySet.from_npm(source.chars_from, npm_cache).chars if source.chars_from else self.set.chars
        )
        counts = Counter(slug(e.text) for e in entries)  # a slug two names share ("keycap: *", "keycap: #")
        keys = {  # the code-point map first, then the name when no other name has its slug
            e.codepoints: ([] if source.by_name else [chars.get(char_key(e.codepoints))])
            + (name_keys(e.text) if counts[slug(e.text)] == 1 else [])
            for e in entries
        }
        self.icons = {}  # codepoints -> Icon
        for codepoints, candidates in keys.items():
            icons = [icon for key in candidates if key and (icon := self.set.resolve(key))]
            if icons:
                self.icons[codepoints] = icons[0]

    def render(self, entry: EmojiEntry) -> Image.Image | None:
        icon = self.icons.get(entry.codepoints)
        return None if icon is None else icon.transform(rasterise(self.set.svg(icon.name), CANVAS))


def parse_styles(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The style names of "noto,fluent" (order kept, duplicates dropped); ValueError listing the known."""
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in names if s not in KNOWN_STYLES]
    if unknown or not names:
        raise ValueError(f"--styles: unknown style {unknown or text!r}; known: {','.join(KNOWN_STYLES)}")
    return tuple(dict.fromkeys(names))


def make_styles(
    names: tuple[str, ...],
    entries: list[EmojiEntry],
    npm_cache: str | Path = DEFAULT_NPM_CACHE,
    font_path: str | Path = EMOJI_FONT,
) -> list[NotoStyle | IconifyStyle]:
    """The renderers of `names`; FileNotFoundError naming the npm command when a package is missing."""
    cache = Path(npm_cache).expanduser()
    return [
        NotoStyle(font_path) if name == "noto" else IconifyStyle(name, ICONIFY_SOURCES[name], entries, cache)
        for name in parse_styles(names)
    ]
