"""`hfldm export` and `hfldm.runtime`: tiny random (perturbed) text, super-resolution and inpainting pipelines
exported to OpenVINO and ONNX give the torch pipeline's images through hfldm's own pipeline classes; the CLI
runs an export; bad folders, an existing OUT, a missing extra and a torch-only use of an export give one line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _inpaint_fixtures import box_mask, images, inpaint_pipeline
from _ldm_fixtures import CAPTIONS, class_pipeline, text_pipeline
from _superres_fixtures import low_res_images, sr_pipeline
from _training_helpers import ROOT

from hfldm.cli import main as hfldm_main
from hfldm.pipelines.loading import load_pipeline as load_torch
from hfldm.runtime import export_pipeline, is_export, load_pipeline
from hfldm.runtime.components import RuntimeUNet
from hfldm.runtime.folders import PIPELINE_CLASSES
from hfldm.runtime.formats import FORMATS

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

NAMES = ["openvino", "onnx"]
TOLERANCE = 1e-4  # fp32 graph against fp32 torch on [0, 1] (docs/export.md: the bundled models' figures)
KINDS = {
    "text": (text_pipeline, lambda: dict(prompt=CAPTIONS[:2], guidance_scale=3.0)),
    "class": (class_pipeline, lambda: dict(class_labels=["cat face", 2], guidance_scale=2.0)),
    "superres": (sr_pipeline, lambda: dict(image=low_res_images(2))),
    "inpaint": (inpaint_pipeline, lambda: dict(prompt=CAPTIONS[:2], image=images(2), mask_image=box_mask())),
}


@pytest.fixture(scope="module", autouse=True)
def torchscript_onnx():
    """ONNX through torch.onnx's TorchScript exporter here: the same graph numerically as the dynamo
    exporter (the default, `test_the_dynamo_onnx_exporter_draws_the_same_images`), 20× faster to write."""
    FORMATS["onnx"].dynamo = False
    yield
    FORMATS["onnx"].dynamo = True


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{kind: a saved torch pipeline folder}."""
    root = tmp_path_factory.mktemp("torch")
    for kind, (make, _) in KINDS.items():
        make().save_pretrained(root / kind)
    return root


@pytest.fixture(scope="module")
def exported(saved, tmp_path_factory):
    """(kind, format) -> its export, made once."""
    root, cache = tmp_path_factory.mktemp("exports"), {}

    def get(kind: str, fmt: str):
        if (kind, fmt) not in cache:
            cache[kind, fmt] = export_pipeline(saved / kind, root / f"{kind}-{fmt}", fmt)
        return cache[kind, fmt]

    return get


def _images(pipe, call: dict, steps: int = 3) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    n = len(call.get("image") or call.get("prompt") or call.get("class_labels"))
    generator = [torch.Generator().manual_seed(10 + i) for i in range(n)]
    return pipe(**call, num_inference_steps=steps, generator=generator, output_type="np").images


@pytest.mark.parametrize("fmt", NAMES)
@pytest.mark.parametrize("kind", ["text", "superres", "inpaint"])
def test_an_export_draws_the_torch_pipelines_images(saved, exported, kind, fmt):
    folder = exported(kind, fmt)
    torch_pipe = load_torch(str(saved / kind), pipeline_class=PIPELINE_CLASSES[_class_name(saved / kind)])
    runtime_pipe = load_pipeline(folder)
    assert type(runtime_pipe) is type(torch_pipe) and isinstance(runtime_pipe.unet, RuntimeUNet)
    call = KINDS[kind][1]()
    expected, got = _images(torch_pipe, call), _images(runtime_pipe, call)
    assert got.shape == expected.shape and expected.std() > 0.01  # images, not a constant
    assert np.abs(got - expected).max() <= TOLERANCE
    other = _images(runtime_pipe, call, steps=2)
    assert np.abs(other - expected).max() > 1e-3  # the runtime follows the loop: fewer steps, other images


def test_a_class_conditional_export_draws_the_torch_pipelines_images(saved, exported):
    call = KINDS["class"][1]()
    expected = _images(load_torch(str(saved / "class")), call)
    assert np.abs(_images(load_pipeline(exported("class", "onnx")), call) - expected).max() <= TOLERANCE


@pytest.mark.slow  # ≈ 1 min alone (3 min on the busy 2-core VM): torch.export and onnxscript's optimiser
def test_the_dynamo_onnx_exporter_draws_the_same_images(saved, tmp_path, monkeypatch):
    monkeypatch.setattr(FORMATS["onnx"], "dynamo", True)  # the default of `hfldm export`: ≈ 1 min here
    call = KINDS["text"][1]()
    expected = _images(load_torch(str(saved / "text")), call)
    got = _images(load_pipeline(export_pipeline(saved / "text", tmp_path / "dynamo", "onnx")), call)
    assert np.abs(got - expected).max() <= TOLERANCE


