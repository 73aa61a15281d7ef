"""The generated demo sets (2D images, 3D volumes): deterministic, exact labels, work for every step."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi
from skimage.measure import label

from omnitrain.demo import DEMO3D_SPECS, DEMO_SPECS, NEW_SPECS, main, make_image, write_demo, write_demo3d
from omnitrain.tiling import tile_edges


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


@pytest.fixture(scope="module")
def demo3d(tmp_path_factory):
    """The whole 3D demo set, written once for the tests that only read it."""
    folder = tmp_path_factory.mktemp("demo3d")
    write_demo3d(folder)
    return folder


def test_demo3d_is_byte_identical_for_a_seed(tmp_path, demo3d):
    names = ["cluster_dense_03", "sparse3d_01"]
    write_demo3d(tmp_path / "a", seed=0, names=names)
    write_demo3d(tmp_path / "c", seed=1, names=names)
    same = {n: d for n, d in digest(demo3d).items() if n.startswith(tuple(names))}
    assert digest(tmp_path / "a") == same
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_rewriting_the_same_demo3d_leaves_files_untouched(tmp_path):
    write_demo3d(tmp_path, names=["sparse3d_01"])
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    write_demo3d(tmp_path, names=["sparse3d_01"])
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}


def touching_pairs(lab: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of different labels that share a face somewhere."""
    pairs = set()
    for axis in range(lab.ndim):
        a = np.moveaxis(lab, axis, 0)
        lo, hi = a[:-1], a[1:]
        contact = (lo != hi) & (lo > 0) & (hi > 0)
        pairs |= {(min(p), max(p)) for p in zip(lo[contact].tolist(), hi[contact].tolist(), strict=True)}
    return pairs


def test_demo3d_labels_are_exact_and_the_set_has_work_for_every_step(demo3d):
    tiled = 0
    for name, (depth, h, w, *_) in DEMO3D_SPECS.items():
        img = tifffile.imread(demo3d / f"{name}.tif")
        lab = tifffile.imread(demo3d / f"{name}_masks.tif")
        assert img.shape == lab.shape == (depth, h, w) and lab.ndim == 3
        assert img.dtype == np.uint16 and lab.dtype == np.uint16
        ids = np.unique(lab[lab > 0])
        assert ids.tolist() == list(range(1, len(ids) + 1)), "labels are 1..N"
        assert 10 <= len(ids) <= 60
        # Each cell is one face-connected piece (6-connectivity), and no cell was lost to its neighbours.
        pieces = [ndi.label(lab[box] == i)[1] for i, box in enumerate(ndi.find_objects(lab), start=1)]
        assert pieces == [1] * len(ids)
        # Cells are brighter than the background in fluorescence.
        assert img[lab > 0].mean() > 2 * img[lab == 0].mean()
        tiled += any(len(tile_edges(side, 64)) > 2 for side in (h, w))
    assert tiled >= 1, "tiling at tile_size 64 needs a volume longer than 80 px in y or x"


def test_demo3d_has_touching_cells_and_dimmer_boundaries_between_them(demo3d):
    img = tifffile.imread(demo3d / "cluster_dense_01.tif").astype(float)
    lab = tifffile.imread(demo3d / "cluster_dense_01_masks.tif")
    assert len(touching_pairs(lab)) >= 20, "clusters of touching cells"
    # The faces between touching cells are darker than the cells' insides, so the cells can be told apart.
    inside = ndi.binary_erosion(lab > 0, iterations=2)
    face = np.zeros(lab.shape, bool)
    for axis in range(3):
        a = np.moveaxis(lab, axis, 0)
        contact = (a[:-1] != a[1:]) & (a[:-1] > 0) & (a[1:] > 0)
        f = np.moveaxis(face, axis, 0)
        f[:-1] |= contact
        f[1:] |= contact
    assert img[face].mean() < 0.9 * img[inside & ~face].mean()
    assert not touching_pairs(tifffile.imread(demo3d / "sparse3d_01_masks.tif")), "scattered cells stay apart"


def test_the_cli_writes_the_3d_set_with_dim_3(tmp_path, capsys, demo3d):
    main([str(tmp_path), "--dim", "3"])
    stats = json.loads(capsys.readouterr().out)
    assert set(stats) == set(DEMO3D_SPECS)
    assert all(len(s["shape"]) == 3 for s in stats.values())
    assert digest(tmp_path) == digest(demo3d)


def test_new_images_to_segment_come_without_labels_and_differ_from_the_training_set(tmp_path, capsys):
    main([str(tmp_path / "new"), "--unlabelled"])
    files = sorted(p.name for p in (tmp_path / "new").iterdir())
    assert files == sorted(f"{n}.tif" for n in NEW_SPECS)
    assert set(json.loads(capsys.readouterr().out)) == set(NEW_SPECS)
    for name in NEW_SPECS:
        image, labels = make_image(name)
        assert np.array_equal(tifffile.imread(tmp_path / "new" / f"{name}.tif"), image)
        assert labels.max() >= 9 and name not in DEMO_SPECS
