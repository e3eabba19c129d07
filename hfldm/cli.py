"""`hfldm` command line: one sub-command per module in `hfldm.commands`.

Each module exposes `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
User errors (ValueError, FileNotFoundError) are printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# sub-command modules, in the order `hfldm --help` lists them
COMMANDS = ["data", "cache_latents", "generate", "eval", "convert"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hfldm", description="Latent Diffusion Models on diffusers.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"hfldm.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"hfldm.commands.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        print(f"hfldm {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
