"""Relabelling and links: every integer dtype Omnipose could be handed."""

from __future__ import annotations

import numpy as np
import pytest

from omnitrain.labels import label_dtype, relabel


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64]
)
def test_relabel_gives_1_to_n_in_order_for_every_integer_dtype(dtype):
    lab = np.zeros((8, 8), dtype)
    lab[0, :2], lab[3, 3], lab[7, 7] = 5, np.iinfo(dtype).max, 2
    new, mapping = relabel(lab)
    assert new.dtype == label_dtype(3)
    assert mapping == {2: 1, 5: 2, int(np.iinfo(dtype).max): 3}
    assert new[0, 0] == 2 and new[3, 3] == 3 and new[7, 7] == 1 and new[1, 1] == 0


def test_unsigned_64_bit_labels_above_2_63_stay_distinct_and_positive():
    lab = np.zeros((16, 16), np.uint64)
    lab[:4, :4] = 2**63 + 5
    lab[8:, 8:] = 2**64 - 1
    lab[:4, 8:] = 3
    new, mapping = relabel(lab)
    assert sorted(mapping) == [3, 2**63 + 5, 2**64 - 1] and sorted(mapping.values()) == [1, 2, 3]
    assert set(np.unique(new)) == {0, 1, 2, 3} and new.min() == 0


def test_labels_without_background_and_whole_floats():
    new, mapping = relabel(np.array([[4, 4], [9, 9]], np.uint32))
    assert mapping == {4: 1, 9: 2} and new.tolist() == [[1, 1], [2, 2]]
    new, mapping = relabel(np.array([[0.0, 3.0], [3.0, 7.0]], np.float32))
    assert mapping == {3: 1, 7: 2} and new.tolist() == [[0, 1], [1, 2]]
