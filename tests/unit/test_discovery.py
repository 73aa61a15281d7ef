"""Pairing is Omnipose's: the project's discovery against cellpose_omni.io on crafted folders."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import BACT, DSB, cells, needs, save, write_pair

from omnitrain.discovery import discover


@pytest.fixture(scope="module")
def omni_io():
    return pytest.importorskip("cellpose_omni.io")


def omnipose_pairs(omni_io, folder, img_filter="", mask_filter="_masks", look_one_level_down=False):
    """(image, label, links) triples as Omnipose 1.1.4 finds them for training."""
    images = omni_io.get_image_files(str(folder), mask_filter, img_filter, look_one_level_down)
    labels, links = omni_io.get_label_files(
        images, label_filter=mask_filter, img_filter=img_filter, links=True
    )
    assert len(labels) == len(images), "a scenario must give every image a label (else Omnipose misaligns)"
    return sorted(
        (os.path.abspath(i), os.path.abspath(lab), os.path.abspath(lk) if lk else None)
        for i, lab, lk in zip(images, labels, links, strict=True)
    )


def our_pairs(folder, **kw):
    found = discover(folder, **kw)
    return sorted(
        (os.path.abspath(p.image), os.path.abspath(p.label), os.path.abspath(p.links) if p.links else None)
        for p in found.pairs
    )


def scenario_extensions(f):
    write_pair(f, "a")
    write_pair(f, "b", img_ext=".png", label_ext=".png", lab=cells().astype(np.uint8))
    write_pair(f, "c", label_ext=".tiff")
    write_pair(f, "d", label_ext=".npy")
    write_pair(f, "e", img_ext=".jpg", label_ext=".npz", img=cells().astype(np.uint8) * 20)
    write_pair(f, "f")
    save(f / "f_masks.png", cells().astype(np.uint8))  # .tif is preferred
    write_pair(f, "g", img_ext=".tiff")
    write_pair(f, "h", img_ext=".jpeg", img=cells().astype(np.uint8) * 20, label_ext=".png")
    save(f / "a_flows.tif", np.zeros((3, 8, 8), np.float32))
    save(f / "b_cp_masks.tif", cells())
    save(f / "c_cp_output.png", cells().astype(np.uint8))
    write_pair(f, ".hidden")
    (f / "a_links.txt").write_text("1,2\n")
    return {}


def scenario_img_filter(f):
    write_pair(f, "a_img", mask_filter="_masks", label_ext=None)
    save(f / "a_masks.tif", cells())
    write_pair(f, "b_img", img_ext=".png", label_ext=None, img=cells().astype(np.uint8))
    save(f / "b_masks.png", cells().astype(np.uint8))
    save(f / "other.tif", cells())  # no _img: not an image for Omnipose
    (f / "b_links.txt").write_text("1,3\n")
    return {"img_filter": "_img"}


def scenario_subfolders(f):
    write_pair(f / "day1", "a")
    write_pair(f / "day2", "b")
    write_pair(f / "day2", "c", label_ext=".png", lab=cells().astype(np.uint8))
    write_pair(f / ".snapshots", "d")
    write_pair(f, "root")
    write_pair(f / "day1" / "deeper", "e")  # two levels down: not searched
    return {"look_one_level_down": True}


def scenario_subfolders_off(f):
    scenario_subfolders(f)
    return {"look_one_level_down": False}


def scenario_cp_masks(f):
    for base in ("s1", "s2"):
        write_pair(f, base, mask_filter="_cp_masks")
    return {"mask_filter": "_cp_masks"}


def scenario_custom_filters(f):
    for base in ("x", "y"):
        write_pair(f, base + "_phase", mask_filter="_phase_labels", label_ext=None)
        save(f / f"{base}_labels.tif", cells())
    return {"img_filter": "_phase", "mask_filter": "_labels"}


SCENARIOS = [v for k, v in sorted(globals().items()) if k.startswith("scenario_")]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__[9:])
def test_same_pairs_as_omnipose(tmp_path, omni_io, scenario):
    folder = tmp_path / "train"
    folder.mkdir()
    kw = scenario(folder)
    expected = omnipose_pairs(omni_io, folder, **kw)
    assert expected, "scenario finds nothing"
    assert our_pairs(folder, **kw) == expected


@needs(DSB)
def test_same_pairs_as_omnipose_on_dsb(omni_io):
    assert our_pairs(DSB) == omnipose_pairs(omni_io, DSB)


@needs(BACT)
def test_same_pairs_as_omnipose_on_bacteria(omni_io):
    kw = {"mask_filter": "_cp_masks"}
    assert our_pairs(BACT, **kw) == omnipose_pairs(omni_io, BACT, **kw)


# Deliberate differences, each documented in omnitrain/discovery.py.


def test_image_without_label_is_reported_not_dropped(tmp_path, omni_io):
    write_pair(tmp_path, "a")
    save(tmp_path / "b.tif", cells())
    images = omni_io.get_image_files(str(tmp_path), "_masks", "", False)
    labels = omni_io.get_label_files(images, label_filter="_masks")
    assert len(images) == 2 and len(labels) == 1  # Omnipose: misaligned lists, a warning at most
    found = discover(tmp_path)
    assert [p.base for p in found.pairs] == ["a"]
    assert [p.name for p in found.unlabeled] == ["b.tif"]
    assert "image-without-label" in {p.code for p in found.problems()}


def test_image_filter_removed_only_at_the_end(tmp_path, omni_io):
    save(tmp_path / "a_img_b_img.tif", cells())
    save(tmp_path / "a_img_b_masks.tif", cells())
    found = discover(tmp_path, img_filter="_img")
    assert [p.label.name for p in found.pairs] == ["a_img_b_masks.tif"]
    # Omnipose's getname removes every "_img" and looks for a_b_masks.*: it finds no label.
    images = omni_io.get_image_files(str(tmp_path), "_masks", "_img", False)
    assert omni_io.get_label_files(images, label_filter="_masks", img_filter="_img") == []


def test_everything_ignored_by_omnipose_is_reported(tmp_path):
    write_pair(tmp_path, "a")
    write_pair(tmp_path, "b")
    save(tmp_path / "b.tiff", cells())  # same base as b.tif
    save(tmp_path / "c_masks.tif", cells())  # label without image
    save(tmp_path / "D.TIF", cells())  # upper case
    (tmp_path / "e_links.txt").write_text("1,2\n")
    save(tmp_path / "a_masks.png", cells().astype(np.uint8))  # second label for a
    found = discover(tmp_path)
    codes = {p.code: p for p in found.problems()}
    assert codes["duplicate-base"].severity == "error"
    assert codes["label-without-image"].file.endswith("c_masks.tif")
    assert codes["upper-case-extension"].file.endswith("D.TIF")
    assert codes["links-without-image"].file.endswith("e_links.txt")
    assert "a_masks.tif" in codes["several-labels"].what
    files = {p.name for p in found.files()}
    assert {"a.tif", "a_masks.tif", "a_masks.png", "c_masks.tif", "e_links.txt", "b.tiff"} <= files


def test_misnamed_label_gets_a_rename_hint(tmp_path):
    write_pair(tmp_path, "a")
    save(tmp_path / "b.tif", cells())
    save(tmp_path / "b_mask.tif", cells())
    (problem,) = [p for p in discover(tmp_path).problems() if p.code == "image-without-label"]
    assert "b_mask.tif" in problem.fix and "b_masks.tif" in problem.fix


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("b_masks.jpg", ["b_masks.jpg is a JPEG", "again as b_masks.tif"]),
        ("b_masks.TIF", ["rename b_masks.TIF to b_masks.tif", "lower case"]),
        ("b_mask.tif", ["is b_mask.tif meant to be b_masks.tif? rename it"]),
        ("b_masks.bmp", ["save it as b_masks.tif"]),
    ],
)
def test_each_misnamed_label_gets_a_correct_and_different_name(tmp_path, name, words):
    write_pair(tmp_path, "a")
    write_pair(tmp_path, "x")
    save(tmp_path / "b.tif", cells())
    (tmp_path / name).write_bytes((tmp_path / "a_masks.tif").read_bytes())
    (problem,) = [p for p in discover(tmp_path).problems() if p.code == "image-without-label"]
    for word in words:
        assert word in problem.fix, problem.fix
    assert f"{name} to {name}" not in problem.fix and f"be {name}?" not in problem.fix


def test_a_dangling_symlink_is_reported_as_such(tmp_path):
    write_pair(tmp_path, "a")
    write_pair(tmp_path, "b", label_ext=None)
    (tmp_path / "b_masks.tif").symlink_to(tmp_path / "elsewhere" / "b_masks.tif")
    problems = discover(tmp_path).problems()
    (problem,) = [p for p in problems if p.code == "dangling-link"]
    assert problem.file.endswith("b_masks.tif") and "does not exist" in problem.what
    assert "elsewhere" in problem.fix
    assert not [p for p in problems if p.code == "image-without-label"], "one problem, not two"
