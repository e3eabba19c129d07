"""`hfldm export --format openvino|onnx MODEL OUT`: an hfldm pipeline folder for OpenVINO or ONNX Runtime.

The exported folder runs with `hfldm generate / upscale / inpaint --model OUT` (the format is detected) and
`hfldm.runtime.load_pipeline(OUT)`; docs/export.md has the parity and speed figures.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a pipeline folder to OpenVINO IR or ONNX (run it with --model OUT)"
    )
    parser.add_argument("model", metavar="MODEL", help="an hfldm pipeline folder (text, SR or inpainting)")
    parser.add_argument("out", metavar="OUT", help="the folder to write (refused if it exists)")
    parser.add_argument("--format", required=True, help="openvino or onnx")
    parser.add_argument(
        "--dtype",
        default="float32",
        help="inference precision: float32, or bfloat16 (OpenVINO's precision hint for U-Net and τ_θ)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per call: makes the graphs' shapes static (the U-Net's at 2x under guidance)",
    )
    parser.add_argument(
        "--weights",
        default="fp32",
        help="fp32, or int8: NNCF weight compression of the U-Net and τ_θ (openvino only)",
    )
    parser.add_argument("--height", type=int, default=None, help="static output height (with --batch-size)")
    parser.add_argument("--width", type=int, default=None, help="static output width (with --batch-size)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it is an earlier export")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hfldm.commands.shared import quiet_loading
    from hfldm.runtime.formats import get_format

    get_format(args.format)  # a bad --format fails before torch is imported by the export
    from hfldm.runtime.export import export_pipeline

    with quiet_loading():
        out = export_pipeline(
            args.model,
            args.out,
            args.format,
            dtype=args.dtype,
            batch_size=args.batch_size,
            height=args.height,
            width=args.width,
            overwrite=args.overwrite,
            weights=args.weights,
        )
    print(f"wrote {out} ({args.format}, {args.dtype}, {args.weights} weights)")
    return 0
