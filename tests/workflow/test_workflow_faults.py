"""kill -9 in every step, then the same command: the run completes, each version is registered once, the
bytes of finished versions stay as they were, drafts and their corrections survive (tests/kills.py kills)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import pandas as pd
import pytest
import tifffile
import yaml
from helpers import ROOT, copy_run, dry_run_jobs, run_snakemake
from kills import run_killing_each
from runs import EXPERIMENTS, TRAIN, TRAIN_NAMES

from omnitrain.demo import NEW_SPECS, make_image, write_demo, write_unlabelled
from omnitrain.imageio import write_tiff

pytestmark = pytest.mark.workflow
pytest.importorskip("cellpose_omni.models")
NEW = sorted(NEW_SPECS)


def manifest_files(work, version: str) -> dict[str, str]:
    """{path: sha256} of every file a registered version's manifest lists (its inputs excepted)."""
    manifest = json.loads((work / "results/versions" / version / "manifest.json").read_text())
    return {
        path: digest
        for part, files in manifest["files"].items()
        if part != "inputs"
        for path, digest in files.items()
    }


def on_disk(work, files: dict[str, str]) -> dict[str, str]:
    return {path: hashlib.sha256((work / path).read_bytes()).hexdigest() for path in files}


def registry(work) -> list[str]:
    return list(pd.read_csv(work / "results/registry.tsv", sep="\t")["version"])


def leftovers(work) -> list[str]:
    """Temporary files and folders of killed jobs still under results/."""
    return sorted(str(p.relative_to(work)) for p in (work / "results").rglob("*.tmp*"))


def delete_one_cell(mask) -> None:
    lab = tifffile.imread(mask)
    lab[lab == lab.max()] = 0
    tifffile.imwrite(mask, lab)


def test_kill_9_in_each_training_step_then_the_same_command_completes(train_run, tmp_path):
    """One training and one held-out mask edited: every step of the run makes a new version, and each is
    killed once in turn (13 kills, then the run that completes)."""
    work = copy_run(train_run, tmp_path / "work")
    v1 = (work / "results/latest.txt").read_text().strip()
    finished = manifest_files(work, v1)
    assert on_disk(work, finished) == finished
    split = pd.read_csv(next((work / "results/splits").glob("*/split.tsv")), sep="\t")
    for role in ("train", "test"):
        delete_one_cell(work / "demo" / f"{sorted(split[split.role == role].source)[0]}_masks.tif")
    steps = list(dry_run_jobs(work, TRAIN))
    steps.remove("all")
    assert {"validate_inputs", "prepare_images", "pack", "heldout_set", "train", "fit_size_model"} < set(
        steps
    )
    assert {"predict_heldout", "evaluate", "register", "registry"} < set(steps)

    killed = run_killing_each(work, TRAIN, steps)

    assert sorted(rule for rule, _ in killed) == sorted(steps)
    v2 = (work / "results/latest.txt").read_text().strip()
    assert registry(work) == [v1, v2], "each version registered once"
    assert on_disk(work, finished) == finished, "the finished version's bytes are unchanged"
    made = manifest_files(work, v2)
    assert on_disk(work, made) == made, "the new version is whole: every file as its manifest says"
    losses = pd.read_csv(work / next(p for p in made if p.endswith("/losses.tsv")), sep="\t")
    assert list(losses["epoch"]) == list(range(TRAIN["n_epochs"])), "each epoch once"
    assert leftovers(work) == []
    assert dry_run_jobs(work, TRAIN) == {}, "nothing left to do"


@pytest.mark.slow  # 70 s on 2 cores; its steps are those of the training chain above, by run
def test_kill_9_in_each_step_of_experiments_and_folds_then_the_same_command_completes(
    experiments_run, tmp_path
):
    """Two experiments x two folds, a held-out mask edited: four new versions and a new leaderboard."""
    work = copy_run(experiments_run[0], tmp_path / "work")
    before = registry(work)
    finished = {v: manifest_files(work, v) for v in before}
    split = pd.read_csv(next((work / "results/splits").glob("*/split.tsv")), sep="\t")
    delete_one_cell(work / "demo" / f"{sorted(split[split.role == 'test'].source)[0]}_masks.tif")
    steps = list(dry_run_jobs(work, EXPERIMENTS))
    steps.remove("all")
    assert {"heldout_set", "predict_heldout", "evaluate", "register", "registry", "leaderboard"} <= set(steps)
    assert "train" not in steps, "the trainings are reused"

    killed = run_killing_each(work, EXPERIMENTS, steps)

    assert sorted(rule for rule, _ in killed) == sorted(steps)
    after = registry(work)
    assert len(after) == len(set(after)) == len(before) + 4 and after[: len(before)] == before
    assert {v: on_disk(work, files) for v, files in finished.items()} == finished
    board = pd.read_csv(work / "results/leaderboard_runs.tsv", sep="\t")
    assert len(board) == 4 and set(board["version"]) == set(after[len(before) :]), "each run once"
    assert leftovers(work) == []


