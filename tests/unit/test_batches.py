"""Batches of the per-image work: stable, content-defined cuts; batch tables."""

from __future__ import annotations

import pytest

from omnitrain.batches import IMAGES_PER_JOB, batch_ids, batches, read_tables

IDS = [f"img{i:05d}" for i in range(10_000)]


def test_every_id_once_in_sorted_order_about_the_mean_size():
    cut = batches(reversed(IDS))
    assert [s for b in cut for s in b] == IDS
    sizes = [len(b) for b in cut]
    assert max(sizes) <= 4 * IMAGES_PER_JOB and min(sizes) >= 1
    assert 0.75 * IMAGES_PER_JOB < len(IDS) / len(cut) < 1.25 * IMAGES_PER_JOB


def test_one_image_per_job_and_cap():
    assert batches(["b", "a", "c"], per_job=1) == [["a"], ["b"], ["c"]]
    assert all(len(b) <= 5 for b in batches(IDS[:500], per_job=16, max_size=5))


@pytest.mark.parametrize("change", ["add", "remove"])
def test_adding_or_removing_one_image_regroups_its_own_batch_only(change):
    before = batches(IDS)
    for sid in IDS[::97]:
        ids = [*IDS, f"{sid}x"] if change == "add" else [s for s in IDS if s != sid]
        kept = {tuple(b) for b in batches(ids)}
        lost = [i for i, b in enumerate(before) if tuple(b) not in kept]
        # The batch holding it (or the next one, for an id added after a boundary), at most
        # together with the one after (when the change moved a boundary or the cap).
        home = next(i for i, b in enumerate(before) if sid in b)
        assert 1 <= len(lost) <= 2 and lost == list(range(lost[0], lost[0] + len(lost))), (sid, lost)
        assert lost[0] in (home, home + 1), (sid, lost, home)


def test_batch_ids_follow_the_images_versions():
    versions = {s: "0" * 12 for s in IDS[:100]}
    first = batch_ids(IDS[:100], versions)
    assert sorted(s for m in first.values() for s in m) == IDS[:100]
    assert batch_ids(list(reversed(IDS[:100])), dict(versions)) == first
    edited = batch_ids(IDS[:100], {**versions, IDS[50]: "1" * 12})
    (changed,) = [b for b in first if b not in edited]
    assert IDS[50] in first[changed] and len(edited) == len(first)


def test_tables_are_read_from_their_own_results_folder(tmp_path):
    for sid in ("b", "a"):
        (tmp_path / "results/images" / sid / "0123456789ab").mkdir(parents=True)
    table = tmp_path / "results/image_batches/x.tsv"
    table.parent.mkdir()
    table.write_text("source\tversion\nb\t0123456789ab\na\t0123456789ab\n")
    moved = tmp_path / "moved"
    (tmp_path / "results").rename(moved)  # a results folder moved elsewhere still reads
    table = moved / "image_batches/x.tsv"
    found = read_tables([table])
    assert found == [(s, moved / "images" / s / "0123456789ab") for s in "ab"]
    (moved / "images/a/0123456789ab").rmdir()
    with pytest.raises(FileNotFoundError, match=r"the prepared files of a are missing.*Remove .*x\.tsv"):
        read_tables([table])
