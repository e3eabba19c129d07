"""`hfldm export --weights int8`: NNCF's weight compression of the U-Net and τ_θ in an OpenVINO export.

On a tiny jittered text pipeline the int8 export loads through `hfldm.runtime.load_pipeline`, draws images
within 2e-2 of the fp32 export's (measured 4.8e-3 max |Δ| on [0, 1]), records its weights in export.json, and
stores the U-Net in about a third of the bytes (int8 weights with a per-channel scale and zero point); the
autoencoder keeps fp32 weights. ONNX refuses `--weights int8` in one line (tests/runtime/test_runtime.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _ldm_fixtures import CAPTIONS, text_pipeline

from hfldm.runtime import export_pipeline, load_pipeline

pytest.importorskip("openvino")
pytest.importorskip("nncf")

TOLERANCE = 2e-2  # int8 weights against fp32 on [0, 1]; measured 4.8e-3 on this fixture


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """{weights: the OpenVINO export of one tiny text pipeline with those weights}."""
    root = tmp_path_factory.mktemp("weights")
    text_pipeline().save_pretrained(root / "torch")
    return {w: export_pipeline(root / "torch", root / w, "openvino", weights=w) for w in ("fp32", "int8")}


def _images(folder, steps: int = 3) -> np.ndarray:
    pipe = load_pipeline(folder)
    pipe.set_progress_bar_config(disable=True)
    generator = [torch.Generator().manual_seed(10 + i) for i in range(2)]
    call = dict(prompt=CAPTIONS[:2], guidance_scale=3.0, generator=generator, output_type="np")
    return pipe(**call, num_inference_steps=steps).images


def test_an_int8_export_draws_close_to_fp32(exports):
    fp32, int8 = _images(exports["fp32"]), _images(exports["int8"])
    assert fp32.std() > 0.01  # images, not a constant
    difference = np.abs(int8 - fp32).max()
    assert 0 < difference <= TOLERANCE  # compressed (not the same weights), and close


def test_an_int8_export_records_its_weights_and_is_smaller(exports):
    facts = {w: json.loads((folder / "export.json").read_text()) for w, folder in exports.items()}
    assert facts["fp32"]["weights"] == "fp32" and facts["int8"]["weights"] == "int8"

    def size(weights: str, graph: str) -> int:
        return (exports[weights] / graph).stat().st_size

    assert size("int8", "unet/model.bin") < 0.4 * size("fp32", "unet/model.bin")
    assert size("int8", "text_encoder/model.bin") < 0.4 * size("fp32", "text_encoder/model.bin")
    assert size("int8", "vae/decoder.bin") == size("fp32", "vae/decoder.bin")  # the autoencoder stays fp32
