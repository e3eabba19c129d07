"""Atomic replacement of a user's file or folder: write a temporary sibling, then rename it over the target.

A rename within one folder is atomic (POSIX `rename`, `os.replace`), so a reader, a kill or a full disk
sees either the old file or the new one, never a truncated mix. Every place hfldm writes a file a user may
already have (images, grids, datasets, model folders, cards) goes through `atomic_path`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, argument: str | None = None) -> Iterator[Path]:
    """Yields a temporary sibling path of `target` to write (a file or a folder); when the block ends
    without an error it replaces `target`, else it is removed and `target` is left as it was.

    An OSError while writing (a full disk, no permission) becomes a ValueError naming `argument`, when
    given, saying that the existing file was kept.
    """
    target = Path(target)
    temporary = target.with_name(f".{target.name}.partial-{os.getpid()}")
    _remove(temporary)
    try:
        yield temporary
        replaced = target.with_name(f".{target.name}.replaced-{os.getpid()}")
        if target.is_dir() and not target.is_symlink():  # a folder cannot be renamed over a folder
            os.replace(target, replaced)
            try:
                os.replace(temporary, target)
            except OSError:
                os.replace(replaced, target)
                raise
        else:
            os.replace(temporary, target)
        _remove(replaced)
    except OSError as e:
        _remove(temporary)
        if argument is None:
            raise
        kept = "; the existing file is kept" if target.exists() else ""
        raise ValueError(f"{argument}: could not write {target} ({e.strerror or e}){kept}") from None
    except BaseException:
        _remove(temporary)
        raise


@contextlib.contextmanager
def atomic_entries(folder: str | os.PathLike, last: str = "model_index.json") -> Iterator[Path]:
    """Yields a staging folder inside `folder` (which holds other things too: a training run's checkpoints);
    when the block ends without an error each entry written there replaces its namesake in `folder`
    whole, `last` (the file loaders look for first) renamed last, so that `folder` is loadable only once
    every part of the new model is in place. On an error the staging folder is removed."""
    folder = Path(folder)
    staging = folder / f".staging-{os.getpid()}"
    _remove(staging)
    staging.mkdir(parents=True)
    try:
        yield staging
        for entry in sorted(staging.iterdir(), key=lambda p: p.name == last):
            with atomic_path(folder / entry.name) as path:
                os.replace(entry, path)
    finally:
        _remove(staging)


def check_writable(folder: str | os.PathLike, argument: str) -> None:
    """ValueError naming `argument` unless `folder` is (or can be made) a folder where this process creates a
    file and writes a byte: a path under a file, a read-only or full file system are refused before work."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{argument}: {folder} is a file, not a folder")
    probe = folder / f".write-test-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise ValueError(f"{argument}: cannot write to {folder} ({why})") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def atomic_write_text(target: str | os.PathLike, text: str, argument: str | None = None) -> None:
    """Replace the file `target` by `text`, atomically."""
    with atomic_path(target, argument) as path:
        path.write_text(text)


def save_image(image, target: str | os.PathLike, argument: str = "--out") -> None:
    """`image.save(target)` (format from the suffix), atomically."""
    target = Path(target)
    with atomic_path(target, argument) as path:
        image.save(path, format=_format(target))


def _format(target: Path) -> str | None:
    from PIL import Image

    return Image.registered_extensions().get(target.suffix.lower())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
