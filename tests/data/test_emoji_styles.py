"""The multi-style emoji corpus: Iconify npm tarballs rendered on white, split by name across styles."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from hfldm.cli import main as cli
from hfldm.data.emoji import EMOJI_FONT, EMOJI_TEST, build_emoji, is_test
from hfldm.data.emoji_styles import DEFAULT_NPM_CACHE, KNOWN_STYLES, char_key, name_keys, parse_styles, slug
from hfldm.data.iconify import find_tarball

pytest.importorskip("resvg_py")
needs_emoji = pytest.mark.skipif(
    not (EMOJI_FONT.is_file() and EMOJI_TEST.is_file()),
    reason="Debian fonts-noto-color-emoji / unicode-data not installed (apt-get install them)",
)
# in the first 60 entries of emoji-test.txt: two training names and two held-out ones (sha1 % 10 == 0)
TRAIN = {"1F600": "grinning face", "1F603": "grinning face with big eyes"}
TEST = {"1F601": "beaming face with smiling eyes", "1F914": "thinking face"}
DISC = '<circle cx="8" cy="8" r="6" fill="#e03020"/>'  # a red disc on a 16 x 16 view box


def write_iconify(cache, stem: str, icons: dict[str, str], chars: dict[str, str] | None = None) -> None:
    """A fake `npm pack` tarball of an Iconify set: icons.json (16 x 16 bodies), chars.json, info.json."""
    files = {
        "icons.json": {
            "prefix": stem,
            "icons": {n: {"body": b} for n, b in icons.items()},
            "width": 16,
            "height": 16,
        },
        "info.json": {"license": {"spdx": "MIT"}, "author": {"name": "test", "url": "https://example.org"}},
    }
    if chars is not None:
        files["chars.json"] = chars
    cache.mkdir(parents=True, exist_ok=True)
    with tarfile.open(cache / f"iconify-json-{stem}-1.0.0.tgz", "w:gz") as tar:
        for name, content in files.items():
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def cache(tmp_path):
    """openmoji maps code points (three names, the fourth by name); emojione names (one broken SVG)."""
    cache = tmp_path / "npm"
    names = {cps: slug(text) for cps, text in {**TRAIN, **TEST}.items()}
    chars = {char_key(cps): n for cps, n in names.items() if cps != "1F603"}  # that one is found by name
    write_iconify(cache, "openmoji", {n: DISC for n in names.values()}, chars=chars)
    emojione = {names["1F600"]: DISC, names["1F601"]: DISC, names["1F914"]: "<path d='M0 0 L"}
    write_iconify(cache, "emojione", emojione)
    return cache


@needs_emoji
def test_styles_render_on_white_with_caption_and_a_split_by_name(cache):
    build = build_emoji(resolutions=(32,), limit=60, styles=("noto", "openmoji", "emojione"), npm_cache=cache)
    data = build.datasets[32]
    rows = {(r["style"], r["codepoints"]): (split, r) for split in data for r in data[split]}
    for cps, text in {**TRAIN, **TEST}.items():
        for style in ("noto", "openmoji"):
            split, row = rows[(style, cps)]
            assert row["text"] == text and split == ("test" if cps in TEST else "train") == split
    # a held-out name is held out in every style, and only held-out names are
    for split in data:
        assert all(is_test(cps) == (split == "test") for cps in data[split]["codepoints"])
    pixels = np.asarray(rows[("openmoji", "1F914")][1]["image"]).astype(int)  # (32, 32, 3)
    assert pixels.shape == (32, 32, 3)
    assert (pixels[0] == 255).all() and (pixels[:, 0] == 255).all()  # white outside the disc
    assert tuple(pixels[16, 16]) == (224, 48, 32)  # the disc's colour at the centre
    # openmoji has art for 4 of 60 names; emojione for 2 (its broken SVG counted and named, no crash)
    assert len(build.skipped["openmoji"]) == 56 and len(build.skipped["emojione"]) == 57
    assert list(build.failed["emojione"]) == ["1F914"] and not build.failed["openmoji"]
    assert {("emojione", "1F600"), ("emojione", "1F601")} <= set(rows) and ("emojione", "1F914") not in rows
    assert build.licences["openmoji"].startswith("MIT (test")


@needs_emoji
def test_cli_writes_the_card_and_names_missing_packages_and_unknown_styles(cache, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["data", "emoji", "--out", str(out), "--resolution", "16", "--limit", "60"]
    assert cli([*argv, "--styles", "openmoji,emojione", "--npm_cache", str(cache)]) == 0
    printed = capsys.readouterr().out
    assert "emojione: skipped 57 emoji" in printed and "1 SVGs failed to render: ['1F914']" in printed
    card = (out / "README.md").read_text()
    assert "| openmoji | 2 | 2 | 56 | 0 | MIT (test" in card and "Twemoji" in card

    assert cli([*argv, "--styles", "noto,twemoji", "--npm_cache", str(cache)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"hfldm data: error: --styles: unknown style ['twemoji']; known: {','.join(KNOWN_STYLES)}"
    assert cli([*argv, "--styles", "fluent-flat", "--npm_cache", str(cache)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "@iconify-json/fluent-emoji-flat" in err and "npm pack" in err


def test_keys_and_tarball_lookup(tmp_path):
    assert char_key("2764 FE0F 200D 1F525") == "2764-200d-1f525"
    assert name_keys("flag: Côte d’Ivoire") == ["flag-cote-divoire", "flag-for-cote-divoire"]
    tone = name_keys("thumbs up: medium-dark skin tone")
    assert tone == ["thumbs-up-medium-dark-skin-tone", "thumbs-up-medium-dark"]
    assert parse_styles("noto, fluent,noto") == ("noto", "fluent")
    for version in ("1.2.9", "1.2.10"):
        (tmp_path / f"iconify-json-fluent-emoji-{version}.tgz").touch()
    (tmp_path / "iconify-json-fluent-emoji-flat-9.0.0.tgz").touch()  # another package, same prefix
    assert find_tarball("@iconify-json/fluent-emoji", tmp_path).name == "iconify-json-fluent-emoji-1.2.10.tgz"


REAL = pytest.mark.skipif(
    not all(DEFAULT_NPM_CACHE.expanduser().glob("iconify-json-*.tgz")),
    reason="the npm packages are not in ~/.cache/hfldm/npm (make emoji-styles)",
)


@needs_emoji
@REAL
def test_the_real_packages_draw_the_first_faces_in_every_style():
    try:
        build = build_emoji(resolutions=(32,), limit=4, styles=KNOWN_STYLES)
    except FileNotFoundError as e:
        pytest.skip(str(e))
    train = build.datasets[32]["train"]
    for style in KNOWN_STYLES:
        rows = train.filter(lambda s, style=style: s == style, input_columns="style")
        assert rows["text"][:2] == ["grinning face", "grinning face with big eyes"]
        pixels = np.stack([np.asarray(i) for i in rows["image"]]).astype(float)  # (N, 32, 32, 3)
        assert pixels.shape[1:] == (32, 32, 3) and (pixels[:, 0, 0] == 255).all()  # white corner
        assert pixels.std(axis=(1, 2, 3)).min() > 20  # drawn, not blank


def test_aliases_resolve_through_flips_and_turns():
    from PIL import Image

    from hfldm.data.iconify import Icon, IconifySet

    aliases = {
        "right": {"parent": "left", "hFlip": True},
        "up": {"parent": "right", "rotate": 3},
        "loop": {"parent": "loop"},
    }
    icons = IconifySet("x", {"left": {"body": ""}}, aliases, 16, 16, {}, {})
    assert icons.resolve("left") == Icon("left")
    assert icons.resolve("right") == Icon("left", h_flip=True)
    assert icons.resolve("up") == Icon("left", h_flip=True, rotate=3)
    assert icons.resolve("loop") is None and icons.resolve("missing") is None
    image = Image.new("RGB", (4, 4), "white")
    image.putpixel((0, 0), (0, 0, 0))  # top left
    assert Icon("left", h_flip=True).transform(image).getpixel((3, 0)) == (0, 0, 0)  # top right
    assert Icon("left", rotate=1).transform(image).getpixel((3, 0)) == (0, 0, 0)  # a quarter turn clockwise
