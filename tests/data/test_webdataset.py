"""WebDataset input (issue 34): `--train_shards 'data-{000000..000003}.tar'` of image + caption samples,
node-sharded (one shard per tar) and resumable like any stream."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch

from hfldm.data.arguments import DataArguments
from hfldm.data.loader import collate_fn, load_image_dataset
from hfldm.data.webdataset_shards import expand_braces, shard_files
from hfldm.training.stream import StreamLoader
from tests._training_helpers import RESOLUTION, flags, ldm_args, run_script


@pytest.fixture(scope="module")
def tars(tmp_path_factory) -> Path:
    """4 tars of 24 digits each (`000042.png` + `000042.txt` per sample)."""
    from hfldm.data.digits import load_digits_dataset

    rows, folder = load_digits_dataset(RESOLUTION, limit=96), tmp_path_factory.mktemp("shards")
    for s in range(4):
        with tarfile.open(folder / f"data-{s:06d}.tar", "w") as tar:
            for i in range(s * 24, s * 24 + 24):
                image = io.BytesIO()
                rows[i]["image"].save(image, format="PNG")
                for ext, payload in (("png", image.getvalue()), ("txt", rows[i]["text"].encode())):
                    member = tarfile.TarInfo(f"{i:06d}.{ext}")
                    member.size = len(payload)
                    tar.addfile(member, io.BytesIO(payload))
    return folder


def pattern(tars: Path) -> str:
    return str(tars / "data-{000000..000003}.tar")


def test_brace_patterns_expand_like_the_shell():
    assert expand_braces("d-{000008..000010}.tar") == ["d-000008.tar", "d-000009.tar", "d-000010.tar"]
    assert expand_braces("{a,b}{1..2}") == ["a1", "a2", "b1", "b2"]
    assert expand_braces("plain.tar") == ["plain.tar"]


def test_shards_read_as_image_caption_rows_and_a_pattern_matching_nothing_is_one_line(tars):
    assert len(shard_files(pattern(tars))) == 4
    data = DataArguments(train_shards=pattern(tars), resolution=RESOLUTION, streaming=True)
    stream, _ = load_image_dataset(data)
    rows = list(stream)
    assert len(rows) == 96 and rows[5]["text"] == "digit 5" and rows[5]["pixel_values"].shape == (3, 16, 16)
    assert stream.n_shards == 4  # one per tar: processes read their own tars
    with pytest.raises(
        ValueError, match=r"^train_shards: '.*data-\{000010\.\.000019\}\.tar' matches no file$"
    ):
        shard_files(str(tars / "data-{000010..000019}.tar"))


def make_loader(tars: Path, rank: int, world_size: int) -> StreamLoader:
    data = DataArguments(train_shards=pattern(tars), resolution=RESOLUTION, streaming=True)
    stream = load_image_dataset(data)[0]
    return StreamLoader(stream, 4, collate_fn, seed=0, buffer_size=8, rank=rank, world_size=world_size)


@pytest.mark.parametrize("world_size", [1, 2])
def test_a_webdataset_stream_is_split_by_node_and_resumes_exactly(tars, tmp_path, world_size):
    """Each of 2 ranks reads 2 of the 4 tars (disjoint, together all 96 samples); a loader restored from a
    saved state after 5 batches draws the same next 10 batches as the uninterrupted one."""
    seen = []
    for rank in range(world_size):
        straight, first = make_loader(tars, rank, world_size).endless(), make_loader(tars, rank, world_size)
        reference = [next(straight) for _ in range(15)]
        head = first.endless()
        for _ in range(5):
            next(head)
        first.save(tmp_path / f"r{rank}")
        resumed = make_loader(tars, rank, world_size)
        resumed.load(tmp_path / f"r{rank}")
        tail = resumed.endless()
        for expected in reference[5:]:
            assert torch.equal(next(tail)["pixel_values"], expected["pixel_values"])
        seen += [text for batch in make_loader(tars, rank, world_size) for text in batch["text"]]
    assert len(seen) == 96  # per epoch, the ranks' samples are disjoint and complete


@pytest.mark.slow
def test_train_ldm_trains_from_webdataset_shards(tars, autoencoder, tmp_path):
    """train_ldm.py --train_shards PATTERN --streaming (unconditional; text models stream too, see
    tests/training/test_train_from_pipeline.py): a pipeline is saved."""
    out = tmp_path / "run"
    args = ldm_args(tars, autoencoder, out, *flags(max_train_steps=2), "--streaming")
    at = args.index("--train_data_dir")
    args[at : at + 2] = ["--train_shards", pattern(tars)]
    run_script("train_ldm.py", *args)
    assert (out / "model_index.json").is_file()
