"""Batches of the per-image work: stable, content-defined cuts; batch tables."""

from __future__ import annotations

import pytest

from omnitrain.batches import IMAGES_PER_JOB, batches, read_tables, write_table

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


def test_tables_round_trip_sorted_and_name_a_missing_folder(tmp_path):
    for name in ("b", "a"):
        (tmp_path / name).mkdir()
    rows = [{"source": s, "version": "0" * 12, "folder": str(tmp_path / s), "status": "made"} for s in "ba"]
    write_table(tmp_path / "t.tsv", rows)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert read_tables([tmp_path / "t.tsv"]) == [("a", tmp_path / "a"), ("b", tmp_path / "b")]
    (tmp_path / "a").rmdir()
    with pytest.raises(FileNotFoundError, match=r"a: the prepared files of a are missing.*Remove .*t\.tsv"):
        read_tables([tmp_path / "t.tsv"])
