"""Reliability through snakemake: the input gate, bad inputs and configs, disk full, kill -9."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from corpus import CASES, background
from helpers import ROOT, cells, dry_run_jobs, run_snakemake, save, write_pair

from omnitrain.batches import batches
from omnitrain.discovery import discover

pytestmark = pytest.mark.workflow


def results_files(work):
    """Every file under results/ but logs and the run's hold on the folder (omnitrain/results_lock.py)."""
    results = work / "results"
    locks = {results / ".pipeline.lock", results / ".segment.lock"}
    return sorted(
        str(p.relative_to(results))
        for p in results.rglob("*")
        if p.is_file() and "logs" not in p.parts and p not in locks
    )


def twin_folder(work):
    """Two images share the base name 'twin' (twin.tif and twin.png): one label for both."""
    folder = work / "data"
    for i in range(2):
        write_pair(folder, f"good{i}", lab=cells(n=6))
    write_pair(folder, "twin", lab=cells(n=5))
    save(folder / "twin.png", (cells(n=5) > 0).astype(np.uint8) * 200)
    return folder


@pytest.mark.parametrize(
    ("targets", "options"),
    [(("train",), ()), (("pack",), ()), ((), ()), ((), ("-k",))],
    ids=["until-train", "until-pack", "all", "keep-going"],
)
def test_naming_errors_refuse_every_target(tmp_path, targets, options):
    twin_folder(tmp_path)
    run = run_snakemake(tmp_path, {"dir": "data", "n_epochs": 1}, *options, targets=targets)
    assert run.returncode != 0
    assert "share the base name" in run.stderr and "twin.tif" in run.stderr
    assert "Traceback" not in run.stderr
    made = results_files(tmp_path)
    assert not [f for f in made if f.startswith(("images/", "trainsets/", "models/", "image_batches/"))], made


def test_a_naming_error_then_its_fix_reruns_nothing_that_was_built(tmp_path):
    folder = tmp_path / "data"
    background(folder, n=3)
    cfg = {"dir": "data"}
    assert run_snakemake(tmp_path, cfg, targets=["pack"]).returncode == 0
    built = {f: (tmp_path / "results" / f).stat().st_mtime_ns for f in results_files(tmp_path)}
    save(folder / "stray_masks.tif", cells())  # a label file without its image
    run = run_snakemake(tmp_path, cfg, targets=["pack"])
    assert run.returncode != 0 and "label file has no image" in run.stderr
    assert {f: (tmp_path / "results" / f).stat().st_mtime_ns for f in built} == built, "nothing rewritten"
    (folder / "stray_masks.tif").unlink()
    assert dry_run_jobs(tmp_path, cfg, "pack") == {}, "the earlier versions are complete and current again"


