"""One execution device per call (pipelines/call_device.py): diffusers' lookup walks every module, so a call
looks it up once at its start; outside a call, and after a call that failed, it asks diffusers again."""

import pytest
import torch
from _inpaint_fixtures import inpaint_pipeline
from _ldm_fixtures import sample, text_pipeline
from diffusers import DiffusionPipeline


@pytest.fixture
def lookups(monkeypatch):
    """Counts diffusers' own `_execution_device` lookups."""
    count = {"n": 0}
    original = DiffusionPipeline._execution_device

    def counted(self):
        count["n"] += 1
        return original.fget(self)

    monkeypatch.setattr(DiffusionPipeline, "_execution_device", property(counted))
    return count


@pytest.mark.parametrize("make", [text_pipeline, inpaint_pipeline], ids=["text", "inpaint"])
def test_a_call_looks_the_device_up_once(make, lookups):
    pipe = make()
    kwargs = {"prompt": ["a", "b c"]}
    if make is inpaint_pipeline:
        kwargs |= {"image": torch.rand(2, 3, 16, 16), "mask_image": torch.ones(2, 1, 16, 16)}
    sample(pipe, steps=3, **kwargs)
    assert lookups["n"] == 1 and pipe._call_device is None
    assert pipe._execution_device == torch.device("cpu") and lookups["n"] == 2  # outside a call: diffusers'


def test_a_failed_call_leaves_no_device_behind(lookups):
    pipe = text_pipeline()
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe("a", num_inference_steps=0)
    assert pipe._call_device is None
