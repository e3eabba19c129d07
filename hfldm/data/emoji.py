"""The emoji dataset: every fully-qualified emoji of Unicode's emoji-test.txt, drawn in one or more styles.

Sources are two Debian packages (`fonts-noto-color-emoji`, `unicode-data`) for the default `noto` style, and
npm packages of freely licensed SVG art for the others (hfldm.data.emoji_styles). Each row holds the image
composited on white, its CLDR name as caption (`text`), its `group` / `subgroup` (ClassLabels), its
`codepoints` and its `style`. A row is in `test` iff sha1(codepoints) % 10 == 0, so the split never depends
on the order of the file or on which glyphs a style can draw, and a held-out name is held out in every style.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import datasets
from PIL import Image

from hfldm.data.emoji_styles import DEFAULT_NPM_CACHE, make_styles
from hfldm.data.noto import EMOJI_FONT, EMOJI_TEST, EmojiEntry, parse_emoji_test

logger = logging.getLogger(__name__)


def is_test(codepoints: str) -> bool:
    """The split rule: True iff the row belongs to `test` (about one row in ten)."""
    return int(hashlib.sha1(codepoints.encode()).hexdigest(), 16) % 10 == 0


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def file_name(codepoints: str, style: str = "noto") -> str:
    """Returns the image file name of a row, e.g. "1F468_200D_1F4BB.png" (noto), "openmoji_1F600.png"."""
    stem = codepoints.replace(" ", "_")
    return f"{stem}.png" if style == "noto" else f"{style}_{stem}.png"


def emoji_features(entries: list[EmojiEntry]) -> datasets.Features:
    """Returns the dataset features; group and subgroup are ClassLabels in CLDR order."""
    groups = list(dict.fromkeys(e.group for e in entries))
    subgroups = list(dict.fromkeys(e.subgroup for e in entries))
    return datasets.Features(
        image=datasets.Image(),
        text=datasets.Value("string"),
        group=datasets.ClassLabel(names=groups),
        subgroup=datasets.ClassLabel(names=subgroups),
        codepoints=datasets.Value("string"),
        style=datasets.Value("string"),
    )


@dataclass
class EmojiBuild:
    datasets: dict[int, datasets.DatasetDict]  # resolution -> {"train", "test"}
    skipped: dict[str, list[str]]  # style -> codepoints it has no art for
    failed: dict[str, dict[str, str]]  # style -> {codepoints: why its art did not render}
    licences: dict[str, str]  # style -> licence and attribution


def build_emoji(
    resolutions: tuple[int, ...] = (32, 64),
    limit: int | None = None,
    font_path: str | Path = EMOJI_FONT,
    emoji_test: str | Path = EMOJI_TEST,
    styles: tuple[str, ...] = ("noto",),
    npm_cache: str | Path | None = None,
) -> EmojiBuild:
    """Renders every fully-qualified emoji once per style at 136 px and resizes it to each resolution.

    Returns one DatasetDict per resolution with columns image, text, group, subgroup, codepoints, style.
    `limit` keeps only the first `limit` entries of the file (for quick tests).
    """
    if any(r <= 0 for r in resolutions):
        raise ValueError(f"resolution must be positive, got {list(resolutions)}")
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    entries = parse_emoji_test(emoji_test)[:limit]
    if not entries:  # another text file: nothing in it reads as "codepoints ; fully-qualified # ..."
        raise ValueError(f"--emoji_test: {emoji_test} lists no fully-qualified emoji (is it emoji-test.txt?)")
    renderers = make_styles(styles, entries, npm_cache or DEFAULT_NPM_CACHE, font_path)
    rows: dict[int, dict[str, list]] = {r: {"train": [], "test": []} for r in resolutions}
    skipped = {s.name: [] for s in renderers}
    failed = {s.name: {} for s in renderers}
    for entry in entries:
        split = "test" if is_test(entry.codepoints) else "train"
        for style in renderers:
            image = _render(style, entry, failed[style.name])
            if image is None:
                if entry.codepoints not in failed[style.name]:
                    skipped[style.name].append(entry.codepoints)
                continue
            for r in resolutions:
                small = image.resize((r, r), Image.Resampling.LANCZOS)
                png = {"bytes": _png(small), "path": file_name(entry.codepoints, style.name)}
                rows[r][split].append((png, entry, style.name))
    for name in skipped:
        if skipped[name]:
            logger.warning(
                "%s has no art for %d emoji: %s", name, len(skipped[name]), ", ".join(skipped[name])
            )
        if failed[name]:
            logger.warning("%s: %d SVGs did not render: %s", name, len(failed[name]), ", ".join(failed[name]))
    features = emoji_features(entries)
    built = {r: datasets.DatasetDict({s: _to_dataset(rows[r][s], features) for s in rows[r]}) for r in rows}
    return EmojiBuild(built, skipped, failed, {s.name: s.licence for s in renderers})


def _render(style, entry: EmojiEntry, failed: dict[str, str]) -> Image.Image | None:
    """The style's drawing of `entry`, or None: no art, or art that failed to render (then in `failed`)."""
    from hfldm.data.iconify import SvgRenderError

    try:
        return style.render(entry)
    except SvgRenderError as e:
        failed[entry.codepoints] = str(e)
        return None


def _to_dataset(rows: list[tuple[dict, EmojiEntry, str]], features: datasets.Features) -> datasets.Dataset:
    columns = {
        "image": [png for png, _, _ in rows],
        "text": [e.text for _, e, _ in rows],
        "group": [e.group for _, e, _ in rows],
        "subgroup": [e.subgroup for _, e, _ in rows],
        "codepoints": [e.codepoints for _, e, _ in rows],
        "style": [style for _, _, style in rows],
    }
    return datasets.Dataset.from_dict(columns, features=features)
