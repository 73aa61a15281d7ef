"""The pre-flight validator: a corpus of bad inputs, each refused with its file and a fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from corpus import CASES, background, case_float_labels, case_image_without_label, case_links_unknown
from helpers import BACT, DSB, cells, image_for, needs, write_pair

from omnitrain.config import check_config
from omnitrain.problems import ERROR, WARNING
from omnitrain.validation import validate_folder


def run(folder, **overrides):
    config = check_config({"dir": str(folder), **overrides})
    table, problems = validate_folder(config)
    return table, problems


def test_corpus_is_large_enough():
    assert len(CASES) >= 20
    assert len({c.__name__ for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__[5:])
def test_bad_input_is_refused_with_file_and_fix(tmp_path, case):
    folder = tmp_path / "train"
    background(folder)
    blamed, code, overrides = case(folder)
    table, problems = run(folder, **overrides)
    hits = [p for p in problems if p.code == code and p.severity == ERROR]
    assert hits, f"expected a {code} error, got {[(p.code, p.file) for p in problems]}"
    assert any(str(p.file).endswith(blamed) for p in hits), [p.file for p in hits]
    for p in hits:
        assert len(p.what) > 15 and len(p.fix) > 10
    # The valid pairs next to it are not blamed.
    assert not [p for p in problems if p.severity == ERROR and "ok0" in p.file]


def test_good_folder_has_no_problem(good_folder):
    table, problems = run(good_folder)
    assert problems == []
    assert list(table["objects"]) == [4, 5, 6]
    assert set(table["errors"]) == {0}


def test_every_problem_of_a_folder_is_reported_at_once(tmp_path):
    folder = tmp_path / "train"
    background(folder)
    case_float_labels(folder)
    case_image_without_label(folder)
    case_links_unknown(folder)
    _, problems = run(folder)
    codes = {p.code for p in problems if p.severity == ERROR}
    assert {"float-labels", "image-without-label", "links-unknown-label"} <= codes


def test_split_labels_are_a_warning(tmp_path):
    folder = tmp_path / "train"
    background(folder)
    lab = cells(n=6)
    lab[40, 40] = 1  # a stray pixel of object 1, far from it
    write_pair(folder, "stray", lab=lab)
    table, problems = run(folder)
    found = [p for p in problems if p.code == "split-labels"]
    assert [p.severity for p in found] == [WARNING]
    assert found[0].file.endswith("stray_masks.tif") and "(1)" in found[0].what
    assert table.set_index("base").loc["stray", "split_labels"] == 1


@pytest.mark.parametrize(
    ("code", "lab", "overrides"),
    [
        ("few-objects", cells(n=2), {}),
        ("mostly-background", cells(shape=(256, 256), n=3, size=6), {}),
        ("tiny-objects", cells(n=5, size=2), {}),
        ("smaller-than-tyx", cells(), {"tyx": [96, 96]}),
    ],
)
def test_warnings_do_not_stop(tmp_path, code, lab, overrides):
    folder = tmp_path / "train"
    background(folder)
    write_pair(folder, "odd", lab=lab)
    _, problems = run(folder, **overrides)
    found = [p for p in problems if p.code == code]
    assert found and all(p.severity == WARNING for p in found)
    assert not [p for p in problems if p.severity == ERROR]


def test_rgb_images_with_channel_selection(tmp_path):
    folder = tmp_path / "train"
    lab = cells()
    rgb = np.stack([image_for(lab, s) for s in range(3)], axis=-1).astype(np.uint8)
    for i in range(2):
        write_pair(folder, f"rgb{i}", lab=lab, img=rgb, img_ext=".png", label_ext=".png")
    for overrides in ({}, {"chan": 2}, {"channels": {"select": [0, 2]}, "nchan": 2}, {"channel_axis": 2}):
        table, problems = run(folder, **overrides)
        assert problems == [], overrides
        assert set(table["channels"]) == {3}


def test_channel_first_stack_is_inferred(tmp_path):
    folder = tmp_path / "train"
    lab = cells()
    cyx = np.stack([image_for(lab, s) for s in range(2)])
    for i in range(2):
        write_pair(folder, f"cyx{i}", lab=lab, img=cyx)
    table, problems = run(folder, chan=1, chan2=2, nchan=2)
    assert problems == []
    _, problems = run(folder, channel_axis=-1)
    assert {p.code for p in problems} == {"shape-mismatch"}


def test_float_labels_with_whole_values_are_accepted(tmp_path):
    folder = tmp_path / "train"
    background(folder)
    write_pair(folder, "floaty", lab=cells().astype(np.float32), img=image_for(cells()))
    table, problems = run(folder)
    assert problems == []
    assert table.set_index("base").loc["floaty", "objects"] == 4


def test_valid_links_are_counted(tmp_path):
    folder = tmp_path / "train"
    background(folder)
    write_pair(folder, "linked")
    (folder / "linked_links.txt").write_text("1,2\n\n3,4\n")
    table, problems = run(folder)
    assert problems == []
    assert table.set_index("base").loc["linked", "n_links"] == 2


def test_many_labels_use_the_sparse_path(tmp_path):
    folder = tmp_path / "train"
    background(folder)
    lab = cells(n=4).astype(np.uint32) * 1_000_000  # huge, sparse ids
    write_pair(folder, "sparseids", lab=lab)
    table, problems = run(folder)
    assert problems == []
    row = table.set_index("base").loc["sparseids"]
    assert row["objects"] == 4 and row["max_label"] == 4_000_000


@needs(DSB)
@pytest.mark.parametrize("overrides", [{}, {"channel_axis": 2}])
def test_dsb_is_accepted_and_its_split_labels_are_warnings(overrides):
    table, problems = run(DSB, **overrides)
    assert not [p for p in problems if p.severity == ERROR]
    assert len(table) == 27 and table["objects"].sum() == 1683
    manifest = pd.read_csv(DSB / "manifest.csv")
    expected = {f[: -len(".tif")]: n for f, n in zip(manifest.file, manifest.fragmented_labels, strict=True)}
    assert table.set_index("base")["split_labels"].to_dict() == expected
    split_warned = {p.file.rsplit("/", 1)[-1] for p in problems if p.code == "split-labels"}
    assert split_warned == {f"{b}_masks.tif" for b, n in expected.items() if n}
    assert {"dsb_fluo_0402a81e7526_masks.tif", "dsb_fluo_175dbb364bfe_masks.tif"} <= split_warned
    rgb = table[table.base.str.startswith("dsb_color")]
    assert len(rgb) == 4 and set(rgb["channels"]) == {3}


@needs(BACT)
def test_bacterial_phase_set_is_accepted():
    table, problems = run(BACT, mask_filter="_cp_masks")
    assert problems == []
    assert len(table) == 7 and table["objects"].min() >= 3
