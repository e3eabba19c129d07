"""Emoji art from an Iconify JSON npm package (`npm pack @iconify-json/NAME`), rasterised with resvg.

An Iconify set is one `icons.json` (SVG bodies on a shared `viewBox`, plus aliases) and, for some sets,
a `chars.json` mapping code points ("1f468-200d-1f4bb", FE0F left out) to icon names; `info.json` names
the licence and the author. The tarball is read in place from the npm cache folder; nothing is unpacked.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image


class SvgRenderError(ValueError):
    """An icon's SVG that the rasteriser refused."""


def npm_install_hint(package: str, cache: Path) -> str:
    return f"run: make emoji-styles (or: mkdir -p {cache} && cd {cache} && npm pack {package})"


def find_tarball(package: str, cache: str | Path) -> Path:
    """Returns the newest `npm pack` tarball of `package` in `cache`; FileNotFoundError with the command."""
    cache = Path(cache).expanduser()
    stem = package.lstrip("@").replace("/", "-")  # npm pack names @scope/name as scope-name-<version>.tgz
    pattern = re.compile(rf"^{re.escape(stem)}-(\d+(?:\.\d+)*)\.tgz$")
    found = [(p, m[1]) for p in cache.glob(f"{stem}-*.tgz") if (m := pattern.match(p.name))]
    if not found:
        raise FileNotFoundError(f"npm package {package} not in {cache}; {npm_install_hint(package, cache)}")
    return max(found, key=lambda pv: tuple(int(x) for x in pv[1].split(".")))[0]


@dataclass(frozen=True)
class Icon:
    """An icon of the set, mirrored and turned as an alias asks (Iconify applies the flips, then the turn)."""

    name: str
    h_flip: bool = False
    v_flip: bool = False
    rotate: int = 0  # quarter turns clockwise

    def transform(self, image: Image.Image) -> Image.Image:
        if self.h_flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.v_flip:
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        return image.rotate(-90 * self.rotate) if self.rotate else image


@dataclass
class IconifySet:
    """One Iconify set: its icons, aliases, code-point map and licence, as read from the package."""

    package: str
    icons: dict[str, dict]  # name -> {"body", optional "width" / "height" / "left" / "top"}
    aliases: dict[str, dict]  # name -> {"parent", ...}
    width: int  # the set's default viewBox size
    height: int
    chars: dict[str, str]  # "1f600" -> "grinning-face" (may be empty)
    info: dict  # info.json: "license" {"title", "spdx", "url"}, "author" {"name", "url"}

    @classmethod
    def from_npm(cls, package: str, cache: str | Path) -> IconifySet:
        with tarfile.open(find_tarball(package, cache)) as tar:

            def read(name: str, default=None):
                try:
                    return json.load(tar.extractfile(f"package/{name}"))
                except KeyError:
                    return default

            icons, info = read("icons.json"), read("info.json", {})
            chars = read("chars.json", {})
        return cls(
            package=package,
            icons=icons["icons"],
            aliases=icons.get("aliases", {}),
            width=icons.get("width", 16),
            height=icons.get("height", 16),
            chars=chars,
            info=info,
        )

    def resolve(self, name: str) -> Icon | None:
        """The icon behind `name`, through aliases and their flips / quarter turns, or None."""
        h_flip, v_flip, rotate = False, False, 0
        for _ in range(8):  # aliases may chain; Iconify allows a few levels
            if name in self.icons:
                return Icon(name, h_flip, v_flip, rotate % 4)
            alias = self.aliases.get(name)
            if alias is None:
                return None
            h_flip ^= bool(alias.get("hFlip", False))  # Iconify merges an alias chain's transforms so
            v_flip ^= bool(alias.get("vFlip", False))
            rotate += int(alias.get("rotate", 0))
            name = alias["parent"]
        return None

    def svg(self, name: str) -> str:
        """A standalone SVG document of icon `name` on its own viewBox."""
        icon = self.icons[name]
        box = (
            icon.get("left", 0),
            icon.get("top", 0),
            icon.get("width", self.width),
            icon.get("height", self.height),
        )
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'viewBox="{" ".join(str(v) for v in box)}">{icon["body"]}</svg>'
        )

    @property
    def licence(self) -> str:
        """e.g. "MIT (Microsoft Corporation, https://github.com/microsoft/fluentui-emoji)"."""
        licence, author = self.info.get("license", {}), self.info.get("author", {})
        name = licence.get("spdx") or licence.get("title", "?")
        return f"{name} ({author.get('name', '?')}, {author.get('url', '')})"


def rasterise(svg: str, size: int) -> Image.Image:
    """The SVG drawn to a (size, size) RGB image on white; SvgRenderError when resvg cannot draw it."""
    import resvg_py  # the `train` extra; missing, the CLI names it (hfldm.cli.EXTRAS)

    try:
        png = resvg_py.svg_to_bytes(svg_string=svg, width=size, height=size, background="#ffffff")
    except (ValueError, RuntimeError, OSError) as e:
        raise SvgRenderError(str(e)) from None
    image = Image.open(io.BytesIO(bytes(png)))
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
