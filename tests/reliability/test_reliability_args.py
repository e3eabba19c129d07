"""#36, arguments: null captions (item 14), absurd sizes (15), messages that name the argument and the
cause (18). Each test failed on 7e03a4a."""

from __future__ import annotations

import datasets
import pytest
import yaml
from _training_helpers import ROOT, flags, ldm_args, run_script

from hfldm.training.args import TrainingArguments, check_training_arguments, parse_args
from hfldm.training.data import captions
from hfldm.training.models import check_resolution, unet_from_yaml

TINY = ROOT / "training/configs/unet_tiny.yaml"


def test_item14_null_captions_are_skipped_and_all_null_is_one_line():
    """--text_encoder scratch trains its tokenizer on the captions: null ones are skipped as the loader makes
    them unconditional (before: TypeError 'NoneType' object is not iterable), lists are flattened."""
    rows = datasets.Dataset.from_dict({"text": [None, "a cat", "", "a dog"]})
    assert captions(rows, "text") == ["a cat", "a dog"]
    lists = datasets.Dataset.from_dict({"text": [["a cat", "kitty"], [], ["a dog"]]})
    assert captions(lists, "text") == ["a cat", "kitty", "a dog"]
    with pytest.raises(ValueError, match=r"^--caption_column: every caption in 'text' is empty or null"):
        captions(datasets.Dataset.from_dict({"text": [None, None]}), "text")
    with pytest.raises(ValueError, match=r"^--caption_column: the data has no column 'caption'"):
        captions(rows, "caption")


def absurd(tmp_path, **values):
    config = yaml.safe_load(TINY.read_text()) | values
    path = tmp_path / "unet.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_item15_absurd_unet_configs_are_refused_before_allocating(tmp_path):
    """block_out_channels [1e9, 1e9] or layers_per_block 1e5: one line naming --unet_config and the size
    (before: a torch error deep inside, or allocation until the process was killed)."""
    from _training_helpers import tiny_autoencoder

    vae = tiny_autoencoder()
    cases = {
        "block_out_channels": (
            [10**9, 10**9],
            r"give about 1\.1e\+20 parameters \(402,331,352,234 GiB in fp32\)",
        ),
        "layers_per_block": (10**5, r"give about .* parameters .* over the limit of 2e\+09"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(ValueError, match=rf"^--unet_config: block_out_channels .* {message}"):
            unet_from_yaml(absurd(tmp_path, **{key: value}), vae, 8, None, None)
    with pytest.raises(ValueError, match=r"^--unet_config: layers_per_block in .* must be positive integers"):
        unet_from_yaml(absurd(tmp_path, layers_per_block=1.5), vae, 8, None, None)
    with pytest.raises(ValueError, match=r"^--resolution: 100000 px is over the limit of 4096 px a side"):
        check_resolution(vae, 100_000)


def test_item18_seed_and_binary_config_name_the_argument(tmp_path):
    """seed: -1 (before: NumPy's 'Seed must be between 0 and 2**32 - 1'), a binary --config (before:
    ''utf-8' codec can't decode byte ...')."""
    config = tmp_path / "seed.yaml"
    config.write_text("seed: -1\n")
    (train,) = parse_args(TrainingArguments, argv=["--config", str(config)])
    with pytest.raises(ValueError, match=r"^--seed: must be in \[0, 2\*\*32\), got -1$"):
        check_training_arguments(train)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00")
    with pytest.raises(ValueError, match=rf"^--config: {binary} is not a UTF-8 text file \(byte 8\)"):
        parse_args(TrainingArguments, argv=["--config", str(binary)])


def test_item18_a_missing_component_folder_is_named(tmp_path, capsys):
    """A pipeline folder without unet/: '--model: X lacks unet/, which its model_index.json lists' (before:
    'no file named config.json found in directory X')."""
    import shutil

    from _ldm_fixtures import class_pipeline

    from hfldm.cli import main

    class_pipeline().save_pretrained(tmp_path / "model")
    shutil.rmtree(tmp_path / "model" / "unet")
    assert main(["generate", "--model", str(tmp_path / "model"), "--out", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"hfldm generate: error: --model: {tmp_path / 'model'} lacks unet/, which its model_index.json lists "
        "(an incomplete copy?)"
    )


def test_item18_a_full_disk_during_a_checkpoint_names_it_and_keeps_the_earlier(digits, autoencoder, tmp_path):
    """The disk fills while checkpoint-2 is written (here: its folder cannot be created): the error names
    --output_dir, the checkpoint and the cause; checkpoint-1 stays complete (before: 'unexpected pos ...')."""
    out = tmp_path / "run"
    extra = flags(max_samples=32, train_batch_size=8, scaling_factor=0.5, max_train_steps=2)
    extra += flags(checkpointing_steps=1)
    out.mkdir()
    (out / ".checkpoint-2.partial").write_text("a file where the folder goes")  # root ignores modes
    failed = run_script("train_ldm.py", *ldm_args(digits, autoencoder, out, *extra), rc=1)
    assert f"OSError: --output_dir: checkpoint-2 could not be written to {out} (" in failed.stderr
    assert "a full disk?); the earlier checkpoints are kept" in failed.stderr
    from hfldm.training.checkpoints import checkpoint_problem

    assert checkpoint_problem(out / "checkpoint-1") is None