def test_kill_9_in_each_segmenting_step_keeps_the_corrected_drafts(demo_trained, tmp_path):
    """A set segmented and one of its drafts corrected; two more images make a new set, whose steps are each
    killed once in turn: the new set completes, the first set and its correction are as they were."""
    work, config, _ = demo_trained
    work = copy_run(work, tmp_path / "work")
    config = {**config, "segment_dir": "new"}
    write_unlabelled(work / "new", names=NEW[:2])
    assert run_snakemake(work, config, "segment").returncode == 0
    first = (work / "results/segmentations/latest").resolve()
    write_tiff(first / "drafts" / f"{NEW[0]}_masks.tif", make_image(NEW[0])[1])  # the correction
    kept = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    write_unlabelled(work / "new", names=NEW[2:])
    steps = ["segment_images", "segment_set", "segment_latest"]

    killed = run_killing_each(work, config, steps, "segment", how=["job:commit", "run:exit", "job:exit"])

    assert sorted(rule for rule, _ in killed) == sorted(steps)
    assert {p: p.read_bytes() for p in first.rglob("*") if p.is_file()} == kept, "the first set is untouched"
    latest = (work / "results/segmentations/latest").resolve()
    assert latest != first and latest.parent == first.parent
    table = pd.read_csv(latest / "segmentation.tsv", sep="\t")
    assert sorted(table["image"]) == [f"{n}.tif" for n in NEW]
    assert sorted(p.name for p in (latest / "drafts").iterdir()) == sorted(
        f"{n}{suffix}.tif" for n in NEW for suffix in ("", "_masks")
    )
    assert leftovers(work) == []


@pytest.mark.slow
def test_kill_9_in_each_export_step_then_the_same_command_makes_one_tested_package(demo_trained, tmp_path):
    """`snakemake export` killed in its packaging job and in its pointer: the same command then makes the
    package, tested, with nothing of the killed jobs left behind."""
    pytest.importorskip("bioimageio.core")
    work, config, version = demo_trained
    work = copy_run(work, tmp_path / "work")
    steps = ["export_model", "export_latest"]

    killed = run_killing_each(work, config, steps, "export", how=["job:commit", "run:exit"])

    assert sorted(rule for rule, _ in killed) == sorted(steps)
    packages = list((work / "results/exports").glob("*/*/*.zip"))
    assert [p.name for p in packages] == [f"omnipose_{version}.zip"]
    assert (work / "results/exports/latest.zip").resolve() == packages[0]
    made = json.loads((packages[0].parent / "export.json").read_text())
    assert made["bioimageio_test"] == "passed"
    assert leftovers(work) == [] and not list((work / "results/exports").rglob(".staged"))
    assert dry_run_jobs(work, config, goal="export") == {}


def test_two_working_directories_on_one_results_folder_take_turns(tmp_path):
    """A run from a second working directory that shares the first's results folder is refused, naming the
    first run, while that one trains; once it has ended, the same command adds its version to the registry."""
    shared = tmp_path / "shared"
    first, second = tmp_path / "first", tmp_path / "second"
    for work in (first, second):
        write_demo(work / "demo", names=TRAIN_NAMES)
    config = {**TRAIN, "n_epochs": 8, "train_size": False, "pipeline": {"results": str(shared)}}
    (first / "run.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2"]
    log = (tmp_path / "first.log").open("w")  # a file, not a pipe: nobody reads it while the run goes on
    running = subprocess.Popen(
        [*command, "--configfile", "run.yaml"], cwd=first, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.time() + 300
    while running.poll() is None and time.time() < deadline and not list(shared.glob("logs/train/*.log")):
        time.sleep(0.2)
    assert running.poll() is None, "the first run ended before the second started"

    refused = run_snakemake(second, {**config, "learning_rate": 0.05})

    assert refused.returncode != 0 and running.poll() is None
    assert f"{shared} is in use by another run of this pipeline (pid {running.pid} on " in refused.stderr
    assert f"in {first}, since" in refused.stderr and "pipeline.results" in refused.stderr
    assert "Traceback" not in refused.stderr and "WorkflowError" not in refused.stderr
    assert "localrule" not in refused.stderr, "no job of the second run started"
    code = running.wait(timeout=600)
    log.close()
    assert code == 0, (tmp_path / "first.log").read_text()[-3000:]
    v1 = (shared / "latest.txt").read_text().strip()
    again = run_snakemake(second, {**config, "learning_rate": 0.05})
    assert again.returncode == 0, again.stderr[-3000:]
    v2 = (shared / "latest.txt").read_text().strip()
    versions = list(pd.read_csv(shared / "registry.tsv", sep="\t")["version"])
    assert v2 != v1 and versions == [v1, v2], "each run's version registered once"
