"""A benchmark's two edges: where it writes OUT.json, OUT.md and OUT.png for its --out OUT, and how it
exits on a bad argument."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

USER_ERRORS: tuple[type[Exception], ...] = (ValueError, FileNotFoundError)


def output_file(out: str | Path, suffix: str) -> Path:
    """OUT + suffix beside OUT, dots in OUT's name kept: `Path.with_suffix` would turn "sweep_w1.5" into
    "sweep_w1.json" and write over another run's results."""
    out = Path(out)
    return out.parent / f"{out.name}{suffix}"


def run_benchmark(main: Callable[[], object], errors: tuple[type[Exception], ...] = USER_ERRORS) -> None:
    """Call `main()` and exit with what it returns; one of `errors` (a bad flag, a missing folder) exits 2
    with one line `SCRIPT: error: MESSAGE` on stderr instead of a traceback (HFLDM_TRACEBACK=1 keeps it)."""
    try:
        sys.exit(main())
    except errors as e:
        if os.environ.get("HFLDM_TRACEBACK"):
            raise
        print(f"{Path(sys.argv[0]).name}: error: {e}".splitlines()[0], file=sys.stderr)
        sys.exit(2)