def test_unsigned_64_bit_labels_are_prepared(tmp_path):
    folder = tmp_path / "data"
    background(folder)
    lab = cells(n=6).astype(np.uint64)
    lab[lab > 0] += np.uint64(2**63)  # values at and above 2**63
    lab[lab == lab.max()] = np.uint64(2**64 - 1)
    write_pair(folder, "wide", lab=lab)
    assert tifffile.imread(folder / "wide_masks.tif").dtype == np.uint64
    run = run_snakemake(
        tmp_path, {"dir": "data", "split": {"test_fraction": 0.0, "min_test": 0}}, targets=["pack"]
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (prepared,) = (tmp_path / "results/images/wide").glob("*/wide_masks.tif")
    assert sorted(np.unique(tifffile.imread(prepared))) == list(range(7))


def test_a_lying_tiff_header_is_refused_without_reading_it(tmp_path):
    folder = tmp_path / "data"
    background(folder, n=3)
    path = folder / "huge.tif"
    write_pair(folder, "huge")
    tifffile.imwrite(path, np.zeros((16, 16), np.uint16))
    with tifffile.TiffFile(path, mode="r+b") as tif:  # claims 150000 x 150000 uint16: 42 GiB
        tif.pages[0].tags["ImageWidth"].overwrite(150000)
        tif.pages[0].tags["ImageLength"].overwrite(150000)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"dir": "data"}))
    # Peak memory of every process snakemake starts, measured by a wrapper of its own.
    code = (
        "import resource, subprocess, sys\n"
        "res = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(res.stderr)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(res.returncode)\n"
    )
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--cores",
        "2",
    ]
    cmd += ["--configfile", "run.yaml", "--until", "validate_inputs"]
    run = subprocess.run([sys.executable, "-c", code, *cmd], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode != 0
    assert "huge.tif" in run.stderr and "150000x150000" in run.stderr and "crop or tile" in run.stderr
    peak_mb = int(run.stdout.split()[-1]) / 1024
    assert peak_mb < 1024, f"peak memory {peak_mb:.0f} MB"


def test_lower_case_true_on_the_command_line_works(tmp_path):
    background(tmp_path / "data", n=3)
    run = run_snakemake(tmp_path, {"dir": "data"}, "-n", "--config", "RAdam=true", "packing={enabled: no}")
    assert run.returncode == 0, run.stderr[-2000:]


def input_case(case):
    def setup(work):
        folder = work / "data"
        # Two valid pairs, named to sort first and end no batch: all pairs are in one batch.
        for name in ("0ok0", "0ok1"):
            write_pair(folder, name, lab=cells(n=5))
        blamed, code, overrides = case(folder)
        # No held-out image: training and held-out images are never in one batch.
        return {"dir": "data", "split": {"test_fraction": 0.0, "min_test": 0}, **overrides}, blamed, code

    setup.__name__ = case.__name__
    return setup


def config_case(text, blamed, words):
    def setup(work):
        background(work / "data", n=3)
        (work / "my.yaml").write_text(text)
        return None, blamed, words

    return setup


CONFIG_CASES = {
    "unknown_key": config_case("dir: data\nn_epoch: 10\n", "n_epoch", "did you mean 'n_epochs'"),
    "not_a_boolean": config_case("dir: data\nRAdam: maybe\n", "RAdam", "write true or false"),
    "duplicate_key": config_case("dir: data\nn_epochs: 4000\nn_epochs: 10\n", "my.yaml, line 3", "keep one"),
    "python_tag": config_case(
        "dir: data\nn_epochs: !!python/name:os.getpid\n", "my.yaml, line 2", "remove the tag"
    ),
    "non_square_tyx": config_case("dir: data\ntyx: [96, 128]\n", "tyx", "square"),
    "non_cubic_3d_tyx": config_case("dir: data\ndim: 3\ntyx: [16, 32, 32]\n", "not a cube", "[32, 32, 32]"),
    "yaml_word_as_experiment": config_case(
        "dir: data\nexperiments:\n  yes:\n    n_epochs: 2\n", "my.yaml, line 3", "quote it: 'yes':"
    ),
    "more_folds_than_images": config_case(
        "dir: data\ncross_validation:\n  folds: 5\n", "cross_validation.folds is 5", "use at most"
    ),
    "yaml_number_as_key": config_case("dir: data\n1: 2\n", "my.yaml, line 2", "quote it: '1':"),
    "dataloader_without_workers": config_case("dir: data\ndataloader: true\n", "num_workers", "num_workers"),
    "missing_dir": config_case("dir: nowhere\n", "nowhere", "is not a folder"),
    "nchan_against_channels": config_case("dir: data\nnchan: 3\n", "nchan", "set nchan: 1"),
    "filter_with_extension": config_case(
        "dir: data\nmask_filter: _masks.tif\n", "mask_filter", "use '_masks'"
    ),
    "builtin_model_settings": config_case(
        "dir: data\npretrained_model: cyto\n", "cyto needs nchan: 2", "chan2: 1"
    ),
    "misspelt_builtin_model": config_case(
        "dir: data\npretrained_model: bact_phase_omi\n", "bact_phase_omi", "did you mean 'bact_phase_omni'"
    ),
}
CORPUS = {c.__name__[5:]: input_case(c) for c in CASES} | CONFIG_CASES


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_broken_inputs_and_configs_are_refused_with_file_and_fix_and_write_nothing(tmp_path, name):
    config, blamed, what = CORPUS[name](tmp_path)
    if config is not None:  # a bad input: one batch, so that no job of a good batch writes meanwhile
        assert len(batches(p.base for p in discover(tmp_path / "data").pairs)) <= 1
        run = run_snakemake(tmp_path, {**config, "n_epochs": 1})
        words = [Path(blamed).name, "fix"]
    else:
        cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2"]
        run = subprocess.run([*cmd, "--configfile", "my.yaml"], cwd=tmp_path, capture_output=True, text=True)
        words = [blamed, what]
        # A refusal of the config stops the reading of the Snakefile with the message alone: no location
        # frame of the pipeline's files ("WorkflowError in file .../common.smk, line 48:").
        assert "WorkflowError" not in run.stderr and ".smk" not in run.stderr, run.stderr[-3000:]
    assert run.returncode != 0
    for word in words:
        assert word in run.stderr, f"{word!r} not in:\n{run.stderr[-3000:]}"
    assert "Traceback" not in run.stderr
    if (tmp_path / "results").exists():
        assert results_files(tmp_path) == [], "nothing but logs is written"


def test_disk_full_ends_with_one_line_and_the_rerun_finishes(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(results)], capture_output=True
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.decode().strip()}")
    try:
        folder = tmp_path / "data"
        for i in range(4):
            write_pair(folder, f"img{i}", lab=cells((160, 160), n=40), img=None)
        # Fill the small disk, leaving a little room: the first steps fit, a later one does not.
        (results / "filler").write_bytes(b"\0" * (8 * 2**20 - 160 * 2**10))
        cfg = {"dir": "data"}
        run = run_snakemake(tmp_path, cfg, targets=["validate_training_set"])
        assert run.returncode != 0
        lines = [line for line in run.stderr.splitlines() if "no space left on the device" in line]
        assert lines, run.stderr[-3000:]
        assert "free space" in lines[0] and "continues where it stopped" in lines[0]
        assert "Traceback" not in run.stderr and "OSError" not in run.stderr
        (results / "filler").unlink()  # the user frees space, then runs the same command again
        run = run_snakemake(tmp_path, cfg, targets=["validate_training_set"])
        assert run.returncode == 0, run.stderr[-3000:]
        assert list(results.glob("trainsets/*/checks/*/validation.tsv"))
    finally:
        subprocess.run(["umount", "-l", str(results)], check=False)


def test_after_kill_9_of_snakemake_the_readme_rerun_command_finishes(tmp_path):
    folder = tmp_path / "data"
    for i in range(6):
        write_pair(folder, f"img{i}", lab=cells((700, 700), n=900, size=14))
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"dir": "data"}))
    snake = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    target = ["--configfile", "run.yaml", "--until", "validate_training_set"]
    proc = subprocess.Popen([*snake, *target], cwd=tmp_path, start_new_session=True, **quiet)
    deadline = time.time() + 120
    while (
        time.time() < deadline
        and proc.poll() is None
        and not list(tmp_path.glob("results/images/*/.*.tmp-*"))
    ):
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its jobs, as a crash or `kill -9` would
    proc.wait()
    assert list((tmp_path / ".snakemake" / "locks").glob("*")), "a stale lock is left"
    # The README's command after a kill -9: unlock, then the same command again.
    assert subprocess.run([*snake, "--unlock", "--configfile", "run.yaml"], cwd=tmp_path).returncode == 0
    run = subprocess.run([*snake, *target], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert not list(tmp_path.glob("results/images/*/.*.tmp-*")), (
        "temporary folders of killed jobs are removed"
    )
    shutil.rmtree(tmp_path / "results")
