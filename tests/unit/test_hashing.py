"""Version ids, the file-hash cache, code digests, and the registry's change records."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from omnitrain import hashing, registry
from omnitrain.hashing import HashCache, code_digest, version_id


def test_version_id_is_stable_and_depends_on_every_part():
    a = version_id("step", {"x": 1, "y": [1, 2]}, "sha")
    assert a == version_id("step", {"y": [1, 2], "x": 1}, "sha")  # key order does not matter
    assert len(a) == 12 and int(a, 16) >= 0
    assert a != version_id("step", {"x": 2, "y": [1, 2]}, "sha")
    assert a != version_id("step", {"x": 1, "y": [2, 1]}, "sha")
    assert a != version_id("other", {"x": 1, "y": [1, 2]}, "sha")


def old_file(path, data: bytes):
    path.write_bytes(data)
    past = time.time() - 60
    os.utime(path, (past, past))


def test_hash_cache_reads_a_file_once_and_notices_edits(tmp_path, monkeypatch):
    f = tmp_path / "a_masks.tif"
    old_file(f, b"one")
    cache_file = tmp_path / "cache" / "hashes.tsv"
    cache = HashCache(cache_file)
    assert cache.sha256(f) == hashlib.sha256(b"one").hexdigest() and cache.hashed == 1
    cache.save()
    # A new cache from the file: same answer without reading the file.
    reads = []
    real = hashing.sha256
    monkeypatch.setattr(hashing, "sha256", lambda p: reads.append(p) or real(p))
    warm = HashCache(cache_file)
    assert warm.sha256(f) == hashlib.sha256(b"one").hexdigest() and reads == []
    # Same size, new content and mtime: hashed again.
    old_file(f, b"two")
    os.utime(f, (time.time() - 30, time.time() - 30))
    assert warm.sha256(f) == hashlib.sha256(b"two").hexdigest() and len(reads) == 1


def test_hash_cache_sees_an_edit_that_keeps_size_and_mtime(tmp_path):
    f = tmp_path / "a_masks.tif"
    old_file(f, b"one")
    cache = HashCache(tmp_path / "hashes.tsv")
    cache.sha256(f)
    stamp = f.stat()
    f.write_bytes(b"two")  # same size
    os.utime(f, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # mtime put back, as cp -p or rsync -t do
    assert f.stat().st_mtime_ns == stamp.st_mtime_ns
    assert cache.sha256(f) == hashlib.sha256(b"two").hexdigest()


def test_hash_cache_does_not_remember_files_changed_just_now(tmp_path):
    f = tmp_path / "fresh.tif"
    f.write_bytes(b"x")  # mtime now: it may change again within the same mtime tick
    cache = HashCache(tmp_path / "hashes.tsv")
    cache.sha256(f)
    cache.save()
    assert not (tmp_path / "hashes.tsv").exists()


def test_hash_cache_ignores_a_damaged_cache_file(tmp_path):
    f = tmp_path / "a.tif"
    old_file(f, b"abc")
    (tmp_path / "hashes.tsv").write_text(f"{f}\tnot-a-size\t1\t2\t3\tdead\n{f}\t3\t1\tdead\ngarbage\n")
    assert HashCache(tmp_path / "hashes.tsv").sha256(f) == hashlib.sha256(b"abc").hexdigest()


def code_tree(tmp_path, monkeypatch, script: str, modules: dict[str, str]):
    """A scripts folder with step.py and a package of ``modules``; returns digest() of step.py."""
    scripts, package = tmp_path / "scripts", tmp_path / "pkg"
    scripts.mkdir()
    package.mkdir()
    (scripts / "step.py").write_text(script)
    for name, text in modules.items():
        (package / name).write_text(text)
    monkeypatch.setattr(hashing, "SCRIPTS", scripts)
    monkeypatch.setattr(hashing, "PACKAGE", package)

    def digest():
        code_digest.cache_clear()
        return code_digest("step.py")

    return digest, package


def test_code_digest_covers_the_script_and_the_modules_it_imports(tmp_path, monkeypatch):
    modules = {"alpha.py": "from .beta import g\n", "beta.py": "X = 1\n", "gamma.py": "Y = 1\n"}
    digest, package = code_tree(tmp_path, monkeypatch, "from omnitrain.alpha import f\n", modules)
    first = digest()
    (package / "gamma.py").write_text("Y = 2\n")  # not imported: same digest
    assert digest() == first
    (package / "beta.py").write_text("X = 2\n")  # imported through alpha: new digest
    assert digest() != first


DOCUMENTED = '''"""Module."""


def f(x):
    """Twice x."""
    return 2 * x
'''
REFORMATTED = """'''Module, documented at length.'''
# a comment

