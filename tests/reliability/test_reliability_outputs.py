"""#36 item 8, no silent black images: every pipeline checks its final latents / images for nan and inf
(`hfldm.pipelines.sampling.check_finite_output`) and says why in one line; β outside (0, 1) and a
non-finite scaling_factor are refused where they are configured. Each test failed on 7e03a4a (rc 0, black
images)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from _inpaint_fixtures import images, inpaint_pipeline
from _ldm_fixtures import text_pipeline
from _superres_fixtures import low_res_images, sr_pipeline
from _training_helpers import ENV, ROOT, flags, ldm_args, run_script

from hfldm.schedulers.ddpm import DDPMScheduler

BLACK = r"^1 of 1 generated images hold nan/inf \(they would be black\): an extreme guidance_scale or eta"
BUNDLED = ROOT / "models" / "hfldm-emoji"
NAN = float("nan")


def poisoned_callback(pipe, i, t, tensors):
    return {"latents": tensors["latents"] * NAN}


NAN_MASK = torch.full((1, 1, 16, 16), NAN)
NAN_LATENTS = torch.full((1, 4, 8, 8), NAN)
CASES = {
    "nan latents": (text_pipeline, dict(prompt="cat", latents=NAN_LATENTS)),
    "a callback's nan": (text_pipeline, dict(prompt="cat", callback_on_step_end=poisoned_callback)),
    "latent output": (text_pipeline, dict(prompt="cat", output_type="latent", latents=NAN_LATENTS)),
    "SR eta=nan": (sr_pipeline, dict(image=low_res_images(1), eta=NAN)),
    "SR nan image": (sr_pipeline, dict(image=torch.full((1, 3, 8, 8), NAN))),
    "nan mask_image": (inpaint_pipeline, dict(prompt="cat", image=images(1)[0], mask_image=NAN_MASK)),
}
# caught before any work by the pipelines' argument table (#32), which names the argument itself
EARLIER = {"SR eta=nan": r"^eta must be a finite number, got nan"}


@pytest.mark.parametrize("case", CASES)
def test_nonfinite_outputs_raise_one_line_naming_the_causes(case):
    make, kwargs = CASES[case]
    with pytest.raises(ValueError, match=EARLIER.get(case, BLACK)):
        make()(num_inference_steps=2, **kwargs)


def test_a_nan_scaling_factor_is_refused_naming_it():
    pipe = text_pipeline()
    pipe.vae.register_to_config(scaling_factor=NAN)
    with pytest.raises(
        ValueError, match=r"^vae: scaling_factor in its config.json is nan; it must be finite"
    ):
        pipe("cat", num_inference_steps=2)


@pytest.mark.parametrize("beta_end, first", [(5.0, r"β_201 = 1.0\d+ "), (1.0, "β_1000 = 1 ")])
def test_betas_outside_0_1_are_refused(beta_end, first):
    with pytest.raises(ValueError, match=rf"^beta_start/beta_end: {first}.*is outside \(0, 1\)"):
        DDPMScheduler(beta_end=beta_end)


def test_training_refuses_beta_end_5_in_one_line(digits, autoencoder, tmp_path):
    """`--beta_end 5.0` (before: trained with rc 0, a model that samples black images)."""
    args = ldm_args(digits, autoencoder, tmp_path / "run", *flags(max_train_steps=2, beta_end=5.0))
    failed = run_script("train_ldm.py", *args, rc=2)
    assert failed.stderr.strip().splitlines()[-1].startswith("train_ldm.py: error: beta_start/beta_end: β_")
    assert not (tmp_path / "run" / "checkpoint-2").exists()


@pytest.mark.skipif(not (BUNDLED / "model_index.json").is_file(), reason="the bundled model is not present")
@pytest.mark.parametrize("extreme", [["--guidance-scale", "1e30"], ["--eta", "1e30", "--scheduler", "ddim"]])
def test_cli_extreme_guidance_or_eta_exit_2_instead_of_a_black_png(tmp_path, extreme):
    out = tmp_path / "x.png"
    command = [
        sys.executable,
        "-m",
        "hfldm.cli",
        "generate",
        "--model",
        str(BUNDLED),
        "--prompt",
        "cat face",
        "--steps",
        "3",
        "--out",
        str(out),
        *extreme,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(
        "hfldm generate: error: 1 of 1 generated images hold nan/inf (they would be black)"
    )
    assert not out.exists()
