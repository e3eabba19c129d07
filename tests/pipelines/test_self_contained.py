"""Self-contained model folders: saved pipelines load with `DiffusionPipeline.from_pretrained(folder,
trust_remote_code=True)` in a process where hfldm cannot be imported, and draw hfldm's images."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from _ldm_fixtures import class_pipeline, sample, text_pipeline
from _no_hfldm import load_without_hfldm
from _superres_fixtures import low_res_images, sr_pipeline, upscale
from diffusers.utils.dynamic_modules_utils import get_relative_imports

from hfldm import (
    ConditionalUNet,
    DDPMScheduler,
    KLAutoencoder,
    LatentDiffusionPipeline,
    LatentDiffusionSuperResolutionPipeline,
)
from hfldm.pipelines.self_contained import flat_name, flat_source

SR_IMAGE = np.asarray(low_res_images(1)[0], dtype=np.float32) / 255  # (H, W, 3) in [0, 1]
CALLS = {
    "text": {"prompt": "cat face"},
    "class": {"class_labels": ["dog face"]},
    "superres": {"image": SR_IMAGE},
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{"text" | "class" | "superres": (folder, hfldm's images for seed 0)}."""
    root = tmp_path_factory.mktemp("self_contained")
    folders = {}
    for kind, make in (("text", text_pipeline), ("class", class_pipeline)):
        pipe = make()
        pipe.save_pretrained(root / kind)
        folders[kind] = (root / kind, sample(pipe, **CALLS[kind]))
    pipe = sr_pipeline()
    pipe.save_pretrained(root / "superres")
    folders["superres"] = (root / "superres", upscale(pipe, SR_IMAGE))
    return folders


def test_folder_records_shipped_entry_files_and_copies_of_the_current_source(saved):
    folder = saved["text"][0]
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_latent_diffusion", "LatentDiffusionPipeline"]
    assert index["unet"] == ["unet_hfldm", "ConditionalUNet"]
    assert index["vae"] == ["vae_hfldm", "KLAutoencoder"]
    assert index["scheduler"] == ["scheduler_hfldm", "DDPMScheduler"]
    assert index["text_encoder"] == ["transformers", "DistilBertModel"]  # not hfldm's: nothing shipped
    assert not list((folder / "text_encoder").glob("*.py"))
    for cls in (LatentDiffusionPipeline, ConditionalUNet, KLAutoencoder, DDPMScheduler):
        copy = folder / f"{flat_name(cls.__module__)}.py"
        assert copy.read_text() == flat_source(cls.__module__)  # the source of this checkout, rewritten
    # what diffusers' copier reads (check_imports): the pipeline's entry file names every copy at the top;
    # a sub-folder holds only its entry file (all diffusers downloads from a Hub sub-folder with weights),
    # which names no file to copy along
    copies = sorted(p.stem for p in folder.glob("hfldm_*.py"))
    assert sorted(get_relative_imports(folder / "pipeline_latent_diffusion.py")) == copies
    for sub in ("unet", "vae", "scheduler"):
        assert [p.name for p in (folder / sub).glob("*.py")] == [f"{sub}_hfldm.py"]
        assert get_relative_imports(folder / sub / f"{sub}_hfldm.py") == []
    shipped = sorted(folder.rglob("*.py"))
    assert len(shipped) > 10 and sum(p.stat().st_size for p in shipped) < 400_000  # source files only
    for path in shipped:  # no absolute hfldm import left anywhere, lazy ones included
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level:
                assert not (node.module or "").startswith("hfldm"), f"{path}: line {node.lineno}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("hfldm") for a in node.names), f"{path}: line {node.lineno}"


def test_flat_source_rewrites_only_the_internal_imports():
    source = flat_source("hfldm.schedulers.ddim")  # package-relative imports (`from .base import ...`)
    assert "from .hfldm_schedulers_base import DiscreteNoiseScheduler" in source
    assert "from diffusers.configuration_utils import register_to_config" in source
    original = Path(sys.modules["hfldm.schedulers.ddim"].__file__).read_text()
    assert len(source.splitlines()) == len(original.splitlines())


def test_loads_and_generates_without_hfldm(saved, tmp_path):
    kinds = ("text", "class", "superres")
    calls = {**CALLS, "superres": {"image": SR_IMAGE.tolist()}}
    jobs = [(kind, str(saved[kind][0]), 4, calls[kind]) for kind in kinds]
    images, modules = load_without_hfldm(jobs, tmp_path)
    assert modules["loaded hfldm"] == []
    for kind in kinds:
        # pipeline, unet, vae (the super-resolution model's scheduler is diffusers' DDIMScheduler)
        assert all(m.startswith("diffusers_modules.local.hfldm_") for m in modules[kind][:3]), modules[kind]
        assert np.abs(images[kind] - saved[kind][1]).max() <= 1e-6


def test_with_hfldm_installed_its_own_classes_load(saved):
    folder, original = saved["class"]
    pipe = LatentDiffusionPipeline.from_pretrained(folder)  # no trust_remote_code: the installed code
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe.unet) is ConditionalUNet and type(pipe.vae) is KLAutoencoder
    assert type(pipe.scheduler) is DDPMScheduler
    np.testing.assert_allclose(sample(pipe, **CALLS["class"]), original, atol=1e-6)
    folder, original = saved["superres"]
    pipe = LatentDiffusionSuperResolutionPipeline.from_pretrained(folder)
    assert type(pipe.unet) is ConditionalUNet and type(pipe.vae) is KLAutoencoder
    np.testing.assert_allclose(upscale(pipe, SR_IMAGE), original, atol=1e-6)


def test_saved_again_keeps_the_folder_self_contained(saved, tmp_path):
    """A pipeline loaded from a folder's shipped code (hfldm installed but not used) saves a folder that is
    self-contained again: its files are the shipped copies."""
    from diffusers import DiffusionPipeline

    folder, original = saved["text"]
    pipe = DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)
    assert type(pipe.unet).__module__.startswith("diffusers_modules.")
    pipe.save_pretrained(tmp_path / "again")
    for path in folder.rglob("*.py"):
        relative = path.relative_to(folder)
        assert (tmp_path / "again" / relative).read_text() == path.read_text(), relative
    index = json.loads((tmp_path / "again" / "model_index.json").read_text())
    assert index["unet"] == ["unet_hfldm", "ConditionalUNet"]


@pytest.mark.parametrize("statement", ["import hfldm.unets.unet", "from hfldm import unets"])
def test_an_import_form_a_copy_cannot_express_is_refused_with_its_line(statement, tmp_path, monkeypatch):
    import types

    from hfldm.pipelines.self_contained import module_closure

    path = tmp_path / "uses_hfldm.py"
    path.write_text(f'"""A module."""\n\n{statement}\n')
    module = types.ModuleType("uses_hfldm")
    module.__file__ = str(path)
    monkeypatch.setitem(sys.modules, "uses_hfldm", module)
    with pytest.raises(ValueError, match="uses_hfldm, line 3: "):
        module_closure("uses_hfldm")
