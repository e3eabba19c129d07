"""`hfldm data emoji|digits --out DIR`: build the datasets of this project onto disk.

Layout: DIR/<resolution>/ is a `save_to_disk` DatasetDict (train, test) and DIR/<resolution>-imagefolder/
holds the same rows as PNG files with one metadata.jsonl per split.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

# datasets (the `train` extra) is imported on use: `hfldm --help` and `hfldm generate` run without it


def _resolutions(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"resolutions must be positive integers, got {text!r}")
    return values


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="build the emoji or digits dataset")
    kinds = parser.add_subparsers(dest="kind", required=True)

    emoji = kinds.add_parser("emoji", help="render every emoji in one or more art styles, with CLDR names")
    emoji.add_argument("--out", required=True, help="output folder")
    emoji.add_argument("--resolution", type=_resolutions, default=(32, 64), help="e.g. 32,64")
    emoji.add_argument("--limit", type=int, default=None, help="keep the first N emoji (quick tests)")
    emoji.add_argument("--grid", default=None, help="also write a 64-sample contact sheet PNG here")
    emoji.add_argument("--font", default=None, help="NotoColorEmoji.ttf (default: Debian's)")
    emoji.add_argument("--emoji_test", default=None, help="Unicode emoji-test.txt (default: Debian's)")
    emoji.add_argument("--overwrite", action="store_true", help="replace datasets already in --out")
    emoji.add_argument(
        "--styles", default="noto", help="comma-separated: noto,fluent-flat,fluent,openmoji,emojione"
    )
    emoji.add_argument("--npm_cache", default=None, help="folder of `npm pack` tarballs (~/.cache/hfldm/npm)")
    emoji.set_defaults(func=run_emoji)

    digits = kinds.add_parser("digits", help="scikit-learn 8x8 digits, upsampled")
    digits.add_argument("--out", required=True, help="output folder")
    digits.add_argument("--resolution", type=_resolutions, default=(16,), help="e.g. 16,32")
    digits.add_argument("--overwrite", action="store_true", help="replace datasets already in --out")
    digits.set_defaults(func=run_digits)


def run_emoji(args: argparse.Namespace) -> int:
    from hfldm.data.emoji import EMOJI_FONT, EMOJI_TEST, build_emoji
    from hfldm.data.emoji_card import write_card
    from hfldm.data.emoji_styles import parse_styles
    from hfldm.data.export import save_both

    start = time.perf_counter()
    font, emoji_test = args.font or str(EMOJI_FONT), args.emoji_test or str(EMOJI_TEST)
    build = build_emoji(
        args.resolution,
        limit=args.limit,
        font_path=font,
        emoji_test=emoji_test,
        styles=parse_styles(args.styles),
        npm_cache=args.npm_cache,
    )
    for resolution, dataset in build.datasets.items():
        arrow_dir, folder = save_both(dataset, args.out, str(resolution), args.overwrite)
        counts = ", ".join(f"{split} {len(rows)}" for split, rows in dataset.items())
        print(f"emoji {resolution}px: {counts} -> {arrow_dir} (save_to_disk), {folder} (imagefolder)")
    for style, skipped in build.skipped.items():
        failed = build.failed[style]
        print(
            f"{style}: skipped {len(skipped)} emoji it has no art for"
            + (f": {skipped}" if skipped and len(build.skipped) == 1 else "")
            + (f"; {len(failed)} SVGs failed to render: {sorted(failed)}" if failed else "")
        )
    print(f"dataset card -> {write_card(build, args.out)}")
    if args.grid:
        from hfldm.atomic import save_image
        from hfldm.data.grid import dataset_grid

        largest = build.datasets[max(build.datasets)]
        Path(args.grid).parent.mkdir(parents=True, exist_ok=True)
        save_image(dataset_grid(largest["train"]), args.grid, "--grid")
        print(f"grid -> {args.grid}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def run_digits(args: argparse.Namespace) -> int:
    import datasets

    from hfldm.data.digits import load_digits_dataset
    from hfldm.data.emoji import is_test
    from hfldm.data.export import save_both

    for resolution in args.resolution:
        rows = load_digits_dataset(resolution)
        test = [is_test(str(i)) for i in range(len(rows))]  # the emoji rule, on the row index
        dataset = datasets.DatasetDict(
            train=rows.select([i for i, t in enumerate(test) if not t]),
            test=rows.select([i for i, t in enumerate(test) if t]),
        )
        arrow_dir, folder = save_both(dataset, args.out, str(resolution), args.overwrite)
        counts = f"train {len(dataset['train'])}, test {len(dataset['test'])}"
        print(f"digits {resolution}px: {counts} -> {arrow_dir} (save_to_disk), {folder} (imagefolder)")
    return 0
