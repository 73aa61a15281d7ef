"""Helpers of the test suite (imported as ``helpers``: tests/ is on pytest's pythonpath): tiny image/label
pairs written to temporary folders, the real data's folders, and running the workflow."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
DSB = SHARED_DATA / "dsb2018_nuclei_subset"
BACT = SHARED_DATA / "omnipose_testfiles_bact_phase"


def needs(path: Path):
    """Skip a test when a folder of ../shared/data is absent."""
    return pytest.mark.skipif(not path.is_dir(), reason=f"real data folder {path} is absent")


def cells(shape=(64, 64), n=4, size=8, start=1) -> np.ndarray:
    """A label matrix with ``n`` separate square objects labelled start..start+n-1."""
    lab = np.zeros(shape, dtype=np.uint16)
    per_row = max(1, (shape[1] - 2) // (size + 4))
    for i in range(n):
        r, c = divmod(i, per_row)
        y, x = 2 + r * (size + 4), 2 + c * (size + 4)
        lab[y : y + size, x : x + size] = start + i
    return lab


def image_for(lab: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (100 + 50 * (lab > 0) + rng.integers(0, 20, lab.shape)).astype(np.uint16)


def write_pair(
    folder: Path, base: str, lab=None, img=None, img_ext=".tif", label_ext=".tif", mask_filter="_masks"
):
    """Write ``<base><img_ext>`` and ``<base><mask_filter><label_ext>``; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    lab = cells() if lab is None else lab
    img = image_for(lab) if img is None else img
    image_path = folder / f"{base}{img_ext}"
    label_path = folder / f"{base}{mask_filter}{label_ext}"
    save(image_path, img)
    if label_ext is not None:
        save(label_path, lab)
    return image_path, label_path


def save(path: Path, arr: np.ndarray) -> None:
    ext = path.suffix.lower()
    if ext in (".tif", ".tiff"):
        tifffile.imwrite(path, arr)
    elif ext == ".npy":
        np.save(path, arr)
    elif ext == ".npz":
        np.savez(path, arr)
    else:
        import imageio.v3 as iio

        iio.imwrite(path, arr)


def run_snakemake(
    workdir: Path, config: dict, *options: str, targets=(), timeout: int = 900, root: Path = ROOT
) -> subprocess.CompletedProcess:
    """Run the workflow (of the repository at ``root``) in ``workdir`` with ``config`` (on top of
    config/config.yaml). ``targets`` are rule names: the default target's jobs up to those rules
    (``--until``, as the README says: the rules' outputs hold versions as wildcards)."""
    (workdir / "run.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), "--cores", "2"]
    cmd += [*options, "--configfile", "run.yaml"] + (["--until", *targets] if targets else [])
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)


def dry_run_jobs(
    workdir: Path, config: dict, *targets: str, root: Path = ROOT, goal: str | None = None
) -> dict[str, int]:
    """{rule: number of jobs} that a dry run would execute (of the target rule ``goal``, e.g. export, when
    given; ``targets`` are --until rules of the default target)."""
    goals = [goal] if goal else []
    run = run_snakemake(workdir, config, *goals, "-n", "--quiet", "rules", targets=targets, root=root)
    assert run.returncode == 0, run.stderr
    jobs = {}
    text = run.stdout + run.stderr
    if "Nothing to be done" in text:
        return jobs
    table = text[text.index("Job stats:") :].splitlines()[3:]
    for line in table:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


def one(root: Path, pattern: str) -> Path:
    """The one path below ``root`` matching a glob: a fresh run has one version of each output."""
    found = sorted(root.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} below {root}, found {[str(p) for p in found]}"
    return found[0]


def copy_run(work: Path, to: Path) -> Path:
    """A copy of a run's work folder (inputs, results, Snakemake's records; links stay links, times stay) for
    a test that changes it: the shared run (tests/conftest.py) stays as it was for the others."""
    shutil.copytree(work, to, symlinks=True)
    return to


def shrink_pairs(folder: Path, size: int = 256) -> None:
    """Cut every image/label pair of ``folder`` to the ``size`` px square around the middle of its objects,
    labels renumbered 1..N: the same kinds of images, at a fraction of what segmenting them costs."""
    from skimage.segmentation import relabel_sequential

    for label_path in sorted(folder.glob("*_masks.tif")):
        image_path = label_path.with_name(label_path.name.replace("_masks", ""))
        lab, img = tifffile.imread(label_path), tifffile.imread(image_path)
        centre = np.argwhere(lab > 0).mean(axis=0).astype(int)
        start = [
            int(np.clip(c - size // 2, 0, max(n - size, 0))) for c, n in zip(centre, lab.shape, strict=True)
        ]
        window = tuple(slice(s, s + size) for s in start)
        tifffile.imwrite(label_path, relabel_sequential(lab[window])[0])
        tifffile.imwrite(image_path, img[window])


# A registered version's record, as register writes it (what segmenting reads of it).
CHANNELS = {"dim": 2, "channel_axis": None, "chan": 0, "chan2": 0, "all_channels": False, "nchan": 1}
CHANNELS |= {"channels": {"select": None}, "validation": {"max_split_fraction": 0.5}}
PREDICTION = {
    "evaluation": {"mask_threshold": 0.0, "flow_threshold": 0.4, "niter": None, "use_size_model": True},
    "use_gpu": "auto",
    "train_size": False,
    "diameter": 0,
    "monitor": {"select": "best"},
}


def write_record(results: Path, version: str, created: str, experiment="base", fold=None, **paths) -> dict:
    rec = {
        "version": version,
        "created": created,
        "experiment": experiment,
        "fold": fold,
        "params": {"steps": {"heldout_image": CHANNELS, "prediction": PREDICTION}},
        "paths": {"files": {"model_file": f"m/{version}", "card": f"m/{version}.json", **paths}},
        "model": {"selected": {"file": f"m/{version}_best", "select": "best"}},
    }
    folder = results / "versions" / version
    folder.mkdir(parents=True)
    (folder / "record.json").write_text(json.dumps(rec))
    return rec


def tensorboard_events(folder: Path):
    """A training's TensorBoard run (omnitrain/board.py), read back by TensorBoard's own EventAccumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # its INFO lines would go through the root handler Omnipose installs, whose formatter fails on them
    logging.getLogger("tensorboard").setLevel(logging.WARNING)
    events = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def assert_logged(events, tag: str, steps, values, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """The scalar ``tag`` has exactly these steps, each once, with these values (as float32 keeps them)."""
    logged = events.Scalars(tag)
    assert [e.step for e in logged] == list(steps), tag
    np.testing.assert_allclose([e.value for e in logged], list(values), rtol=rtol, atol=atol, err_msg=tag)
