"""The image grids: tile pads the last row; comparison_grid puts image i of method j at row i, column j."""

import numpy as np
import torch
from PIL import Image

from hfldm.data.grid import tile
from hfldm.training.validation import comparison_grid, reconstruction_grid, to_pil


def test_tile_pads_the_last_row_with_the_fill_colour():
    images = [Image.new("RGB", (4, 3), (i * 40, 0, 0)) for i in range(5)]
    grid = np.asarray(tile(images, cols=3, fill="black"))
    assert grid.shape == (2 * 3, 3 * 4, 3)
    assert (grid[3:, 4:8, 0] == 160).all()  # the fifth image, row 1 column 1
    assert (grid[3:, 8:] == 0).all()  # the padding cell


def test_comparison_grid_rows_are_images_and_columns_methods():
    g = torch.Generator().manual_seed(0)
    columns = [torch.rand(3, 3, 2, 5, generator=g) * 2 - 1 for _ in range(4)]
    grid = np.asarray(comparison_grid(columns, scale=2))
    assert grid.shape == (3 * 2 * 2, 4 * 5 * 2, 3)
    for row in range(3):
        for column in range(4):
            cell = np.asarray(to_pil(columns[column][row : row + 1])[0])
            enlarged = cell.repeat(2, axis=0).repeat(2, axis=1)
            top, left = row * 4, column * 10
            np.testing.assert_array_equal(grid[top : top + 4, left : left + 10], enlarged)


def test_reconstruction_grid_puts_pairs_side_by_side():
    x, x_hat = torch.full((5, 3, 2, 2), -1.0), torch.ones(5, 3, 2, 2)
    grid = np.asarray(reconstruction_grid(x, x_hat, pairs_per_row=2))
    assert grid.shape == (3 * 2, 2 * 2 * 2, 3)
    assert (grid[:, 0:2] == 0).all() and (grid[:4, 2:4] == 255).all()  # input black, reconstruction white
    assert (grid[4:, 4:] == 255).all()  # the missing sixth pair is white padding
