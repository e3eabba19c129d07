"""The sharded latent cache (issue 34): K Parquet shards + an index, one writer per process, resumable,
streamed by training."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from hfldm import KLAutoencoder
from hfldm.data.arguments import DataArguments
from hfldm.data.latent_cache import cache_latents
from hfldm.data.sharded_cache import cache_latents_sharded, load_sharded_cache, shard_name
from tests._training_helpers import ENV, RESOLUTION, ROOT, flags, ldm_args, run_script
from tests.training.test_train_ldm import free_port


def data(digits) -> DataArguments:
    return DataArguments(train_data_dir=str(digits), resolution=RESOLUTION, label_column="label")


def test_sharded_cache_holds_the_rows_of_the_one_file_cache_and_resumes_without_rewriting(
    digits, autoencoder, tmp_path
):
    """4 shards of the 96 digits: the same posteriors and labels, in order, as the one-dataset cache; the
    index counts the shards' rows; a deleted shard (and a killed writer's .partial) is all a rerun writes."""
    vae = KLAutoencoder.from_pretrained(autoencoder).eval()
    info = cache_latents_sharded(data(digits), vae, tmp_path / "sharded", num_shards=4, batch_size=8)
    assert info["num_rows"] == 96 and [s["num_rows"] for s in info["shards"]] == [24] * 4
    one = cache_latents(data(digits), vae, tmp_path / "one", batch_size=32)
    sharded = load_sharded_cache(tmp_path / "sharded", streaming=False)
    assert torch.allclose(sharded[:]["latent_mean"], one[:]["latent_mean"], atol=1e-6)
    assert torch.equal(sharded[:]["labels"], one[:]["labels"])

    files = [tmp_path / "sharded" / shard_name(k, 4) for k in range(4)]
    stamps = {f: f.stat().st_mtime_ns for f in files}
    files[2].unlink()
    (files[2].parent / f".{files[2].name}.partial-99").write_bytes(b"half a shard")
    cache_latents_sharded(data(digits), vae, tmp_path / "sharded", num_shards=4, batch_size=8)
    assert [f.stat().st_mtime_ns == stamps[f] for f in files] == [True, True, False, True]
    streamed = list(load_sharded_cache(tmp_path / "sharded", streaming=True))
    assert len(streamed) == 96 and torch.allclose(
        streamed[50]["latent_mean"], one[50]["latent_mean"], atol=1e-6
    )


def test_sharded_cache_bad_input_is_one_line(digits, autoencoder, tmp_path):
    vae = KLAutoencoder.from_pretrained(autoencoder).eval()
    small = DataArguments(train_data_dir=str(digits), resolution=RESOLUTION, max_samples=5)
    with pytest.raises(
        ValueError, match=r"^--num_shards: 8 shards of 5 rows would leave some empty; use at most 5$"
    ):
        cache_latents_sharded(small, vae, tmp_path / "c", num_shards=8)
    cache_latents_sharded(small, vae, tmp_path / "c", num_shards=5)
    with pytest.raises(
        ValueError, match=r"^--out: .* holds a cache begun with other arguments \(num_shards\)"
    ):
        cache_latents_sharded(small, vae, tmp_path / "c", num_shards=4)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    with pytest.raises(ValueError, match=r"^--out: .* exists, is not empty and holds no cache_plan.json"):
        cache_latents_sharded(small, vae, tmp_path / "full", num_shards=2)
    with pytest.raises(ValueError, match=r"^--streaming: .* is one saved dataset"):
        from hfldm.training.data import load_cache

        cache_latents(small, vae, tmp_path / "one")
        load_cache(str(tmp_path / "one"), streaming=True)


def cache_command(digits, autoencoder, out, processes: int) -> list[str]:
    command = [
        "-m",
        "hfldm.cli",
        "cache-latents",
        "--vae",
        str(autoencoder),
        "--dataset",
        str(digits),
        "--out",
        str(out),
        "--num_shards",
        "4",
        "--resolution",
        str(RESOLUTION),
        "--label_column",
        "label",
        "--batch_size",
        "8",
    ]
    if processes == 1:
        return [sys.executable, *command]
    launch = [
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
    ]
    return [sys.executable, "-m", "accelerate.commands.launch", *launch, *command]


@pytest.mark.slow
def test_two_processes_write_the_shards_one_process_writes_and_training_streams_them(
    digits, autoencoder, tmp_path
):
    """`accelerate launch` of `hfldm cache-latents --num_shards 4` on 2 processes: byte-identical shards and
    the same index as 1 process; train_ldm.py then trains from it with --cached_latents DIR --streaming."""
    for processes in (1, 2):
        out = tmp_path / f"cache{processes}"
        result = subprocess.run(
            cache_command(digits, autoencoder, out, processes),
            cwd=ROOT,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.count("cached 96 rows in 4 shards") == 1, result.stdout  # process 0 reports
    for k in range(4):
        name = shard_name(k, 4)
        assert (tmp_path / "cache1" / name).read_bytes() == (tmp_path / "cache2" / name).read_bytes(), name
    index = [json.loads((tmp_path / f"cache{p}" / "cache_info.json").read_text())["shards"] for p in (1, 2)]
    assert index[0] == index[1]
    out = tmp_path / "run"
    extra = flags(cached_latents=tmp_path / "cache2", label_column="label", max_train_steps=3)
    run_script("train_ldm.py", *ldm_args(digits, autoencoder, out, "--streaming", *extra))
    assert (out / "model_index.json").is_file() and os.path.isdir(out / "checkpoint-3") is False
