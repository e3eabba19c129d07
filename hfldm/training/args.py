"""Command-line arguments of the training scripts: dataclasses, a YAML config file, one-line errors.

`parse_args(ScriptArgs, TrainingArguments, ...)` reads `--config file.yaml` (keys = argument names), lets
the command line override it, then checks every field against its type hint (Literal choices, numbers,
paths), so a YAML value is held to the same rules as a typed one. `run(main)` turns a bad argument into one
line on stderr and exit code 2, never a traceback, as long as training has not started.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import types
import typing
from argparse import ArgumentDefaultsHelpFormatter, ArgumentParser, RawDescriptionHelpFormatter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from tqdm.auto import tqdm
from transformers import HfArgumentParser

from hfldm.training.nonfinite import EXIT_CODE, NonFiniteError

# the errors a user's input raises; anything else is a bug and keeps its traceback
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError)
_TRAINING_STARTED = False


def arg(default, help: str, **kwargs) -> dataclasses.Field:
    """A dataclass field with its --help text (lists take `default_factory`)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kwargs})
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class TrainingArguments:
    """What every training script shares: output, optimisation, precision, checkpoints, logging."""

    output_dir: str = arg("runs/out", "Folder for checkpoints, logs, validation images and the final model.")
    seed: int = arg(0, "Seed of everything: model initialisation, data order, per-sample training noise.")
    train_batch_size: int = arg(16, "Images per device per forward pass.")
    max_train_steps: int = arg(1000, "Number of optimiser steps to train for.")
    gradient_accumulation_steps: int = arg(1, "Forward/backward passes per optimiser step.")
    learning_rate: float = arg(1e-4, "Peak learning rate (AdamW).")
    adam_beta1: float = arg(0.9, "AdamW β1.")
    adam_beta2: float = arg(0.999, "AdamW β2.")
    adam_weight_decay: float = arg(0.0, "AdamW decoupled weight decay.")
    max_grad_norm: float = arg(1.0, "Clip the gradient norm to this value (0 = no clipping).")
    lr_scheduler: Literal["constant", "constant_with_warmup", "cosine", "linear"] = arg(
        "constant_with_warmup", "Learning-rate schedule (diffusers.optimization.get_scheduler)."
    )
    lr_warmup_steps: int = arg(0, "Linear warm-up steps of the learning rate.")
    mixed_precision: Literal["no", "fp16", "bf16"] | None = arg(
        None, "Autocast precision (default: accelerate config's); bf16 also works on CPU, fp16 needs a GPU."
    )
    gradient_checkpointing: bool = arg(False, "Recompute activations in backward to save memory.")
    checkpointing_steps: int = arg(500, "Save the full training state every N optimiser steps.")
    checkpoints_total_limit: int | None = arg(None, "Keep at most this many checkpoints (oldest removed).")
    resume_from_checkpoint: str | None = arg(
        None, "Resume from a checkpoint folder, or 'latest' for the newest in output_dir."
    )
    overwrite_output_dir: bool = arg(
        False, "Start afresh in an output_dir holding another run's checkpoints or model (they are deleted)."
    )
    validation_steps: int = arg(500, "Write validation images and metrics every N optimiser steps (0 = off).")
    logging_steps: int = arg(10, "Log the loss every N optimiser steps.")
    report_to: str = arg(
        "tensorboard",
        "Trackers for scalars and images: none, all, or accelerate's (tensorboard, wandb, ...).",
    )
    push_to_hub: bool = arg(False, "Upload the final model folder to the Hub (--hub_model_id, --hub_token).")
    hub_model_id: str | None = arg(None, "Hub repo of --push_to_hub (default: the output_dir's name).")
    hub_token: str | None = arg(None, "Token for --push_to_hub (default: the logged-in user's).")
    dataloader_num_workers: int = arg(0, "Data-loading worker processes per device.")
    skip_nonfinite_steps: int = arg(
        0, "Skip up to N optimiser steps whose loss or gradient is nan/inf; stop (exit 3) at the next one."
    )


