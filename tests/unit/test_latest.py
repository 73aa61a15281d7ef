"""omnitrain/latest.py: the pointer to what a target made last."""

from __future__ import annotations

from omnitrain.latest import point_to


def test_the_pointer_and_its_link_follow_the_newest_target(tmp_path):
    for name in ("first", "second"):
        (tmp_path / "made" / name).mkdir(parents=True)
        link = point_to(tmp_path / "made" / name, tmp_path / "latest.txt", "latest")
        assert (tmp_path / "latest.txt").read_text() == f"{tmp_path / 'made' / name}\n"
        assert link.resolve() == (tmp_path / "made" / name).resolve()
    assert link.readlink().as_posix() == "made/second"  # relative: a moved results folder keeps it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "latest.txt", "made"]
