"""The dataset card of `hfldm data emoji`: rows per style and split, each style's licence and attribution."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from hfldm.data.emoji import EmojiBuild

SPLIT_RULE = "a name is in `test` iff sha1(codepoints) % 10 == 0, in every style (hfldm.data.emoji.is_test)"


def card_text(build: EmojiBuild) -> str:
    """Markdown: a table of rows per style and split (largest resolution), then the licences."""
    dataset = build.datasets[max(build.datasets)]
    counts = {split: Counter(rows["style"]) for split, rows in dataset.items()}
    lines = [
        "# hfldm emoji corpus",
        "",
        "Every fully-qualified emoji of Unicode's emoji-test.txt with its CLDR name as caption (`text`),",
        f"drawn in each style on white at {', '.join(f'{r} px' for r in sorted(build.datasets))}.",
        f"Split: {SPLIT_RULE}.",
        "",
        "| style | train | test | no art | failed to render | licence (author) |",
        "|---|---|---|---|---|---|",
    ]
    for style, licence in build.licences.items():
        train, test = counts.get("train", {}).get(style, 0), counts.get("test", {}).get(style, 0)
        missing, failed = len(build.skipped[style]), len(build.failed[style])
        lines.append(f"| {style} | {train} | {test} | {missing} | {failed} | {licence} |")
    lines += [
        "",
        "Attribution: the art of each style belongs to the author named above and is redistributed under",
        "that licence; CC-BY-SA (OpenMoji) requires derived images to keep the same licence. Twemoji is",
        "left out on purpose (held back for independent evaluation), as are Apple's and Facebook's art.",
    ]
    return "\n".join(lines) + "\n"


def write_card(build: EmojiBuild, out: str | Path) -> Path:
    """Writes out/README.md; returns its path."""
    path = Path(out) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(card_text(build), encoding="utf-8")
    return path
