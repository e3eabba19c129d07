"""The two runtimes an hfldm pipeline exports to, behind one interface: OpenVINO and ONNX Runtime.

A `Format` writes one torch module as a graph file (`export`) and opens that file again as a `Session`, a
callable from named numpy arrays to the graph's outputs. Everything else in `hfldm.runtime` sees only this
interface, so a third runtime is one more class in `FORMATS`. The runtimes are extras (`hfldm[openvino]`,
`hfldm[onnx]`), imported only here and only when used: without them a ModuleNotFoundError names the package,
which the CLI turns into one line naming the extra (`hfldm.cli.EXTRAS`).
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import numpy as np
import torch

# --dtype -> the runtime's inference precision; the graphs' inputs and outputs stay fp32 either way
PRECISIONS = ("float32", "bfloat16")
# --weights -> how a graph's weights are stored: as traced, or int8 per output channel (NNCF, OpenVINO only)
WEIGHTS = ("fp32", "int8")


class Session:
    """A compiled graph: `session(**arrays) -> [outputs]`, and the static shape of each input (None where a
    dimension is dynamic)."""

    def __call__(self, **inputs: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    @property
    def input_shapes(self) -> dict[str, tuple[int | None, ...]]:
        raise NotImplementedError


class Format:
    """How one runtime stores a graph (`suffix`), writes it from a torch module and opens it."""

    name: str
    suffix: str
    weights: tuple[str, ...] = ("fp32",)  # the WEIGHTS this runtime can store

    def export(
        self,
        module: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        outputs: list[str],
        path: Path,
        static: bool,
        weights: str = "fp32",
    ) -> None:
        """Write `module`, traced on the example `inputs` (their order is the forward's), to `path`: every
        dimension dynamic unless `static` (then the examples' shapes are the graph's); its weights stored
        as `weights` (one of `self.weights`)."""
        raise NotImplementedError

    def load(self, path: Path, precision: str = "float32", threads: int | None = None) -> Session:
        """The graph at `path` compiled for the CPU at `precision` (one of PRECISIONS)."""
        raise NotImplementedError


class _OpenVINOSession(Session):
    def __init__(self, compiled):
        self.compiled = compiled
        self.request = compiled.create_infer_request()

    def __call__(self, **inputs):
        result = self.request.infer({name: np.ascontiguousarray(a) for name, a in inputs.items()})
        return [result[output] for output in self.compiled.outputs]

    @property
    def input_shapes(self):
        return {
            _given_name(port): tuple(
                None if d.is_dynamic else d.get_length() for d in port.get_partial_shape()
            )
            for port in self.compiled.inputs
        }


def _given_name(port) -> str:
    """The name export gave an input (a static reshape may add the tracer's numeric one beside it)."""
    names = sorted(port.get_names())
    return next((n for n in names if not n.isdigit()), port.any_name)


class OpenVINO(Format):
    """OpenVINO IR (`model.xml` + `model.bin`): `openvino.convert_model` on the torch module, weights kept in
    fp32 on disk, or int8 with NNCF's data-free weight compression (`nncf.compress_weights`: asymmetric int8
    per output channel, decompressed to f32 inside the graph at run time); bf16 is the CPU plugin's
    inference precision hint at load time."""

    name, suffix, weights = "openvino", ".xml", WEIGHTS

    def export(self, module, inputs, outputs, path, static, weights="fp32"):
        import openvino as ov

        shapes = [ov.PartialShape(list(t.shape) if static else [-1] * t.ndim) for t in inputs.values()]
        model = ov.convert_model(module, example_input=tuple(inputs.values()), input=shapes)
        for port, name in zip(model.inputs, inputs):
            port.get_tensor().set_names({name})
        for port, name in zip(model.outputs, outputs):
            port.get_tensor().set_names({name})
        if weights == "int8":
            import nncf

            nncf.set_log_level(logging.WARNING)  # not its per-graph statistics tables
            model = nncf.compress_weights(model)  # default mode: INT8_ASYM, no calibration data
        ov.save_model(model, str(path), compress_to_fp16=False)  # fp32 weights: parity with torch

    def load(self, path, precision="float32", threads=None):
        import openvino as ov

        # fp32 must be asked for: on CPUs with bf16 arithmetic the plugin's default is bf16
        config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bfloat16" else "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        return _OpenVINOSession(ov.Core().compile_model(str(path), "CPU", config))


class _ORTSession(Session):
    def __init__(self, session):
        self.session = session

    def __call__(self, **inputs):
        return self.session.run(None, {name: np.ascontiguousarray(a) for name, a in inputs.items()})

    @property
    def input_shapes(self):
        return {
            i.name: tuple(d if isinstance(d, int) else None for d in i.shape)
            for i in self.session.get_inputs()
        }


class ONNXRuntime(Format):
    """ONNX (`model.onnx`, opset 18) run by ONNX Runtime's CPU provider, fp32 only (its CPU kernels have no
    bf16 matmuls or convolutions). `dynamo`: torch.onnx's dynamo exporter (torch.export, then onnxscript's
    optimiser; the default), else its TorchScript exporter, which writes the same graph numerically (the
    tests check both against torch) about 20× faster on a tiny model."""

    name, suffix = "onnx", ".onnx"

    def __init__(self, dynamo: bool = True):
        self.dynamo = dynamo

    def export(self, module, inputs, outputs, path, static, weights="fp32"):
        import onnx  # noqa: F401  (the exporter needs onnx and onnxscript: fail with their name first)
        import onnxscript  # noqa: F401

        args, names = tuple(inputs.values()), dict(input_names=list(inputs), output_names=outputs)
        if not self.dynamo:
            axes = None if static else {n: {d: f"{n}_{d}" for d in range(t.ndim)} for n, t in inputs.items()}
            torch.onnx.export(
                module, args, str(path), **names, dynamic_axes=axes, dynamo=False, opset_version=18
            )
            return
        dynamic = None if static else dynamic_shapes(module, inputs)
        program = torch.onnx.export(
            module, args, **names, dynamic_shapes=dynamic, dynamo=True, optimize=True, verbose=False
        )
        program.save(str(path))

    def load(self, path, precision="float32", threads=None):
        import onnxruntime as ort

        if precision != "float32":
            raise ValueError(f"--dtype: ONNX Runtime's CPU provider runs float32 only, got {precision}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        return _ORTSession(ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]))


def dynamic_shapes(module: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> tuple:
    """torch.export's `dynamic_shapes` with every dimension of every input dynamic, in the structure of
    `module.forward`'s signature (the inputs of a non-empty `*args` as one tuple)."""
    specs = [{d: torch.export.Dim.AUTO for d in range(t.ndim)} for t in inputs.values()]
    params = inspect.signature(module.forward).parameters.values()
    fixed = sum(p.kind == p.POSITIONAL_OR_KEYWORD for p in params)
    if any(p.kind == p.VAR_POSITIONAL for p in params) and specs[fixed:]:
        return (*specs[:fixed], tuple(specs[fixed:]))
    return tuple(specs)


FORMATS: dict[str, Format] = {f.name: f for f in (OpenVINO(), ONNXRuntime())}


def get_format(name: str, argument: str = "--format") -> Format:
    """The Format called `name`; ValueError naming `argument` for any other name."""
    if name not in FORMATS:
        raise ValueError(f"{argument}: expected one of {', '.join(FORMATS)}, got {name!r}")
    return FORMATS[name]
