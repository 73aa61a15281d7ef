"""The generated demo set: deterministic, exact labels, large and sparse images."""

from __future__ import annotations

import hashlib

import numpy as np
import tifffile
from skimage.measure import label

from omnitrain.demo import DEMO_SPECS, write_demo


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_demo_is_byte_identical_for_a_seed(tmp_path):
    write_demo(tmp_path / "a", seed=0, names=["colony_dense_01", "sparse_01"])
    write_demo(tmp_path / "b", seed=0, names=["colony_dense_01", "sparse_01"])
    write_demo(tmp_path / "c", seed=1, names=["colony_dense_01", "sparse_01"])
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_rewriting_the_same_demo_leaves_files_untouched(tmp_path):
    write_demo(tmp_path, names=["sparse_02"])
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    write_demo(tmp_path, names=["sparse_02"])
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}


def test_demo_labels_are_exact_and_the_set_has_work_for_every_step(tmp_path):
    write_demo(tmp_path)
    sizes, fractions = [], []
    for name in DEMO_SPECS:
        img = tifffile.imread(tmp_path / f"{name}.tif")
        lab = tifffile.imread(tmp_path / f"{name}_masks.tif")
        assert img.shape == lab.shape and img.dtype == np.uint16 and lab.dtype == np.uint16
        ids = np.unique(lab[lab > 0])
        assert ids.tolist() == list(range(1, len(ids) + 1)), "labels are 1..N"
        # Each cell is one face-connected piece: the label matrix is an exact instance labelling.
        assert label(lab, background=0, connectivity=1).max() == len(ids)
        # Cells are darker than the background in phase contrast.
        assert img[lab > 0].mean() < img[lab == 0].mean()
        sizes.append(max(lab.shape))
        fractions.append((lab > 0).mean())
    assert sum(s > 512 for s in sizes) >= 2, "tiling needs images larger than 512 px"
    assert min(fractions) < 0.02, "packing needs sparse images"
    assert max(fractions) > 0.1, "dense micro-colonies"
