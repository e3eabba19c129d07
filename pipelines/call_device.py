"""One execution device per call, looked up when the call starts, as diffusers' own pipelines do
(`device = self._execution_device` at the top of `__call__`).

diffusers' `_execution_device` walks every module of every component for offloading hooks: ≈ 8 ms for the
bundled text model on a 2-core CPU. The pipelines' steps ask for it about five times a call, which cost a
fifth of a 4-step LCM call (docs/few_step.md). Within a call decorated by `one_execution_device`, the
property returns the device found at its start; outside a call it asks diffusers, as before.
"""

from __future__ import annotations

import functools

import torch
from diffusers import DiffusionPipeline


class CallDeviceMixin:
    """`_execution_device`: the current call's device, else diffusers' lookup."""

    _call_device: torch.device | None = None

    @property
    def _execution_device(self) -> torch.device:
        if self._call_device is not None:
            return self._call_device
        return DiffusionPipeline._execution_device.fget(self)


def one_execution_device(call):
    """Decorates a pipeline's `__call__`: the execution device is looked up once, at the outermost call."""

    @functools.wraps(call)
    def wrapper(self, *args, **kwargs):
        if self._call_device is not None:  # a subclass's __call__ calling its parent's
            return call(self, *args, **kwargs)
        self._call_device = DiffusionPipeline._execution_device.fget(self)
        try:
            return call(self, *args, **kwargs)
        finally:
            self._call_device = None

    return wrapper
