"""hfldm pipelines on OpenVINO and ONNX Runtime: `export_pipeline` writes an exported folder (`hfldm export`),
`load_pipeline` runs one with hfldm's own pipeline classes. The runtimes are extras, imported when used."""

from hfldm.runtime.export import export_pipeline
from hfldm.runtime.folders import is_export
from hfldm.runtime.loading import load_pipeline

__all__ = ["export_pipeline", "is_export", "load_pipeline"]