def _class_name(folder) -> str:
    name = json.loads((folder / "model_index.json").read_text())["_class_name"]
    return name[-1] if isinstance(name, list) else name


def test_export_copies_configs_and_records_the_format(saved, exported):
    folder = exported("text", "openvino")
    facts = json.loads((folder / "export.json").read_text())
    assert facts["format"] == "openvino" and facts["precision"] == "float32" and facts["static"] is None
    assert (facts["latent_channels"], facts["downsample_factor"]) == (4, 2)
    for name in ("model_index.json", "scheduler/scheduler_config.json", "tokenizer/tokenizer.json"):
        assert (folder / name).read_bytes() == (saved / "text" / name).read_bytes()
    assert {p.name for p in (folder / "vae").iterdir()} >= {"config.json", "encoder.xml", "decoder.xml"}
    assert is_export(folder) and not is_export(saved / "text")


def test_a_callback_and_a_swapped_scheduler_work_on_an_export(saved, exported):
    from hfldm.schedulers.ddim import DDIMScheduler

    torch_pipe, runtime_pipe = load_torch(str(saved / "text")), load_pipeline(exported("text", "onnx"))
    seen = []

    def callback(pipe, i, t, tensors):
        seen.append((i, int(t), float(tensors["latents"].abs().mean())))
        return tensors

    results = []
    for pipe in (torch_pipe, runtime_pipe):
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        call = dict(prompt=["cat face"], callback_on_step_end=callback)
        results.append(_images(pipe, call, steps=3))
    assert np.abs(results[0] - results[1]).max() <= TOLERANCE
    torch_steps, runtime_steps = seen[:3], seen[3:]
    assert [s[:2] for s in torch_steps] == [s[:2] for s in runtime_steps]
    assert np.allclose([s[2] for s in torch_steps], [s[2] for s in runtime_steps], atol=1e-4)


@pytest.mark.parametrize("fmt", NAMES)
def test_a_static_export_takes_its_batch_and_refuses_another(saved, tmp_path, fmt):
    folder = export_pipeline(saved / "text", tmp_path / "static", fmt, batch_size=2)
    assert json.loads((folder / "export.json").read_text())["static"] == dict(
        batch_size=2, height=16, width=16
    )
    runtime_pipe, call = load_pipeline(folder), dict(prompt=CAPTIONS[:2])
    expected = _images(load_torch(str(saved / "text")), call)
    assert np.abs(_images(runtime_pipe, call) - expected).max() <= TOLERANCE  # 4 U-Net rows, tokens padded
    with pytest.raises(
        ValueError, match=r"^sample: this export takes shape \(4, 4, 8, 8\), got \(6, 4, 8, 8\)"
    ):
        _images(runtime_pipe, dict(prompt=CAPTIONS[:3]))


def test_openvino_bf16_hint_runs_close_to_fp32(exported):
    call = dict(prompt=CAPTIONS[:2])
    fp32 = _images(load_pipeline(exported("text", "openvino")), call)
    bf16 = _images(load_pipeline(exported("text", "openvino"), precision="bfloat16"), call)
    assert np.abs(bf16 - fp32).max() < 0.1


