"""The annotation loop through snakemake: a registered version segments new images into drafts; one draft
is corrected, all are moved into the training folder, and the next version's change record traces them
back (which version drew them, which were added unedited). Starts from the demo model trained once per
session (conftest.py, demo_trained), whose held-out AP@0.5 tests/workflow/test_quality.py checks."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import copy_run, run_snakemake

from omnitrain.demo import NEW_SPECS, make_image, write_unlabelled
from omnitrain.imageio import write_tiff

pytestmark = [pytest.mark.workflow, pytest.mark.quality]
metrics = pytest.importorskip("cellpose_omni.metrics")

FIRST = ["new_colony_01", "new_colony_02", "new_colony_03"]
ADDED = "new_sparse_01"
assert sorted(FIRST + [ADDED]) == sorted(NEW_SPECS)


def segment(work, config, **extra):
    return run_snakemake(work, {**config, "segment_dir": "new", **extra}, "segment")


def latest_set(work):
    return (work / "results/segmentations/latest").resolve()


def mask_files(work):
    """{per-image folder: mtime of its masks} of every image segmented so far."""
    return {
        p.parent: p.stat().st_mtime_ns
        for p in (work / "results/segmentations").glob("*/images/*/*/*_cp_masks.tif")
    }


@pytest.fixture(scope="module")
def segmented(demo_trained, tmp_path_factory):
    """The annotation loop runs on a copy of the shared demo run: it adds images, versions and drafts."""
    work, config, v1 = demo_trained
    work = copy_run(work, tmp_path_factory.mktemp("segment") / "work")
    write_unlabelled(work / "new", names=FIRST)
    run = segment(work, config)
    assert run.returncode == 0, run.stderr[-4000:]
    return work, config, v1


def test_the_latest_version_segments_new_images_as_it_was_scored(segmented):
    work, _, v1 = segmented
    folder = latest_set(work)
    assert folder.parent.parent == work / "results/segmentations" / v1  # keyed by the version
    table = pd.read_csv(folder / "segmentation.tsv", sep="\t")
    assert list(table["image"]) == [f"{n}.tif" for n in FIRST]
    for name in FIRST:
        masks = tifffile.imread(folder / "masks" / f"{name}_cp_masks.tif")
        assert (folder / "masks" / f"{name}_outlines.png").is_file()
        assert (folder / "masks" / f"{name}_overlay.png").is_file()
        ap = metrics.average_precision(
            [make_image(name)[1].astype(np.int32)], [masks.astype(np.int32)], [0.5]
        )[0]
        assert ap[0, 0] >= 0.5, f"{name}: AP@0.5 {ap[0, 0]:.2f} against its true labels"
        row = table.set_index("image").loc[f"{name}.tif"]
        assert row["objects"] == masks.max() > 10 and row["diameter"] > 3 and row["mean_flow_error"] >= 0
    review = pd.read_csv(folder / "review.tsv", sep="\t")
    errors = table.set_index("image")["mean_flow_error"]
    assert list(review["image"]) == list(errors.sort_values(ascending=False).index)  # worst first


def test_drafts_are_the_images_and_their_masks_named_as_labels(segmented):
    work, _, v1 = segmented
    folder = latest_set(work)
    drafts = pd.read_csv(folder / "drafts.tsv", sep="\t")
    assert set(drafts["model_version"]) == {v1} and len(drafts) == len(FIRST)
    for name in FIRST:
        assert (folder / "drafts" / f"{name}.tif").read_bytes() == (work / "new" / f"{name}.tif").read_bytes()
        draft = tifffile.imread(folder / "drafts" / f"{name}_masks.tif")
        assert np.array_equal(draft, tifffile.imread(folder / "masks" / f"{name}_cp_masks.tif"))


@pytest.fixture(scope="module")
def one_more(segmented):
    work, config, v1 = segmented
    before = mask_files(work)
    write_unlabelled(work / "new", names=[ADDED])
    run = segment(work, config)
    assert run.returncode == 0, run.stderr[-4000:]
    return work, config, v1, before, run


def test_one_new_image_is_the_only_one_segmented_again(one_more):
    work, _, _, before, run = one_more
    after = mask_files(work)
    assert len(after) == len(before) + 1 and all(after[k] == v for k, v in before.items())
    counts = [tuple(map(int, m)) for m in re.findall(r"(\d+) segmented, (\d+) reused", run.stderr)]
    assert tuple(map(sum, zip(*counts, strict=True))) == (1, 3)  # over the batches (cut by the images' names)
    table = pd.read_csv(latest_set(work) / "segmentation.tsv", sep="\t")
    assert sorted(table["image"]) == sorted(f"{n}.tif" for n in FIRST + [ADDED])


@pytest.fixture(scope="module")
def version2(one_more):
    """Correct one draft (its true labels), save another under other label numbers (as a viewer may),
    leave the rest, move them all into the training folder, and run the pipeline again."""
    work, config, v1, _, _ = one_more
    drafts = latest_set(work) / "drafts"
    write_tiff(drafts / "new_colony_01_masks.tif", make_image("new_colony_01")[1])
    resaved = tifffile.imread(drafts / "new_colony_02_masks.tif").astype(np.uint32)
    resaved[resaved > 0] = resaved.max() + 1 - resaved[resaved > 0]
    write_tiff(drafts / "new_colony_02_masks.tif", resaved)
    corrected = (drafts / "new_colony_01_masks.tif").read_bytes()
    # A changed parameter (use_gpu) reruns the set's step in place: the corrections are kept
    run = segment(work, config, use_gpu=False)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "segment_set" in run.stderr and "left as it is" in run.stderr
    assert (drafts / "new_colony_01_masks.tif").read_bytes() == corrected
    for path in drafts.glob("*.tif"):
        shutil.move(path, work / "demo" / path.name)
    # Two epochs: version 2 is about what its change record says, not its score (that takes minutes).
    run = run_snakemake(work, {**config, "n_epochs": 2})
    assert run.returncode == 0, run.stderr[-4000:]
    return work, config, v1, run


def test_the_next_version_names_the_drafted_pairs_and_flags_the_unedited(version2):
    work, _, v1, run = version2
    v2 = (work / "results/latest.txt").read_text().strip()
    assert v2 != v1
    record = json.loads((work / "results/versions" / v2 / "record.json").read_text())
    change = record["change"]
    assert change["from"] == v1
    added = {f"{n}{s}.tif" for n in FIRST + [ADDED] for s in ("", "_masks")}
    assert added <= set(change["files"]["added"])
    traced = {d["image"]: d for d in change["from_drafts"]}
    assert set(traced) == {f"{n}.tif" for n in FIRST + [ADDED]}
    assert {d["model_version"] for d in traced.values()} == {v1}
    assert {n for n, d in traced.items() if d["edited"]} == {"new_colony_01.tif"}  # resaved is not edited
    text = (work / "results/versions" / v2 / "changes.md").read_text()
    assert "new_colony_01.tif + new_colony_01_masks.tif" in text and text.count("UNEDITED") == 3
    registry = pd.read_csv(work / "results/registry.tsv", sep="\t").set_index("version")
    assert "4 from drafts (3 UNEDITED)" in registry.loc[v2, "changes"]
    # said at the start too, for the drafts whose bytes are unchanged
    for name in (ADDED, "new_colony_03"):
        assert f"{name}_masks.tif is a draft added unedited" in run.stderr


def test_images_already_in_the_training_folder_get_no_draft(version2):
    work, config, _, _ = version2
    run = segment(work, config)
    assert run.returncode == 0, run.stderr[-4000:]
    folder = latest_set(work)
    table = pd.read_csv(folder / "segmentation.tsv", sep="\t")
    assert table["in_training"].all() and not list((folder / "drafts").glob("*.tif"))
    assert pd.read_csv(folder / "drafts.tsv", sep="\t").empty
    assert "is a draft added unedited" not in run.stderr  # version 2 trained on them: its record said so


def test_segment_without_a_folder_or_with_an_unknown_version_says_what_to_do(segmented):
    work, config, _ = segmented
    for run, says in (
        (run_snakemake(work, config, "-n", "segment"), "segment_dir is not set"),
        (segment(work, config, segment_model="fedcba"), "'fedcba' matches no registered version"),
    ):
        text = run.stdout + run.stderr
        assert run.returncode != 0 and says in text and "Traceback" not in text


def test_a_record_that_cannot_be_read_stops_segment_only(segmented):
    work, config, v1 = segmented
    record = work / "results/versions" / v1 / "record.json"
    kept = record.read_text()
    record.write_text(kept[:40])  # edited by hand, cut off
    try:
        training = run_snakemake(work, {**config, "segment_dir": "new"}, "-n")
        segmenting = run_snakemake(work, {**config, "segment_dir": "new"}, "-n", "segment")
    finally:
        record.write_text(kept)
    assert training.returncode == 0, training.stderr[-3000:]  # a training run never works out the plan
    text = segmenting.stdout + segmenting.stderr
    assert segmenting.returncode != 0 and "Traceback" not in text
    assert f"{v1}/record.json is not a readable record" in text and "Delete it" in text
