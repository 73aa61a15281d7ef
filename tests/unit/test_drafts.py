"""omnitrain.drafts: the drafts' tables, unedited labels, and tracing training pairs back to drafts."""

import numpy as np
import pytest
from helpers import cells

from omnitrain import registry
from omnitrain.drafts import (
    DRAFT_COLUMNS,
    origins,
    read_drafts,
    same_objects,
    unedited_by_hash,
    write_drafts_table,
)
from omnitrain.hashing import sha256
from omnitrain.imageio import write_tiff


def test_the_same_objects_under_other_numbers_are_the_same_labels():
    a = cells(n=4)
    permuted = np.zeros_like(a)
    for old, new in {1: 7, 2: 3, 3: 1, 4: 20}.items():
        permuted[a == old] = new
    assert same_objects(a, permuted) and same_objects(a, a)


@pytest.mark.parametrize("edit", ["merge", "split", "erase", "grow", "shape"])
def test_any_real_correction_makes_other_labels(edit):
    a = cells(n=4)
    b = a.copy()
    if edit == "merge":
        b[b == 2] = 1
    elif edit == "split":
        b[(a == 1) & (np.arange(a.shape[1]) % 2 == 0)] = 9
    elif edit == "erase":
        b[b == 3] = 0
    elif edit == "grow":
        ys, xs = np.nonzero(a == 1)
        b[ys.max() + 1, xs.min()] = 1
    else:
        b = b[:-1]
    assert not same_objects(a, b)


def draft_row(image, label, results, masks, image_sha, version="v1", set_="s1"):
    return {
        "image": image,
        "label": label,
        "image_sha256": image_sha,
        "label_sha256": sha256(masks),
        "model_version": version,
        "set": set_,
        "masks": masks.relative_to(results).as_posix(),
    }


@pytest.fixture
def drafted(tmp_path):
    """A results folder with one set of two drafts (images a and b), and a training folder."""
    results, train = tmp_path / "results", tmp_path / "train"
    folder = results / "segmentations/v1/images"
    folder.mkdir(parents=True)
    train.mkdir()
    rows = []
    for name, n in (("a", 3), ("b", 5)):
        masks = folder / f"{name}_cp_masks.tif"
        write_tiff(masks, cells(n=n))
        write_tiff(train / f"{name}.tif", cells(n=n) * 10)  # the image
        rows.append(
            draft_row(f"{name}.tif", f"{name}_masks.tif", results, masks, sha256(train / f"{name}.tif"))
        )
    table = results / "segmentations/v1/sets/s1/drafts.tsv"
    table.parent.mkdir(parents=True)
    write_drafts_table(table, rows)
    return results, train


def source(train, name, role="train"):
    files = {}
    for kind, file in (("image", f"{name}.tif"), ("label", f"{name}_masks.tif")):
        path = train / file
        files[kind] = {"path": str(path), "name": file, "sha256": sha256(path)}
    files["links"] = None
    return {"name": name, "role": role, "from_test_dir": False, "files": files}


def test_the_drafts_table_reads_back_by_image_hash(drafted):
    results, train = drafted
    found = read_drafts(results)
    assert len(found) == 2
    row = found[sha256(train / "a.tif")][0]
    assert list(row) == DRAFT_COLUMNS and row["model_version"] == "v1"
    assert row["masks"] == str(results / "segmentations/v1/images/a_cp_masks.tif")


def test_pairs_are_traced_to_their_draft_edited_or_not(drafted):
    results, train = drafted
    masks = results / "segmentations/v1/images"
    (train / "a_masks.tif").write_bytes((masks / "a_cp_masks.tif").read_bytes())  # added as drawn
    corrected = cells(n=5)
    corrected[corrected == 2] = 0
    write_tiff(train / "b_masks.tif", corrected)  # one object erased
    write_tiff(train / "c.tif", cells(n=2) * 3)
    write_tiff(train / "c_masks.tif", cells(n=2))  # never drafted
    sources = {n: source(train, n) for n in "abc"}
    found = origins(sources, read_drafts(results))
    assert [(o["image"], o["label"], o["model_version"], o["edited"]) for o in found] == [
        ("a.tif", "a_masks.tif", "v1", False),
        ("b.tif", "b_masks.tif", "v1", True),
    ]
    hashes = {str(train / f"{n}_masks.tif"): sources[n]["files"]["label"]["sha256"] for n in "abc"}
    assert unedited_by_hash(hashes, read_drafts(results)) == [str(train / "a_masks.tif")]


def test_a_draft_saved_again_under_other_numbers_is_still_unedited(drafted):
    results, train = drafted
    relabelled = cells(n=3)
    relabelled[relabelled > 0] = 4 - relabelled[relabelled > 0]  # 1, 2, 3 -> 3, 2, 1: other bytes
    write_tiff(train / "a_masks.tif", relabelled.astype(np.uint32))
    found = origins({"a": source(train, "a")}, read_drafts(results))
    assert found[0]["edited"] is False


def test_without_the_drafts_masks_only_the_bytes_tell(drafted):
    results, train = drafted
    relabelled = cells(n=3).astype(np.uint32)
    write_tiff(train / "a_masks.tif", relabelled)
    (results / "segmentations/v1/images/a_cp_masks.tif").unlink()
    assert origins({"a": source(train, "a")}, read_drafts(results))[0]["edited"] is True


def test_the_change_record_names_drafted_pairs_and_flags_the_unedited():
    files = {"x.tif": {"sha256": "1", "role": "train"}}
    new_files = files | {
        n: {"sha256": n, "role": "train"} for n in ("a.tif", "a_masks.tif", "b.tif", "b_masks.tif")
    }
    drafts = [
        {
            "image": f"{n}.tif",
            "label": f"{n}_masks.tif",
            "role": "train",
            "model_version": v,
            "set": "s",
            "edited": e,
        }
        for n, v, e in (("a", "v1", False), ("b", "v1", True), ("x", "v0", True))
    ]
    base = {"params": {}, "versions": {"heldout": "h"}, "run": {"commit": "c"}, "code": "c"}
    scores = {"summary": {}, "per_image": {}}
    old = base | {"version": "v1", "files": files, "scores": scores}
    new = base | {"version": "v2", "files": new_files, "scores": scores, "from_drafts": drafts}
    change = registry.compare(old, new)
    assert [d["image"] for d in change["from_drafts"]] == ["a.tif", "b.tif"]  # x was there before
    text = registry.changes_markdown(change, "v2")
    assert "a.tif + a_masks.tif (train): drawn by version v1, UNEDITED" in text
    assert "b.tif + b_masks.tif (train): drawn by version v1, corrected" in text
    row = {
        "version": "v2", "created": "t", "parent": "v1", "params_digest": "p",
        "data": dict.fromkeys(("hash", "train_images", "test_images", "train_objects", "test_objects",
                               "training_images"), 0),
        "versions": {"trainset": "t", "heldout": "h", "model": "m"},
        "scores": scores, "paths": {"files": {}}, "change": change,
    }  # fmt: skip
    assert "2 from drafts (1 UNEDITED)" in registry.registry_row(row)["changes"]
    first = registry.changes_markdown(None, "v1", drafts[:1])
    assert "First registered version" in first and "UNEDITED" in first