class RawDescriptionDefaults(RawDescriptionHelpFormatter, ArgumentDefaultsHelpFormatter):
    """--help keeps the script docstring's line breaks and shows every default."""


def _check_field(obj, f: dataclasses.Field, hint) -> None:
    """Raise ValueError naming --field when obj.field does not fit its type hint."""
    value, name = getattr(obj, f.name), f"--{f.name}"
    args = typing.get_args(hint)
    is_optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    if is_optional and isinstance(value, str) and value.lower() in ("", "none"):
        value = None  # `--caption_column none` on the command line
        setattr(obj, f.name, None)
    if value is None:
        if is_optional or f.default is None:
            return
        raise ValueError(f"{name}: a value is required")
    hint = next(a for a in args if a is not type(None)) if is_optional else hint
    origin = typing.get_origin(hint)
    if origin is Literal and value not in typing.get_args(hint):
        choices = ", ".join(map(str, typing.get_args(hint)))
        raise ValueError(f"{name}: invalid choice {value!r} (choose from {choices})")
    if hint is bool and not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false, got {value!r}")
    if hint in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if hint is int and not float(value).is_integer():
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if hint is float and not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number, got {value}")
    if hint is float:
        setattr(obj, f.name, float(value))
    if hint is int:
        setattr(obj, f.name, int(value))
    if origin is list and not isinstance(value, list):
        raise ValueError(f"{name}: expected a list, got {value!r}")


def check_types(obj) -> None:
    """Check every field of the dataclass instance `obj` against its type hint (ValueError naming it)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        _check_field(obj, f, hints[f.name])


def check_positive(obj, *names: str, allow_zero: bool = False) -> None:
    """Raise ValueError naming the first of `names` whose value is not > 0 (or >= 0)."""
    for name in names:
        value = getattr(obj, name)
        if value is not None and (value < 0 or (value == 0 and not allow_zero)):
            bound = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"--{name}: must be {bound}, got {value}")


def check_report_to(report_to: str) -> None:
    """ValueError naming --report_to unless it is none, all or trackers accelerate knows (comma-separated)."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    names = [n.strip() for n in report_to.split(",")]
    unknown = [n for n in names if n not in ("none", "all", *LOGGER_TYPE_TO_CLASS)]
    if unknown:
        known = ", ".join(["none", "all", *LOGGER_TYPE_TO_CLASS])
        raise ValueError(f"--report_to: unknown tracker(s) {unknown}; choose from {known}")


def check_fsdp_request() -> None:
    """ValueError in one line when accelerate was asked for FSDP (`accelerate launch --use_fsdp`, a config
    with `distributed_type: FSDP`: ACCELERATE_USE_FSDP=true) where it cannot shard: accelerate selects FSDP
    only for accelerator devices, so on CPU it would silently train plain DDP; one process shards nothing.
    hfldm has no FSDP2 path of its own yet (docs/scaling.md)."""
    from accelerate.utils import parse_flag_from_env

    if not parse_flag_from_env("ACCELERATE_USE_FSDP"):
        return
    import torch

    if not torch.cuda.is_available():
        raise ValueError(
            "--use_fsdp: FSDP needs CUDA GPUs; on CPU accelerate would silently run plain DDP instead "
            "(launch without --use_fsdp or `distributed_type: FSDP`)"
        )
    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        raise ValueError("--use_fsdp: FSDP with a single process shards nothing; launch --num_processes >= 2")


