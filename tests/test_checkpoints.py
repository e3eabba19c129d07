"""Checkpoints under hostile conditions: kill -9 during saves with a total limit of 1."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import time

import pytest
from _training_helpers import ENV, ROOT, flags, ldm_args

from hfldm.training.checkpoints import checkpoint_step, list_checkpoints

INTERVAL = 1  # --checkpointing_steps: every step is a save, so most kills land in or near one
UNBUFFERED = {**ENV, "PYTHONUNBUFFERED": "1"}  # the log must hold what the killed run printed


def partial_saves(out) -> set[tuple[int, int]]:
    """(step, creation time) of the checkpoints being written now (`.checkpoint-<step>.partial`)."""
    found = set()
    for p in out.glob(".checkpoint-*.partial"):
        try:
            found.add((int(re.search(r"-(\d+)\.", p.name).group(1)), p.stat().st_ctime_ns))
        except FileNotFoundError:  # renamed into place meanwhile
            pass
    return found


@pytest.mark.slow
def test_sigkill_during_saves_with_limit_1_never_loses_more_than_one_interval(digits, autoencoder, tmp_path):
    """Five seeded trials: a run resumed from `latest` is killed at a random moment after a save starts; the
    newest complete checkpoint is never more than one interval behind that save, and the next run resumes
    from it (the old code pruned before saving and left only the .partial folder)."""
    rng = random.Random(15)
    out, log = tmp_path / "run", tmp_path / "log.txt"
    extra = flags(max_samples=32, train_batch_size=8, max_train_steps=10_000, scaling_factor=0.5)
    extra += flags(checkpointing_steps=INTERVAL, checkpoints_total_limit=1, resume_from_checkpoint="latest")
    command = [
        sys.executable,
        str(ROOT / "training/train_ldm.py"),
        *ldm_args(digits, autoencoder, out, *extra),
    ]
    resumed_at = 0
    for trial in range(5):
        with log.open("w") as stdout:
            victim = subprocess.Popen(
                command, cwd=ROOT, env=UNBUFFERED, stdout=stdout, stderr=subprocess.STDOUT
            )
        wait_saves, deadline, stale = rng.randint(1, 4), time.time() + 120, partial_saves(out)
        seen: set[tuple[int, int]] = set()  # saves of this run (a killed one may have left its .partial)
        while len(seen) < wait_saves and time.time() < deadline and victim.poll() is None:
            seen.update(s for s in partial_saves(out) - stale if s[0] > resumed_at)
            time.sleep(0.0005)
        saving = max(step for step, _ in seen)
        time.sleep(rng.uniform(0, 0.08))  # a save of this run takes ~50 ms: anywhere in it, or just after
        victim.send_signal(signal.SIGKILL)
        assert victim.wait() == -signal.SIGKILL, log.read_text()[-2000:]
        text = log.read_text()
        if resumed_at:
            assert f"(step {resumed_at})" in text, text[-2000:]
        complete = [checkpoint_step(p) for p in list_checkpoints(out)]
        newest = max(complete, default=0)  # 0: a fresh start, fine while the first save was the one killed
        assert newest >= saving - INTERVAL, (trial, saving, complete)
        assert len(complete) <= 2  # the limit, plus the one a kill before pruning leaves
        resumed_at = newest
