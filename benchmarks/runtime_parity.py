"""Parity of exported pipelines with torch: the bundled text, super-resolution and inpainting models, each
exported to OpenVINO and ONNX (fp32), the same inputs, seed and DDIM steps through torch fp32 and the runtime.

Max |Δ| over the images in [0, 1] (output_type "np"); also OpenVINO's bf16 precision hint against torch fp32
and torch bf16 against torch fp32, for scale. Writes docs/export_parity.json.

    python benchmarks/runtime_parity.py [--exports /tmp/hfldm-exports] [--steps 25]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from hfldm.eval.outputs import output_file, run_benchmark
from hfldm.pipelines.loading import load_pipeline as load_torch
from hfldm.precision import half_precision
from hfldm.runtime import export_pipeline, load_pipeline
from hfldm.runtime.folders import pipeline_class

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["grinning face", "red apple", "cat face", "rocket"]


def inputs(name: str) -> dict:
    """The call of each bundled model: 4 guided prompts; 4 example images to upscale; 4 to inpaint."""
    examples = sorted((ROOT / "models" / name / "examples").glob("*.png"))[:4]
    if name == "hfldm-emoji":
        return dict(prompt=PROMPTS)
    images = [PIL.Image.open(p).convert("RGB") for p in examples]
    if name == "hfldm-emoji-sr":
        return dict(image=[im.resize((32, 32), PIL.Image.BICUBIC) for im in images])
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    return dict(prompt=PROMPTS, image=images, mask_image=PIL.Image.fromarray(mask))


def images(pipe, call: dict, steps: int) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    n = len(call.get("image") or call["prompt"])
    generator = [torch.Generator().manual_seed(i) for i in range(n)]
    return pipe(**call, num_inference_steps=steps, generator=generator, output_type="np").images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="hfldm-emoji,hfldm-emoji-sr,hfldm-emoji-inpaint")
    parser.add_argument("--formats", default="openvino,onnx")
    parser.add_argument("--exports", default=None, help="folder for the exports (default: a temporary one)")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--out", default=str(ROOT / "docs" / "export_parity"))
    args = parser.parse_args()
    exports = Path(args.exports or tempfile.mkdtemp(prefix="hfldm-exports-"))
    results = {"steps": args.steps, "torch": torch.__version__}
    for name in args.models.split(","):
        model = ROOT / "models" / name
        call, cls = inputs(name), pipeline_class(model)
        reference = images(load_torch(str(model), pipeline_class=cls), call, args.steps)
        bf16 = images(
            half_precision(load_torch(str(model), pipeline_class=cls), torch.bfloat16), call, args.steps
        )
        row = {"torch bf16": float(np.abs(bf16 - reference).max())}
        for fmt in args.formats.split(","):
            folder = exports / f"{name}-{fmt}"
            if not folder.exists():
                export_pipeline(model, folder, fmt)
            row[f"{fmt} fp32"] = float(
                np.abs(images(load_pipeline(folder), call, args.steps) - reference).max()
            )
            if fmt == "openvino":
                ov_bf16 = images(load_pipeline(folder, "bfloat16"), call, args.steps)
                row["openvino bf16"] = float(np.abs(ov_bf16 - reference).max())
        results[name] = row
        print(name, json.dumps(row))
    output_file(Path(args.out), ".json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    run_benchmark(main)
