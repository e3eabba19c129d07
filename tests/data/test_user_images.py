"""hfldm.data.user_images: the pixel limit is checked before decoding; modes convert as the loader does."""

import io

import numpy as np
import pytest
from PIL import Image

from hfldm.data.user_images import open_user_image


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_bomb_refused_from_header_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (5000, 5000)).save(path)  # a few KB on disk, 25 megapixels
    assert path.stat().st_size < 100_000
    with pytest.raises(ValueError, match=r"--image: the image is 5000x5000 = 25,000,000 pixels"):
        open_user_image(path, "--image", max_pixels=4096 * 4096)


def test_transparent_on_white_and_16_bit_rescaled():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.asarray(open_user_image(_png(rgba), "--image")).min() == 255  # transparent -> white
    deep = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    assert np.asarray(open_user_image(_png(deep), "--image")).min() == 255  # 16-bit white stays white
    assert open_user_image(_png(rgba), "--mask", mode="L").mode == "L"


def test_not_an_image_names_the_argument(tmp_path):
    (tmp_path / "x.png").write_text("not a png")
    with pytest.raises(ValueError, match=r"^--mask: .*x.png is not an image"):
        open_user_image(tmp_path / "x.png", "--mask")
    with pytest.raises(ValueError, match=r"^--image: no file"):
        open_user_image(tmp_path / "missing.png", "--image")
    with pytest.raises(ValueError, match=r"^--image: .* is a folder"):
        open_user_image(tmp_path, "--image")
