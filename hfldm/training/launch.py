"""`python -m hfldm.training.launch [accelerate launch flags] training/train_ldm.py ...`: `accelerate launch`
whose failures end as the script's own.

A training script answers a bad argument with one line and exit code 2 (`hfldm.training.args.run`), a
non-finite loss with exit code 3. Under `accelerate launch` that line was followed by the launcher's
15-line CalledProcessError traceback and exit code 1. Here the same launcher runs (same flags, same
config file), and a failed child ends the launcher with the child's exit code and nothing after its line.
"""

from __future__ import annotations

import subprocess
import sys


def child_exit_code(error: BaseException) -> int | None:
    """The exit code of the failed training process behind a launcher's `error`, else None."""
    if isinstance(error, subprocess.CalledProcessError):
        return error.returncode
    failures = getattr(error, "failures", None)  # torch.distributed.elastic's ChildFailedError
    if failures:
        # the rank that failed on its own, not one the agent then stopped (negative: killed by a signal)
        own = [f for f in failures.values() if f.exitcode > 0]
        return min(own, key=lambda f: f.timestamp).exitcode if own else 1
    return None


def main(argv: list[str] | None = None) -> int:
    from accelerate.commands.launch import launch_command, launch_command_parser

    args = launch_command_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        launch_command(args)
    except Exception as error:  # noqa: BLE001 - only a failed child is re-labelled; anything else re-raised
        code = child_exit_code(error)
        if code is None:
            raise
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