def f(x):  # why
    '''Two times x, in other words.'''
    return (2 *
            x)
"""


def test_code_digest_ignores_docstrings_comments_and_formatting(tmp_path, monkeypatch):
    digest, package = code_tree(
        tmp_path, monkeypatch, "from omnitrain.alpha import f\nf(1)\n", {"alpha.py": DOCUMENTED}
    )
    module = package / "alpha.py"
    first = digest()
    module.write_text(REFORMATTED)
    assert digest() == first
    module.write_text("def f(x):\n    return 3 * x\n")  # behaviour
    assert digest() != first
    module.write_text("def f(x):\n    return 2 * x\n\n\nDEBUG = False\n")  # a new name is behaviour too
    assert digest() != first
    module.write_text("def f(x):\n    '''Only a docstring.'''\n")  # a body of docstring alone: not f above
    assert digest() != first


def test_real_steps_have_distinct_code_digests():
    code_digest.cache_clear()
    train, evaluate = code_digest("train.py"), code_digest("predict_heldout.py", "evaluate.py")
    assert train != evaluate and len(train) == 16


def record(version, files, params, heldout="h1", scores=None, commit="c1"):
    scores = scores or {"summary": {"mean_ap": 0.5, "ap50": 0.7, "aji": 0.4, "pq": 0.3}, "per_image": {}}
    return {
        "version": version,
        "files": files,
        "params": params,
        "versions": {"heldout": heldout},
        "scores": scores,
        "run": {"commit": commit},
        "code": "abc",
    }


def test_compare_names_changed_files_parameters_and_score_differences():
    files = {"a.tif": {"sha256": "1", "role": "train"}, "a_masks.tif": {"sha256": "2", "role": "train"}}
    new_files = {
        **files,
        "a_masks.tif": {"sha256": "3", "role": "train"},
        "b.tif": {"sha256": "4", "role": "test"},
    }
    per_image = {"b": {"mean_ap": 0.5, "ap50": 0.7}}
    old = record(
        "v1",
        files,
        {"training": {"n_epochs": 10}},
        scores={"summary": {"mean_ap": 0.5}, "per_image": per_image},
    )
    new_scores = {"summary": {"mean_ap": 0.75}, "per_image": {"b": {"mean_ap": 0.75, "ap50": 0.9}}}
    new = record("v2", new_files, {"training": {"n_epochs": 20}}, scores=new_scores)
    change = registry.compare(old, new)
    assert change["files"] == {
        "added": ["b.tif"],
        "removed": [],
        "modified": ["a_masks.tif"],
        "role_changed": [],
    }
    assert change["parameters"] == {"training.n_epochs": {"old": 10, "new": 20}}
    assert change["heldout_scores"]["mean_ap"]["difference"] == pytest.approx(0.25)
    assert change["heldout_scores"]["per_image"]["b"]["difference"] == pytest.approx(0.25)
    text = registry.changes_markdown(change, "v2")
    assert (
        "modified: a_masks.tif" in text and "added: b.tif" in text and "training.n_epochs: 10 -> 20" in text
    )


def test_compare_refuses_scores_on_a_different_heldout_set():
    files = {"a.tif": {"sha256": "1", "role": "test"}}
    moved = {"a.tif": {"sha256": "1", "role": "train"}}
    change = registry.compare(record("v1", files, {}, heldout="h1"), record("v2", moved, {}, heldout="h2"))
    assert change["files"]["role_changed"] == ["a.tif"]
    assert not change["heldout_scores"]["same_heldout_set"] and "mean_ap" not in change["heldout_scores"]
    assert "held-out set changed" in registry.changes_markdown(change, "v2")
