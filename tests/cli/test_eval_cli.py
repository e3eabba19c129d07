"""`hfldm eval`: reports of tiny random pipelines on a few emoji / digits rows, with the real feature network.

The pipelines are the 16 px ones of `_ldm_fixtures`; the emoji rows are the first 300 entries of the font
(31 held-out, 10 of them skin-tone variants of training emoji); the feature network is the trained
models/hfldm-textimage. Figures of random pipelines mean nothing, so the tests check what must hold for any
model: the real-vs-real floors and ceilings equal the eval functions applied to the dataset directly, the
same seed gives the same numbers, and bad inputs give one line and exit code 2.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import datasets
import PIL.Image
import pytest
from _ldm_fixtures import _pipeline, text_pipeline, tiny_unet, tiny_vae
from _scripts import load_script

from hfldm.cli import main
from hfldm.eval.emoji_split import to_image_caption_set
from hfldm.eval.features import TextImageFeatures
from hfldm.eval.fid import compute_fid_kid
from hfldm.eval.retrieval import clip_score, retrieval_accuracy
from hfldm.eval.subsets import skin_tone_variant_mask
from hfldm.eval.text_image import TextImageModel

FEATURE_MODEL = Path(__file__).resolve().parents[2] / "models" / "hfldm-textimage"
pytestmark = pytest.mark.skipif(not FEATURE_MODEL.is_dir(), reason="models/hfldm-textimage is not present")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """text/ (KL), uncond-vq/ and class/ (digits classes) pipelines, emoji/ and digits/ datasets."""
    from hfldm.data.emoji import build_emoji

    root = tmp_path_factory.mktemp("eval")
    text_pipeline().save_pretrained(root / "text")
    _pipeline(vae=tiny_vae("vq"), unet=tiny_unet()).save_pretrained(root / "uncond-vq")
    digits_labels = {i: str(i) for i in range(10)}
    _pipeline(vae=tiny_vae(), unet=tiny_unet(num_class_embeds=11), id2label=digits_labels).save_pretrained(
        root / "class"
    )
    build_emoji(resolutions=(16,), limit=300).datasets[16].save_to_disk(str(root / "emoji"))
    from hfldm.data.digits import load_digits_dataset

    digits = load_digits_dataset(16, limit=100)
    splits = datasets.DatasetDict(train=digits.select(range(80)), test=digits.select(range(80, 100)))
    splits.save_to_disk(str(root / "digits"))
    splits.remove_columns("text").save_to_disk(str(root / "digits-no-captions"))
    return root


def run_eval(root: Path, out: str, *flags: str, model: str = "text", dataset: str = "emoji") -> dict:
    argv = ["eval", "--model", str(root / model), "--dataset", str(root / dataset), "--steps", "3"]
    argv += ["--feature-model", str(FEATURE_MODEL), "--out", str(root / out), *flags]
    assert main(argv) == 0
    return json.loads((root / out / "report.json").read_text())


def figures(report: dict) -> dict:
    """Everything the seed decides: the sample and reconstruction figures (not the timings)."""
    return {"samples": report["samples"], "reconstruction": report["reconstruction"]}


def numbers(tree) -> list[float]:
    if isinstance(tree, dict):
        return [x for value in tree.values() for x in numbers(value)]
    return [float(tree)] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


@pytest.fixture(scope="module")
def text_report(root) -> dict:
    return run_eval(root, "text-seed0", "--seed", "0")


def test_text_report_files_keys_and_finite_numbers(root, text_report, capsys):
    report = text_report
    assert report["conditioning"] == "text" and report["num_samples"] == 31 and report["num_reference"] == 269
    assert report["feature_network"]["name"].startswith("hfldm-textimage@")
    assert set(report["samples"]) == {"all", "not_skin_tone_variant"}
    for subset in report["samples"].values():
        assert set(subset["fid"]) == {
            "generated_vs_test",
            "floor_vs_test",
            "generated_vs_train",
            "floor_vs_train",
        }
        assert set(subset["text_image"]) == {"generated", "real", "chance", "num_captions"}
    assert set(report["reconstruction"]) == {"psnr", "ssim", "rfid", "codebook"}
    values = numbers(figures(report))
    assert len(values) > 60 and all(math.isfinite(v) for v in values)
    table = (root / "text-seed0" / "report.md").read_text()
    assert table.count("\n| FID vs held-out real |") == 2 and "hfldm-textimage@" in table
    grid = PIL.Image.open(root / "text-seed0" / "samples.png")
    assert grid.width == 8 * (2 * 64 - 16)  # 8 columns of 64 px images with their captions


def test_floors_and_ceilings_equal_the_eval_functions_on_the_dataset(root, text_report):
    """The real-vs-real and real-ceiling figures of the report, recomputed from the saved dataset."""
    saved = datasets.load_from_disk(str(root / "emoji"))
    test, train = to_image_caption_set(saved["test"]), to_image_caption_set(saved["train"])
    model = TextImageModel.from_pretrained(str(FEATURE_MODEL))
    features = TextImageFeatures(model)
    variant = skin_tone_variant_mask(test.captions, train.captions)
    all_, unseen = text_report["samples"]["all"], text_report["samples"]["not_skin_tone_variant"]
    assert (all_["num_images"], unseen["num_images"]) == (31, 31 - sum(variant)) and sum(variant) == 10

    floor = compute_fid_kid(train.images, test.images, features, kid_subset_size=31)
    assert all_["fid"]["floor_vs_train"]["fid"] == pytest.approx(floor["fid"], rel=1e-3)
    assert all_["fid"]["floor_vs_train"]["kid_mean"] == pytest.approx(floor["kid_mean"], abs=1e-5)
    ceiling = retrieval_accuracy(model, test.images, test.captions)
    real = all_["text_image"]["real"]
    assert real["top1"] == pytest.approx(ceiling["top1"]) and real["top5"] == pytest.approx(ceiling["top5"])
    assert real["clip_score"] == pytest.approx(clip_score(model, test.images, test.captions), rel=1e-4)
    # the trained network retrieves real held-out emoji far above chance (1/31), and real beats random samples
    assert all_["text_image"]["chance"]["top1"] == pytest.approx(1 / 31)
    assert real["top1"] > 5 / 31
    assert real["clip_score"] > all_["text_image"]["generated"]["clip_score"]
    assert all_["fid"]["floor_vs_train"]["fid"] < all_["fid"]["generated_vs_train"]["fid"]


def test_same_seed_same_numbers_and_batch_size_does_not_matter(root, text_report):
    again = run_eval(root, "text-seed0-again", "--seed", "0", "--batch-size", "5")
    assert numbers(figures(again)) == pytest.approx(numbers(figures(text_report)), rel=1e-5, abs=1e-7)
    other = run_eval(root, "text-seed1", "--seed", "1")
    generated = other["samples"]["all"]["fid"]["generated_vs_test"]["fid"]
    assert generated != pytest.approx(text_report["samples"]["all"]["fid"]["generated_vs_test"]["fid"])
    # the references do not depend on the seed (nor, beyond float rounding, on the batch size)
    reference = text_report["samples"]["all"]["fid"]["floor_vs_test"]
    assert other["samples"]["all"]["fid"]["floor_vs_test"] == reference
    assert other["reconstruction"] == text_report["reconstruction"]
    # (rKID's standard deviation is ~1e-7 here: its float rounding is absolute, not relative)
    assert numbers(again["reconstruction"]) == pytest.approx(
        numbers(text_report["reconstruction"]), rel=1e-6, abs=1e-8
    )


def test_class_and_unconditional_vq_models(root):
    report = run_eval(root, "class", "--num-samples", "12", model="class", dataset="digits")
    assert report["conditioning"] == "class" and report["num_samples"] == 12
    assert set(report["samples"]) == {"all"} and report["samples"]["all"]["text_image"] is None
    assert report["reconstruction"]["codebook"] is None  # a KL autoencoder
    report = run_eval(root, "uncond", "--num-samples", "8", model="uncond-vq", dataset="digits")
    assert report["conditioning"] == "unconditional" and report["settings"]["guidance_scale"] is None
    codebook = report["reconstruction"]["codebook"]  # 8 images x 8 x 8 codes of a 16-entry codebook
    assert codebook["perplexity"] <= codebook["used_codes"]  # exp(entropy) <= the size of the support
    assert codebook["usage"] == codebook["used_codes"] / 16


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--model", "{root}/missing"], "--model"),
        (["--dataset", "{root}/digits-no-captions"], "--caption-column"),
        (["--num-samples", "1"], "--num-samples"),
        (["--scheduler", "heun"], "--scheduler"),
        (["--feature-model", "{root}/no-features"], "--feature-model"),
        (["--split", "validation"], "--split"),
    ],
)
def test_bad_inputs_give_one_line_and_exit_code_2(root, capsys, flags, named):
    argv = ["eval", "--model", str(root / "text"), "--dataset", str(root / "emoji")]
    argv += ["--feature-model", str(FEATURE_MODEL), "--out", str(root / "bad")]
    assert main(argv + [flag.format(root=root) for flag in flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hfldm eval: error: {named}:") and "\n" not in err and "Traceback" not in err
    assert not (root / "bad" / "report.json").exists()


def test_sampler_sweep_rows_equal_hfldm_eval_and_goal_ratio(root, text_report, monkeypatch):
    """benchmarks/sampler_sweep.py: the DDPM row is `hfldm eval` of the same scheduler and steps, the goal
    ratio is FID(20-step) / FID(longest DDPM), and the files exist after the sweep."""
    sweep = load_script("benchmarks/sampler_sweep.py", monkeypatch)
    out = root / "sweep"
    argv = ["--model", str(root / "text"), "--dataset", str(root / "emoji"), "--runs", "ddpm:3,ddim:20"]
    assert sweep.main([*argv, "--feature-model", str(FEATURE_MODEL), "--out", str(out)]) == 0
    result = json.loads((out / "sampler_sweep.json").read_text())
    ddpm, ddim = result["rows"]
    expected = text_report["samples"]["all"]["fid"]["generated_vs_test"]["fid"]
    assert (ddpm["sampler"], ddpm["steps"]) == ("ddpm", 3)
    assert ddpm["fid_vs_test"] == pytest.approx(expected, rel=1e-4)
    assert result["goal"]["ratios"] == {"ddim": pytest.approx(ddim["fid_vs_test"] / ddpm["fid_vs_test"])}
    assert (out / "sampler_sweep.md").is_file() and (out / "sampler_sweep.png").stat().st_size > 0
