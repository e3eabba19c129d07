"""Fixtures shared by the tests: tiny digits datasets and an autoencoder folder."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from _training_helpers import RESOLUTION, tiny_autoencoder

from hfldm.data.digits import load_digits_dataset
from hfldm.data.export import save_both


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """96 training and 24 test digits at 16 px, saved like `hfldm data digits` does."""
    rows = load_digits_dataset(RESOLUTION, limit=120)
    folder = tmp_path_factory.mktemp("digits")
    datasets.DatasetDict(train=rows.select(range(96)), test=rows.select(range(96, 120))).save_to_disk(folder)
    return folder


@pytest.fixture(scope="module")
def autoencoder(tmp_path_factory) -> Path:
    """An (untrained) f = 2 KL autoencoder folder: the LDM scripts only need its interface."""
    folder = tmp_path_factory.mktemp("autoencoder")
    tiny_autoencoder().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    """64 digits at 12 px in both layouts: `12` (save_to_disk) and `12-imagefolder`."""
    rows = load_digits_dataset(resolution=12, limit=64)
    out = tmp_path_factory.mktemp("digits")
    save_both(datasets.DatasetDict(train=rows), out, "12")
    return out


BLOCKS = dict(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def save_clip_text_encoder(folder) -> None:
    """A 2-layer CLIPTextModel (width 32) and a CLIPTokenizer whose BPE vocabulary is single characters."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder.mkdir(parents=True)
    specials = ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate([*specials, *LETTERS, *(c + "</w>" for c in LETTERS)])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=12)
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=12,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    tokenizer.save_pretrained(folder)
    CLIPTextModel(config).save_pretrained(folder)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Tiny random diffusers / transformers parts in folders: sd-like-vae (AutoencoderKL), vqmodel, clip."""
    import torch
    from diffusers import AutoencoderKL, VQModel

    root = tmp_path_factory.mktemp("parts")
    torch.manual_seed(0)
    AutoencoderKL(block_out_channels=(8, 16), latent_channels=2, norm_num_groups=4, **BLOCKS).save_pretrained(
        root / "sd-like-vae"
    )
    VQModel(
        block_out_channels=(8, 16), latent_channels=2, num_vq_embeddings=16, norm_num_groups=4, **BLOCKS
    ).save_pretrained(root / "vqmodel")
    save_clip_text_encoder(root / "clip")
    return root
