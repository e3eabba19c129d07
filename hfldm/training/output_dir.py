"""A training run owns its --output_dir: a lock file while it runs, and its identity kept beside its
checkpoints.

`claim_output_dir` runs on the main process before any training work. It checks that --output_dir is a
folder this process can write (so an unwritable one fails in one line, not at the final save after every
step ran), refuses a second run while the lock's owner is alive, refuses a fresh run into a folder holding
another run's checkpoints or model unless --resume_from_checkpoint or --overwrite_output_dir says what to
do with them, and on resume checks that the checkpoints' run had the same --seed (the data order and the
noise of every step follow from it) and says which run it continues and which arguments changed.

The identity (`run.json`): the seed, a hash of the arguments, the start time, pid and host. The lock
(`run.lock`) holds the same and is removed when the process exits; one left by a killed run is taken over
once its pid is gone from this host.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from hfldm.atomic import atomic_write_text, check_writable

LOCK, IDENTITY = "run.lock", "run.json"
# arguments a resumed run may change without continuing another run: where and how often it writes
VOLATILE = {
    "output_dir",
    "resume_from_checkpoint",
    "overwrite_output_dir",
    "max_train_steps",
    "logging_steps",
    "validation_steps",
    "checkpointing_steps",
    "checkpoints_total_limit",
    "report_to",
    "push_to_hub",
    "hub_model_id",
    "hub_token",
    "dataloader_num_workers",
    "train_batch_size",
    "gradient_accumulation_steps",
    "mixed_precision",
    "skip_nonfinite_steps",
}


def run_identity(seed: int, config: dict) -> dict:
    """Who a run is: its seed, a hash of its (non-volatile) arguments, when and where it started."""
    kept = {k: v for k, v in sorted(config.items()) if k not in VOLATILE}
    digest = hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return dict(
        seed=seed,
        config_hash=digest,
        config=kept,
        started=time.strftime("%Y-%m-%d %H:%M:%S"),
        pid=os.getpid(),
        host=socket.gethostname(),
    )


def _alive(owner: dict) -> bool:
    """Whether the process of a lock file still runs (unknowable on another host: assumed alive)."""
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, TypeError, ValueError):
        return True
    return True


def _take_lock(output_dir: Path, identity: dict) -> None:
    """Create output_dir/run.lock for this process; ValueError while another live run holds it."""
    lock = output_dir / LOCK
    for _ in range(2):
        try:
            with open(lock, "x") as f:
                json.dump(identity, f)
        except FileExistsError:
            try:
                owner = json.loads(lock.read_text())
            except (OSError, ValueError):
                owner = {}
            ours = owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname()
            if _alive(owner) and not ours:  # ours: an earlier run in this process (scripts run in-process)
                raise ValueError(
                    f"--output_dir: {output_dir} is in use by another training run (pid "
                    f"{owner.get('pid')} on {owner.get('host')}, seed {owner.get('seed')}, started "
                    f"{owner.get('started')}); give "
                    f"this run another --output_dir, or delete {lock} if that run is gone"
                ) from None
            lock.unlink(missing_ok=True)  # left by a killed run: take it over
            continue
        atexit.register(_release, lock, os.getpid())
        return


def _release(lock: Path, pid: int) -> None:
    try:
        if json.loads(lock.read_text()).get("pid") == pid:
            lock.unlink()
    except (OSError, ValueError):
        pass


def previous_output(output_dir: Path) -> list[str]:
    """What another run left in `output_dir`: its checkpoints and model (a run that failed before its first
    checkpoint leaves only its identity, which a new run replaces)."""
    names = sorted(p.name for p in output_dir.glob("checkpoint-*"))
    return names + [n for n in ("model_index.json", "config.json") if (output_dir / n).exists()]


def clear_previous(output_dir: Path) -> None:
    """Remove another run's checkpoints, model files and identity (--overwrite_output_dir)."""
    for path in output_dir.iterdir():
        if path.name in (LOCK, "logs"):
            continue
        doomed = path.with_name(f".{path.name}.deleting")
        os.replace(path, doomed)
        shutil.rmtree(doomed) if doomed.is_dir() else doomed.unlink()


def claim_output_dir(
    output_dir: str | Path, seed: int, config: dict, resume: str | None, overwrite: bool
) -> dict:
    """Make `output_dir` this run's (see the module docstring); returns the identity it continues or starts.

    ValueError naming --output_dir / --seed when it may not. Call on the main process only.
    """
    output_dir = Path(output_dir)
    check_writable(output_dir, "--output_dir")
    identity = run_identity(seed, config)
    _take_lock(output_dir, identity)
    earlier = previous_output(output_dir)
    if resume is None and earlier and not overwrite:
        raise ValueError(
            f"--output_dir: {output_dir} holds another run's output ({', '.join(earlier[:4])}"
            f"{', ...' if len(earlier) > 4 else ''}); pass --resume_from_checkpoint latest to continue it, "
            "--overwrite_output_dir to replace it, or another --output_dir"
        )
    if resume is None and earlier:
        print(f"--overwrite_output_dir: removing {', '.join(earlier)} from {output_dir}", file=sys.stderr)
        clear_previous(output_dir)
    before = _read_identity(output_dir / IDENTITY) if resume is not None else None
    if before is not None:
        if before.get("seed") != seed:
            raise ValueError(
                f"--seed: the checkpoints in {output_dir} were trained with --seed {before.get('seed')}, "
                f"this run has {seed}; the data order and noise would not continue theirs"
            )
        changed = sorted(
            k
            for k in set(before.get("config", {})) | set(identity["config"])
            if before.get("config", {}).get(k) != identity["config"].get(k)
        )
        print(
            f"continuing the run of seed {seed} started {before.get('started')} (config "
            f"{before.get('config_hash')})" + (f"; changed: {', '.join(changed)}" if changed else ""),
            file=sys.stderr,
        )
        return before
    atomic_write_text(output_dir / IDENTITY, json.dumps(identity, indent=1, default=str))
    return identity


def _read_identity(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        raise ValueError(f"--resume_from_checkpoint: {path} is damaged (not JSON)") from None


def claim_run(accelerator, train, config: dict) -> None:
    """`claim_output_dir` for TrainingArguments `train` on the main process; the others wait for it."""
    if accelerator.is_main_process:
        claim_output_dir(
            train.output_dir, train.seed, config, train.resume_from_checkpoint, train.overwrite_output_dir
        )
    accelerator.wait_for_everyone()
