"""hfldm.training.runtime.warn_idle_cores: one warning when a single CPU process leaves cores idle (what
`accelerate launch` does by default: OMP_NUM_THREADS=1), none when it uses them all or runs distributed."""

import os
import warnings

import pytest
import torch

from hfldm.training import runtime


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


def test_warns_on_one_thread_of_two_cores(two_cores, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with pytest.warns(
        UserWarning,
        match=r"training on 1 of 2 CPU threads \(OMP_NUM_THREADS=1\).*"
        r"--num_cpu_threads_per_process 2",
    ):
        runtime.warn_idle_cores()


@pytest.mark.parametrize("threads, world_size", [(2, "1"), (1, "2")])
def test_silent_with_all_cores_or_several_processes(two_cores, monkeypatch, threads, world_size):
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    monkeypatch.setenv("WORLD_SIZE", world_size)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runtime.warn_idle_cores()
    assert [str(w.message) for w in caught] == []
