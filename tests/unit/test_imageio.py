"""Reading images and labels: no page of a TIFF is ever dropped (tifffile.imread reads only the first of
several images saved one by one)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from omnitrain.imageio import ReadError, read_array, read_header


def test_pages_saved_one_by_one_are_read_as_one_stack(tmp_path):
    path = tmp_path / "pages.tif"
    planes = [np.full((8, 6), i, np.uint16) for i in range(3)]
    for i, plane in enumerate(planes):
        tifffile.imwrite(path, plane, append=i > 0)
    assert len(tifffile.TiffFile(path).series) == 3 and tifffile.imread(path).shape == (8, 6)
    header = read_header(path)
    assert header.shape == (3, 8, 6) and header.images == 3
    np.testing.assert_array_equal(read_array(path), np.stack(planes))


def test_one_stack_is_one_image(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((2, 8, 6), np.uint8))
    assert read_header(path).images == 1 and read_array(path).shape == (2, 8, 6)


def test_images_of_different_shapes_in_one_tiff_are_refused(tmp_path):
    path = tmp_path / "mixed.tif"
    tifffile.imwrite(path, np.zeros((8, 6), np.uint16))
    tifffile.imwrite(path, np.zeros((4, 4), np.uint16), append=True)
    with pytest.raises(ReadError, match="holds 2 separate images of different shapes"):
        read_array(path)


def test_a_thumbnail_page_is_no_second_image(tmp_path):
    path = tmp_path / "with_thumbnail.tif"
    image = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)
    with tifffile.TiffWriter(path) as tif:
        tif.write(image)
        tif.write(np.zeros((8, 6), np.uint16), subfiletype=1)  # a reduced-resolution preview
    assert read_header(path).images == 1
    np.testing.assert_array_equal(read_array(path), image)
