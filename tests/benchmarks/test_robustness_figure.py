"""benchmarks/robustness.py's figure: one row per unshifted cell, SR's 4 columns and inpainting's 3, and no
empty columns for a task that was not run (--tasks inpaint)."""

from __future__ import annotations

import pytest
import torch
from _scripts import load_script


@pytest.fixture
def bench(monkeypatch):
    return load_script("benchmarks/robustness.py", monkeypatch)


def cells(n: int, columns: int, size: int) -> list:
    return [[torch.zeros(8, 3, size, size)] * columns for _ in range(n)]


@pytest.mark.parametrize("tasks, width", [("sr,inpaint", 7), ("sr", 4), ("inpaint", 3)])
def test_columns_are_the_tasks_run(bench, tasks, width):
    sr = cells(4, 4, 64) if "sr" in tasks else []
    inpaint = cells(4, 3, 32) if "inpaint" in tasks else []
    grid = bench.figure(sr, inpaint, num_cells=4)
    assert grid.size == (width * 64, 2 * 64)  # the cells with shift 0: 2 of 4
