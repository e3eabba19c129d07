"""benchmarks/f_sweep.py: the budget arithmetic, and one real (tiny) sweep of two factors on the digits that
trains, evaluates, resumes from its state and refuses a work dir of other settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _scripts import load_script

REPO = Path(__file__).resolve().parents[2]


def load_sweep(monkeypatch):
    return load_script("benchmarks/f_sweep.py", monkeypatch)


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--factors", "1,3"], "--factors"),
        (["--budget-minutes", "0"], "--budget-minutes"),
        (["--eval-points", "0"], "--eval-points"),
        (["--jobs", "0"], "--jobs"),
    ],
)
def test_bad_arguments_name_the_argument(flags, named, monkeypatch):
    argv = ["--budget-minutes", "1", *flags]
    with pytest.raises(ValueError, match=named):
        load_sweep(monkeypatch).parse_args(argv)


def test_budget_becomes_whole_chunks_of_steps_and_scales_step_settings(monkeypatch):
    sweep = load_sweep(monkeypatch)
    args = sweep.parse_args(["--budget-minutes", "2", "--eval-points", "3"])
    config = {"max_train_steps": 1000, "lr_warmup_steps": 100, "disc_start": 500}
    # 120 s / 0.7 s = 171.4 steps -> 3 chunks of 57 = 171 steps; warm-up 10 %, GAN from half-way
    flags, chunk = sweep.budgeted_flags("ldm", {"seed": 0}, config, 0.7, args)
    assert (chunk, flags["max_train_steps"], flags["lr_warmup_steps"]) == (57, 171, 17)
    assert flags["checkpointing_steps"] == 57 and flags["resume_from_checkpoint"] == "latest"
    assert "disc_start" not in flags
    flags, chunk = sweep.budgeted_flags("ae", {"seed": 0}, config, 0.7, args)  # one chunk
    assert (chunk, flags["max_train_steps"], flags["disc_start"]) == (171, 171, 86)


def test_tiny_sweep_trains_evaluates_resumes(digits, tmp_path, monkeypatch):
    """f = 2 and 4 at once (--jobs 2) under a 2-second budget: every stage ran, the LDM was scored at each
    eval point, the outputs hold one row per f; a rerun trains nothing; other settings are refused."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # --jobs sets them for its subprocesses
        monkeypatch.setenv(name, "1")
    sweep = load_sweep(monkeypatch)
    work, out = tmp_path / "work", tmp_path / "out"
    argv = ["--budget-minutes", "0.03", "--factors", "2,4", "--jobs", "2", "--eval-points", "2"]
    argv += ["--ae-config", "training/configs/autoencoder_digits.yaml", "--calibration-steps", "3"]
    argv += ["--ldm-config", "training/configs/ldm_digits.yaml", "--data-dir", str(digits)]
    argv += ["--eval-args", "--num-samples 8 --steps 2 --batch-size 8 --num-reference 32"]
    argv += ["--work-dir", str(work), "--out", str(out)]
    assert sweep.main(argv) == 0

    result = json.loads((out / "f_sweep.json").read_text())
    assert list(result["factors"]) == ["2", "4"] and "2 factors at a time" in result["machine"]
    for f, state in result["factors"].items():
        assert state["done"] and state["ae_seconds_per_step"] > 0 and state["ldm_seconds_per_step"] > 0
        budget_steps = 0.03 * 60 / state["ldm_seconds_per_step"]
        chunk = state["ldm_points"][0]["steps"]
        assert [p["steps"] for p in state["ldm_points"]] == [chunk, 2 * chunk]
        assert 2 * chunk <= max(budget_steps, 2)
        for point in state["ldm_points"]:
            assert point["fid_vs_test"] >= 0 and point["images_per_second"] > 0 and point["rfid"] >= 0
        assert (work / f"f{f}" / f"eval-{chunk}" / "report.json").is_file()
    table = (out / "f_sweep.md").read_text()
    assert table.count("\n| 2 |") == 1 and table.count("\n| 4 |") == 1
    assert (out / "f_sweep.png").stat().st_size > 0 and (out / "f_sweep_samples.png").stat().st_size > 0

    logs = {f: (work / f"f{f}" / "log.txt").read_text() for f in (2, 4)}
    assert sweep.main(argv) == 0  # everything recorded as done: no command runs again
    assert {f: (work / f"f{f}" / "log.txt").read_text() for f in (2, 4)} == logs
    assert json.loads((out / "f_sweep.json").read_text())["factors"] == result["factors"]

    with pytest.raises(ValueError, match="--work-dir"):
        sweep.main([*argv[:1], "0.05", *argv[2:]])
