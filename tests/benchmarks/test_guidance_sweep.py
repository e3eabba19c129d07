"""benchmarks/guidance_sweep.py's bookkeeping: scales and arms from the command line, rows grouped into one
curve per encoder sorted by w, the best w per arm, the table, which earlier points a rerun keeps (the long
runs are not tests)."""

from __future__ import annotations

import argparse

import pytest
from _scripts import load_script


@pytest.fixture
def sweep(monkeypatch):
    return load_script("benchmarks/guidance_sweep.py", monkeypatch)


def test_scales_and_arms_parse_and_bad_ones_name_the_argument(sweep):
    assert sweep.parse_scales("1,1.5,8") == [1.0, 1.5, 8.0]
    for bad in ("1,x", "-1,2", ""):
        with pytest.raises(ValueError, match="--scales"):
            sweep.parse_scales(bad)
    arms = sweep.parse_arms(["w=1 arm=runs/a", "minilm=runs/b"], "models/m")
    assert arms == {"w=1 arm": "runs/a", "minilm": "runs/b"}
    assert sweep.parse_arms(None, "models/hfldm-emoji") == {"hfldm-emoji": "models/hfldm-emoji"}
    for bad in (["runs/a"], ["a=x", "a=y"]):
        with pytest.raises(ValueError, match="--arm"):
            sweep.parse_arms(bad, "m")


def _figures(fid: float, clip: float) -> dict:
    return {
        "all": {
            "fid": {"generated_vs_train": {"fid": fid, "kid_mean": fid / 100}},
            "text_image": {"generated": {"clip_score": clip, "top1": clip / 100, "top5": clip / 90}},
        }
    }


def test_rows_become_one_sorted_curve_per_arm_with_its_best_scales(sweep):
    points = [("a", 3.0, 0.30, 62.0), ("b", 1.0, 0.25, 55.0), ("a", 1.0, 0.26, 58.0), ("a", 8.0, 0.45, 63.0)]
    rows = [sweep.row_of(arm, w, _figures(fid, clip)) for arm, w, fid, clip in points]
    assert rows[0] == {
        "arm": "a",
        "guidance_scale": 3.0,
        "fid": 0.30,
        "kid": 0.003,
        "clip_score": 62.0,
        "top1": 0.62,
        "top5": 62.0 / 90,
    }
    grouped = sweep.curves(rows)
    assert list(grouped) == ["a", "b"] and [r["guidance_scale"] for r in grouped["a"]] == [1.0, 3.0, 8.0]
    assert sweep.best(rows) == {
        "a": {"lowest_fid_at": 1.0, "highest_clip_score_at": 8.0},
        "b": {"lowest_fid_at": 1.0, "highest_clip_score_at": 1.0},
    }
    result = {
        "command": "c",
        "feature_network": "f",
        "num_samples": 4,
        "steps": 25,
        "seed": 0,
        "floor": 0.2,
        "rows": rows,
    }
    table = sweep.markdown(result).splitlines()
    assert table[-4:-1] == [
        "| a | 1 | 0.26 | 0.0026 | 58.00 | 58.0 % | 64.4 % |",
        "| a | 3 | 0.3 | 0.003 | 62.00 | 62.0 % | 68.9 % |",
        "| a | 8 | 0.45 | 0.0045 | 63.00 | 63.0 % | 70.0 % |",
    ]


def test_a_rerun_keeps_only_points_of_the_same_settings_arm_folder_and_scales(sweep):
    args = argparse.Namespace(
        dataset="data/emoji/32",
        split="test",
        reference_split="train",
        num_samples="all",
        steps=25,
        seed=0,
        dtype="float32",
        feature_model="models/hfldm-textimage",
    )
    settings = sweep.settings_of(args)
    rows = [{"arm": "joint", "guidance_scale": w} for w in (1.0, 3.0)]
    rows.append({"arm": "minilm", "guidance_scale": 1.0})
    previous = {"settings": settings, "arms": {"joint": "runs/j", "minilm": "runs/m"}, "rows": rows}
    arms = {"joint": "runs/j", "minilm": "runs/m"}
    assert sweep.kept_rows(previous, settings, arms, [1.0, 3.0, 8.0]) == rows
    assert sweep.kept_rows(previous, settings, arms, [3.0]) == rows[1:2]  # w no longer asked for
    assert sweep.kept_rows(previous, settings, {"joint": "runs/j", "minilm": "runs/other"}, [1.0]) == rows[:1]
    assert sweep.kept_rows(previous, settings, {"joint": "runs/j"}, [1.0, 3.0]) == rows[:2]  # arm dropped
    assert (
        sweep.kept_rows(
            previous, sweep.settings_of(argparse.Namespace(**{**vars(args), "steps": 10})), arms, [1.0]
        )
        == []
    )
    assert sweep.kept_rows({"rows": rows}, settings, arms, [1.0]) == []  # a file from before settings existed
