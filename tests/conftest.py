"""Fixtures shared by the tests: tiny digits datasets and an autoencoder folder."""

from __future__ import annotations

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