def test_cli_generate_upscale_inpaint_detect_an_export(saved, exported, tmp_path):
    import PIL.Image

    fp32 = ["--dtype", "float32", "--steps", "3"]
    for kind, argv in (
        ("text", ["generate", "--prompt", "cat face"]),
        ("superres", ["upscale", "--image", str(tmp_path / "low.png")]),
        ("inpaint", ["inpaint", "--image", str(tmp_path / "in.png"), "--mask", str(tmp_path / "m.png")]),
    ):
        low_res_images(1)[0].save(tmp_path / "low.png")
        images(1)[0].save(tmp_path / "in.png"), box_mask().save(tmp_path / "m.png")
        outs = []
        for model in (saved / kind, exported(kind, "openvino")):
            outs.append(tmp_path / f"{kind}-{model.name}.png")
            assert hfldm_main([*argv, "--model", str(model), *fp32, "--out", str(outs[-1])]) == 0
        a, b = (np.asarray(PIL.Image.open(p), dtype=np.int16) for p in outs)
        assert np.abs(a - b).max() <= 1  # the same image, up to the rounding to 8 bits


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "--prompt", "x", "--compile"], "--compile: {export} is an exported openvino folder"),
        (["generate", "--prompt", "x", "--dtype", "float16"], "--dtype: an exported folder runs in"),
        (["generate", "--prompt", "x", "--device", "cuda"], None),
        (
            ["upscale", "--image", "{png}"],
            "--model: {export} is an export of a LatentDiffusionPipeline; this "
            "command needs a LatentDiffusionSuperResolutionPipeline",
        ),
    ],
)
def test_an_export_where_torch_or_another_kind_is_needed_is_one_line(
    exported, tmp_path, capsys, argv, message
):
    export = exported("text", "openvino")
    capsys.readouterr()  # the export's loading output
    low_res_images(1)[0].save(tmp_path / "low.png")
    argv = [a.format(png=tmp_path / "low.png") for a in argv]
    assert hfldm_main([*argv, "--model", str(export), "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not (tmp_path / "o.png").exists()
    if message:
        assert message.format(export=export) in err
    with pytest.raises(ValueError, match="is an exported openvino folder .* needs the torch pipeline folder"):
        load_torch(str(export))  # what training from a pipeline, eval's features and fine-tuning use


def test_export_refuses_bad_folders_and_an_existing_out_in_one_line(saved, exported, tmp_path, capsys):
    other = tmp_path / "sd"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    earlier = exported("text", "onnx")
    capsys.readouterr()  # the export's loading output
    cases = [
        (
            [str(other), str(tmp_path / "o")],
            "MODEL: {t}/sd holds a StableDiffusionPipeline, not an hfldm pipeline",
        ),
        (
            [str(tmp_path), str(tmp_path / "o")],
            "MODEL: {t} is not a saved pipeline folder (no model_index.json",
        ),
        ([str(saved / "text"), str(tmp_path / "taken")], "OUT: {t}/taken exists; pass --overwrite"),
        (
            [str(saved / "text"), str(tmp_path / "taken"), "--overwrite"],
            "OUT: {t}/taken exists and is not an ex",
        ),
        ([str(earlier), str(tmp_path / "o")], "is an exported folder already"),
        ([str(saved / "text"), str(tmp_path / "o"), "--format", "tensorrt"], None),
        ([str(saved / "text"), str(tmp_path / "o"), "--height", "32"], "--height/--width: they fix the size"),
        (
            [str(saved / "text"), str(tmp_path / "o"), "--weights", "int8"],
            "--weights: onnx exports store fp32",
        ),
    ]
    for args, message in cases:
        fmt = [] if "--format" in args else ["--format", "onnx"]
        assert hfldm_main(["export", *args, *fmt]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("hfldm export: error:"), err
        assert message is None or message.format(t=tmp_path) in err, err
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine" and not (tmp_path / "o").exists()


def test_overwrite_replaces_an_earlier_export(saved, tmp_path, capsys):
    out = tmp_path / "sr"
    argv = ["export", str(saved / "superres"), str(out), "--format", "onnx"]
    assert hfldm_main(argv) == 0 and "wrote" in capsys.readouterr().out
    (out / "stale.txt").write_text("from the earlier export")
    assert hfldm_main([*argv, "--overwrite"]) == 0
    assert (
        is_export(out) and not (out / "stale.txt").exists() and [p.name for p in tmp_path.iterdir()] == ["sr"]
    )


@pytest.mark.parametrize(
    "fmt, package, extra", [("openvino", "openvino", "openvino"), ("onnx", "onnx", "onnx")]
)
def test_a_missing_runtime_names_its_extra(saved, monkeypatch, tmp_path, capsys, fmt, package, extra):
    import sys

    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)  # import -> ModuleNotFoundError
    assert hfldm_main(["export", str(saved / "text"), str(tmp_path / "o"), "--format", fmt]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == f'hfldm export: error: this command needs the {package} package; pip install "hfldm[{extra}]"'
    )
    assert not (tmp_path / "o").exists() and list(tmp_path.iterdir()) == []


def test_the_space_serves_an_export_on_its_runtime(saved, exported):
    """space/serving.py: HFLDM_MODEL (or the SR / inpainting variables) naming an export serves it on its
    runtime, the same images as the torch folder; another kind of export is one line naming the variable."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("space_serving", ROOT / "space" / "serving.py")
    serving = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serving)
    pipe = serving.serving_pipeline_of(str(exported("text", "onnx")), "HFLDM_MODEL", env={})
    assert isinstance(pipe.unet, RuntimeUNet)
    torch_pipe = load_torch(str(saved / "text"))
    call = KINDS["text"][1]()
    assert np.abs(_images(pipe, call) - _images(torch_pipe, call)).max() <= TOLERANCE
    sr_class = PIPELINE_CLASSES[_class_name(saved / "superres")]
    with pytest.raises(
        ValueError, match=r"^HFLDM_SR_MODEL: .* is an export of a LatentDiffusionPipeline, not a"
    ):
        serving.serving_pipeline_of(str(exported("text", "onnx")), "HFLDM_SR_MODEL", sr_class, env={})
