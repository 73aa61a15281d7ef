"""What `snakemake segment` does, planned without Snakemake (omnitrain/segment_plan.py)."""

from __future__ import annotations

import pytest
from helpers import cells, image_for, save, write_record

from omnitrain.config import check_config
from omnitrain.hashing import HashCache
from omnitrain.segment_plan import SegmentPlanner
from omnitrain.segmentation import SegmentError

ENVS = {"omnipose": "1" * 64, "preprocess": "2" * 64}


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A results folder with two registered versions (their model files present) and three new images."""
    monkeypatch.chdir(tmp_path)
    for version, created in (("aaaa11112222", "2026-01-01"), ("cccc77778888", "2026-01-02")):
        write_record(tmp_path / "results", version, f"{created}T00:00:00")
        (tmp_path / "m").mkdir(exist_ok=True)
        for name in (f"{version}_best", f"{version}.json"):
            (tmp_path / "m" / name).write_bytes(b"weights")
    (tmp_path / "results/latest.txt").write_text("aaaa11112222\n")
    (tmp_path / "new").mkdir()
    for i in range(3):
        save(tmp_path / "new" / f"cell{i}.tif", image_for(cells(n=3 + i), seed=i))
    return tmp_path


def planner(**config) -> SegmentPlanner:
    cfg = check_config({"dir": ".", **config})
    known = HashCache("other.tsv").sha256("new/cell1.tif")  # cell1's bytes are in the training folder
    return SegmentPlanner(cfg, "results", ENVS, [known], ".omnitrain/hashes.tsv")


def test_the_plan_names_the_version_every_image_and_its_batch(work):
    plan, refusal = planner(segment_dir="new").plan()
    assert refusal == "" and plan["version"] == "aaaa11112222"
    assert sorted(i["name"] for i in plan["items"].values()) == ["cell0", "cell1", "cell2"]
    assert [i["in_training"] for i in plan["items"].values()] == [False, True, False]
    assert sorted(s for members in plan["batches"].values() for s in members) == sorted(plan["items"])
    assert plan["drafts"]["in_training"] == ["cell1"]
    again, _ = planner(segment_dir="new").plan()
    assert again["set"] == plan["set"] and again["batches"] == plan["batches"]
    other, _ = planner(segment_dir="new", segment_model="cccc77778888").plan()
    assert other["set"] != plan["set"]
    assert {i["key"] for i in other["items"].values()}.isdisjoint(i["key"] for i in plan["items"].values())


def test_a_job_of_another_version_or_set_is_named_with_the_fix(work):
    segment = planner(segment_dir="new")
    plan = segment.for_job()
    assert segment.for_job(model=plan["version"], segset=plan["set"]) is plan
    with pytest.raises(SegmentError, match="is not what segment_dir and segment_model give now"):
        segment.for_job(model="cccc77778888", segset=plan["set"])
    with pytest.raises(SegmentError, match="batch 0123456789ab"):
        segment.for_job(model=plan["version"], batch="0123456789ab")
    assert segment.targets(plan) == [
        f"{segment.set_folder(plan)}/segmentation.tsv",
        "results/segmentations/latest.txt",
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "segment_dir is not set: name the folder"),
        ({"segment_dir": "absent"}, "segment_dir 'absent' is not a folder"),
        ({"segment_dir": "results"}, "holds no image"),
        ({"segment_dir": "new", "segment_model": "ffff"}, "segment_model: "),
    ],
)
def test_what_cannot_be_segmented_is_refused_with_the_fix(work, config, message):
    plan, refusal = planner(**config).plan()
    assert plan is None and message in refusal
    with pytest.raises(SegmentError, match=message):
        planner(**config).for_job()