def check_training_arguments(train: TrainingArguments) -> None:
    """The checks TrainingArguments needs beyond its types (ValueError naming the argument)."""
    check_positive(train, "train_batch_size", "max_train_steps", "gradient_accumulation_steps")
    check_positive(train, "learning_rate", "checkpointing_steps", "logging_steps", "checkpoints_total_limit")
    check_positive(train, "lr_warmup_steps", "validation_steps", "dataloader_num_workers", allow_zero=True)
    check_report_to(train.report_to)
    check_fsdp_request()
    if not 0 <= train.seed < 2**32:  # what NumPy's and torch's seeding take
        raise ValueError(f"--seed: must be in [0, 2**32), got {train.seed}")
    check_positive(train, "skip_nonfinite_steps", allow_zero=True)
    check_positive(train, "max_grad_norm", "adam_weight_decay", allow_zero=True)
    if not 0 <= train.adam_beta1 < 1 or not 0 <= train.adam_beta2 < 1:
        raise ValueError("--adam_beta1/--adam_beta2: must be in [0, 1)")
    resume = train.resume_from_checkpoint
    if resume not in (None, "latest") and not Path(resume).is_dir():
        raise ValueError(f"--resume_from_checkpoint: {resume!r} is neither 'latest' nor a checkpoint folder")


class _OneLineParser(HfArgumentParser):
    """HfArgumentParser whose errors are one line: 'prog: error: argument --x: invalid choice ...'."""

    def error(self, message: str):
        raise ValueError(message)


def _yaml_defaults(path: str, parser: ArgumentParser) -> dict:
    """The mapping of the YAML file at `path`; ValueError naming --config on a bad file or unknown key."""
    if not Path(path).is_file():
        raise ValueError(f"--config: no such file {path!r}")
    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"--config: {path} is not valid YAML ({str(e).splitlines()[0]})") from None
    except UnicodeDecodeError as e:
        raise ValueError(
            f"--config: {path} is not a UTF-8 text file (byte {e.start}); give a YAML file"
        ) from None
    if not isinstance(values, dict):
        raise ValueError(f"--config: {path} must hold a mapping of argument names to values")
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"--config: unknown argument(s) in {path}: {', '.join(unknown)}")
    return values


def build_parser(*dataclass_types: type, description: str = "") -> HfArgumentParser:
    """The parser of a script: one --flag per dataclass field (with its help and default), plus --config."""
    parser = _OneLineParser(dataclass_types, description=description, formatter_class=RawDescriptionDefaults)
    parser.add_argument(
        "--config", type=str, default=None, help="YAML file of argument values; CLI overrides it."
    )
    return parser


def parse_args(*dataclass_types: type, argv: list[str] | None = None, description: str = "") -> tuple:
    """Returns one instance per dataclass type, from `--config file.yaml` overridden by the command line.

    Every field is checked against its type hint; each instance's own `validate()` (if any) runs after.
    """
    parser = build_parser(*dataclass_types, description=description)
    argv = sys.argv[1:] if argv is None else argv
    config_parser = ArgumentParser(add_help=False)
    config_parser.add_argument("--config", default=None)
    pre, _ = config_parser.parse_known_args(argv)
    if pre.config is not None:
        parser.set_defaults(**_yaml_defaults(pre.config, parser))
    *instances, _ = parser.parse_args_into_dataclasses(argv, look_for_args_file=False)
    for obj in instances:
        check_types(obj)
        if hasattr(obj, "validate"):
            obj.validate()
    return tuple(instances)


def training_started() -> None:
    """Mark that the first training step is running: from now on errors keep their traceback."""
    global _TRAINING_STARTED
    _TRAINING_STARTED = True


def run(main: Callable[[], None]) -> None:
    """Call `main()`; a bad argument found before training starts exits 2 with one line on stderr, a
    non-finite loss or gradient during training exits 3 with one line."""
    try:
        main()
    except NonFiniteError as e:
        tqdm.write(f"{Path(sys.argv[0]).name}: error: {e}", sys.stderr)  # on a line of its own, not the bar's
        sys.exit(EXIT_CODE)
    except USER_ERRORS as e:
        if _TRAINING_STARTED or os.environ.get("HFLDM_TRACEBACK"):
            raise
        prog = Path(sys.argv[0]).name
        print(f"{prog}: error: {e}".splitlines()[0], file=sys.stderr)
        sys.exit(2)
