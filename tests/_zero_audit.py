"""A pytest plugin (`pytest -p _zero_audit tests/...`) that lists the tests in which every `ConditionalUNet`
call returned exactly zero: those assert nothing about the U-Net (a zero-initialised one, `_jitter`)."""

from __future__ import annotations

import pytest
import torch

from hfldm.unets.unet import ConditionalUNet

_calls: dict[str, list[bool]] = {}
_current = {"test": None}


_original = {"forward": None}


def pytest_configure(config):
    forward = _original["forward"] = ConditionalUNet.forward

    def recording(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        sample = out.sample if hasattr(out, "sample") else out[0]
        if _current["test"] is not None:
            _calls.setdefault(_current["test"], []).append(not torch.count_nonzero(sample).item())
        return out

    ConditionalUNet.forward = recording
    _calls.clear()


def pytest_unconfigure(config):
    ConditionalUNet.forward = _original["forward"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    _current["test"] = item.nodeid
    try:
        return (yield)
    finally:
        _current["test"] = None


def pytest_terminal_summary(terminalreporter):
    zero = sorted(test for test, calls in _calls.items() if calls and all(calls))
    terminalreporter.write_line(
        f"zero-U-Net audit: {len(_calls)} tests call a ConditionalUNet; {len(zero)} only see 0:"
    )
    for test in zero:
        terminalreporter.write_line(f"  {test} ({len(_calls[test])} calls, all exactly 0)")
