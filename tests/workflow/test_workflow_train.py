"""Training through snakemake on CPU: the model Omnipose loads, its card, the size model, fine-tuning."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
import yaml
from helpers import ROOT, assert_logged, copy_run, dry_run_jobs, run_snakemake, tensorboard_events
from runs import TRAIN as CONFIG

from omnitrain import sizemodel
from omnitrain.training import model_name

pytestmark = pytest.mark.workflow
models = pytest.importorskip("cellpose_omni.models")

NAME = model_name(1, 2, 2, "trainset")
CARD_FIELDS = {
    "nchan", "nclasses", "dim", "diam_mean", "tyx", "flags", "training_set", "device", "versions",
    "wall_seconds", "final_loss", "model_sha256", "seed", "epochs", "checkpoints",
}  # fmt: skip


@pytest.fixture(scope="module")
def trained(train_run):
    """The shared run (tests/conftest.py), read only."""
    return train_run


@pytest.fixture(scope="module")
def changed(train_run, tmp_path_factory):
    """A copy of the shared run for the tests that change it, in order: an edited mask (a second version,
    then back), the registry of both, fine-tuning, a killed training."""
    return copy_run(train_run, tmp_path_factory.mktemp("changed") / "work")


def latest(work):
    """The folder of the latest registered version (its parts are links: model/, trainset/, ...)."""
    return (work / "results" / "latest").resolve()


def record(work) -> dict:
    return json.loads((latest(work) / "record.json").read_text())


def train_log(work) -> str:
    return (work / "results/logs/train" / f"{record(work)['versions']['model']}.log").read_text()


def test_model_loads_in_omnipose_and_segments(trained):
    v = latest(trained)
    card = json.loads((v / "model/model_card.json").read_text())
    assert set(card) >= CARD_FIELDS
    assert card["flags"]["n_epochs"] == 3 and card["epochs"] == 3 and card["device"].startswith("cpu")
    assert card["training_set"]["images"] >= 1 and len(card["training_set"]["files"]) >= 2
    assert card["versions"]["omnipose"] == "1.1.4" and np.isfinite(card["final_loss"])
    # 3 training source images packed into fewer: an epoch is still batch_size (8) crops, not 1 or 2 ...
    assert card["crops_per_epoch"] == 8 and "an epoch is 8 crop(s)" in train_log(trained)
    assert "Omnipose's cellpose_omni.io finds and loads the same pairs" in train_log(trained)
    # ... and too few images to set validation images aside: monitoring is off, and the card says why.
    assert card["monitoring"]["on"] is False and "split.min_train" in card["monitoring"]["reason"]
    # save_every 2 over 3 epochs: checkpoints of epochs 0..2 (the last 9 are always kept) beside the model
    assert f"{NAME}_epoch_2" in card["checkpoints"]
    model = models.CellposeModel(
        gpu=False, pretrained_model=str(v / "model/models" / NAME), nchan=1, nclasses=2, dim=2, omni=True,
        diam_mean=card["diam_mean"],
    )  # fmt: skip
    image = tifffile.imread(v / "trainset/trainset/packed_000.tif")
    masks = model.eval(image, channels=None, omni=True, rescale=None, diameter=None, mask_threshold=0.0,
                       flow_threshold=0.4)[0]  # fmt: skip
    assert masks.max() > 0
    losses = pd.read_csv(v / "model/losses.tsv", sep="\t")
    assert list(losses["epoch"]) == [0, 1, 2] and (losses["eta_seconds"] >= 0).all()
    assert (v / "model/loss_curve.png").stat().st_size > 5000
    log = train_log(trained)
    assert "device: cpu" in log and "epoch 3/3" in log and "ETA" in log


def test_size_model_predicts_training_diameters(trained):
    v = latest(trained)
    params = sizemodel.load(v / "size_model" / f"{NAME}_size.npy")
    assert set(params) == {"A", "smean", "diam_mean", "ymean"} and params["A"].shape == (256,)
    card = json.loads((v / "model/model_card.json").read_text())
    model = models.CellposeModel(gpu=False, pretrained_model=str(v / "model/models" / NAME), nchan=1,
                                 nclasses=2, dim=2, omni=True, diam_mean=card["diam_mean"])  # fmt: skip
    for mask in sorted((v / "trainset/trainset").glob("*_masks.tif")):
        image = tifffile.imread(str(mask).replace("_masks", ""))
        true = sizemodel.diameters([tifffile.imread(mask)])[0]
        predicted = sizemodel.predict(params, sizemodel.style_of(model, image, None))
        assert abs(predicted - true) / true < 0.25, (mask.name, true, predicted)
    table = pd.read_csv(v / "size_model/size_heldout.tsv", sep="\t")
    assert len(table) >= 1 and (table["true_diameter"] > 0).all()


def test_heldout_evaluation_tables_pictures_and_report(trained, tmp_path):
    ev = latest(trained) / "evaluation"
    held = latest(trained) / "heldout"
    summary = pd.read_csv(ev / "summary.tsv", sep="\t")
    assert list(summary["iou_threshold"]) == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    heldout = sorted(p.name[: -len("_masks.tif")] for p in held.glob("*_masks.tif"))
    assert not summary.drop(columns=["ap_low", "ap_high"]).isna().any().any()
    # The 95 % bootstrap interval over held-out images needs two of them; one leaves it empty (and null).
    interval = summary[["ap_low", "ap_high"]]
    assert interval.notna().all().all() if len(heldout) >= 2 else interval.isna().all().all()
    per_image = pd.read_csv(ev / "per_image.tsv", sep="\t")
    assert sorted(per_image["image"]) == heldout and len(heldout) >= 1
    for name in heldout:
        pred = tifffile.imread(latest(trained) / "prediction" / f"{name}_cp_masks.tif")
        true = tifffile.imread(held / f"{name}_masks.tif")
        assert pred.shape == true.shape
    assert (summary["tp"] + summary["fn"] == per_image["n_true"].sum()).all()
    scores = json.loads((ev / "scores.json").read_text())
    assert {"mean_ap", "ap50", "aji", "pq", "images"} <= set(scores) and scores["images"] == len(heldout)
    assert (scores["ap50_low"] is None) == (len(heldout) < 2)
    for picture in ("ap_curve.png", "overlays.png"):
        assert (ev / picture).stat().st_size > 5000
    report = tmp_path / "report.html"  # outside the shared run
    run = run_snakemake(trained, CONFIG, "--report", str(report))
    assert run.returncode == 0, run.stderr[-3000:]
    html = report.read_text(errors="replace")
    for name in (
        "ap_curve.png",
        "overlays.png",
        "summary.tsv",
        "loss_curve.png",
        "preview.png",
        "changes.md",
    ):
        assert name in html, name
    assert ("95 % bootstrap intervals" if len(heldout) >= 2 else "No interval: it needs two or more") in html


def sha256_of(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rerun_with_nothing_changed_does_nothing(trained):
    assert dry_run_jobs(trained, CONFIG) == {}


def copy_of_the_repository(to):
    to.mkdir(parents=True)
    for part in ("Snakefile", "config", "envs", "omnitrain", "profiles", "workflow"):
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, to / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, to / part)
    return to


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {path}"
    path.write_text(text.replace(old, new))


def test_code_edits_rerun_exactly_the_steps_whose_behaviour_changed(trained, tmp_path):
    """On a copy of the repository: the same versions (they do not depend on where the code lives);
    a docstring and a comment edited in a library module plan nothing; a changed function plans the
    steps whose code imports it, and what reads their outputs."""
    repo = copy_of_the_repository(tmp_path / "repo")
    assert dry_run_jobs(trained, CONFIG, root=repo) == {}
    module = repo / "omnitrain" / "imageio.py"  # imported by nearly every step
    edit(module, '"""Reading images', '"""Reading (and writing) images')
    edit(module, "from pathlib import Path\n", "from pathlib import Path  # a new comment\n")
    assert dry_run_jobs(trained, CONFIG, root=repo) == {}
    # Behaviour: one function of omnitrain/evaluation.py, which only evaluate.py imports.
    edit(
        repo / "omnitrain" / "evaluation.py",
        "threshold: float = 0.5) -> np.ndarray:",
        "threshold: float = 0.6) -> np.ndarray:",
    )
    expected = {"evaluate": 1, "register": 1, "registry": 1, "all": 1}  # the predictions are kept
    assert dry_run_jobs(trained, CONFIG, root=repo) == expected


def test_edited_mask_makes_a_new_version_and_leaves_the_old_one_untouched(changed):
    v1 = record(changed)
    manifest = json.loads((latest(changed) / "manifest.json").read_text())
    old_files = {
        path: digest
        for part, files in manifest["files"].items()
        if part != "inputs"
        for path, digest in files.items()
    }
    assert len(old_files) > 20 and any("/models/" in p for p in old_files)
    split = pd.read_csv(changed / v1["paths"]["files"]["split"], sep="\t")
    sid = sorted(split[split.role == "train"].source)[0]
    mask = changed / "demo" / f"{sid}_masks.tif"
    original = mask.read_bytes()
    lab = tifffile.imread(mask)
    lab[lab == lab.max()] = 0  # one cell deleted: same size, new content
    tifffile.imwrite(mask, lab)
    expected = ["validate_inputs", "split", "prepare_images", "pack", "preview", "validate_training_set"]
    expected += ["train"]
    expected += ["fit_size_model", "predict_heldout", "evaluate", "register", "registry", "all"]
    assert dry_run_jobs(changed, CONFIG) == dict.fromkeys(expected, 1)
    try:
        run = run_snakemake(changed, CONFIG)
        assert run.returncode == 0, run.stderr[-4000:]
        v2 = record(changed)
        assert v2["version"] != v1["version"] and v2["parent"] == v1["version"]
        assert v2["versions"]["heldout"] == v1["versions"]["heldout"]  # a training image was edited
        change = json.loads((latest(changed) / "changes.json").read_text())
        assert change["files"] == {"added": [], "removed": [], "modified": [mask.name], "role_changed": []}
        assert change["parameters"] == {} and change["heldout_scores"]["same_heldout_set"]
        assert f"modified: {mask.name}" in (latest(changed) / "changes.md").read_text()
        registry = pd.read_csv(changed / "results/registry.tsv", sep="\t")
        assert list(registry["version"]) == [v1["version"], v2["version"]]
        assert registry["changes"].iloc[1] == "changed: 1 modified"
        assert (changed / "results/latest.txt").read_text().strip() == v2["version"]
        assert {p: sha256_of(changed / p) for p in old_files} == old_files, "version 1 is byte-identical"
    finally:
        mask.write_bytes(original)
    # The original mask again: version 1 is complete on disk, only the latest pointer moves back.
    assert dry_run_jobs(changed, CONFIG) == {"registry": 1, "all": 1}
    assert run_snakemake(changed, CONFIG).returncode == 0
    assert record(changed)["version"] == v1["version"]


def test_registry_command_lists_and_compares_versions(changed):
    from omnitrain.registry import main

    table = pd.read_csv(changed / "results/registry.tsv", sep="\t")
    assert len(table) >= 2
    old, new = table["version"].iloc[0], table["version"].iloc[1]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["--results", str(changed / "results"), "compare", old, new])
    assert f"# Version {new} compared with {old}" in out.getvalue() and "modified: " in out.getvalue()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["--results", str(changed / "results"), "list"])
    assert old in out.getvalue() and new in out.getvalue()


def test_fine_tuning_starts_from_the_pretrained_weights(changed, tmp_path):
    pretrained = tmp_path / "pretrained_model"
    first = record(changed)
    shutil.copyfile(latest(changed) / "model/models" / NAME, pretrained)
    # SGD's learning rate is 0 in epoch 0: one epoch leaves the loaded weights exactly as they were
    # (only batch-norm running statistics move); from random weights nothing would match.
    cfg = {**CONFIG, "pretrained_model": str(pretrained), "n_epochs": 1, "RAdam": False, "train_size": False}
    cfg["tyx"] = [128, 128]  # also checked by the validations (images smaller than tyx): they rerun
    # Training flags changed: the preprocessed data and the held-out set are reused, the model is new.
    jobs = {"validate_inputs": 1, "split": 1, "validate_training_set": 1, "train": 1, "predict_heldout": 1}
    jobs["evaluate"] = 1
    jobs.update(register=1, registry=1, all=1)
    assert dry_run_jobs(changed, cfg) == jobs, "preprocessing is reused"
    run = run_snakemake(changed, cfg)
    assert run.returncode == 0, run.stderr[-4000:]
    new = record(changed)
    assert new["versions"]["trainset"] == first["versions"]["trainset"]
    assert new["versions"]["model"] != first["versions"]["model"] and new["parent"] == first["version"]
    parameters = set(json.loads((latest(changed) / "changes.json").read_text())["parameters"])
    model = {"steps.model.n_epochs", "steps.model.RAdam", "steps.model.pretrained_model", "steps.model.tyx"}
    assert model <= parameters
    before = torch.load(pretrained, map_location="cpu", weights_only=True)
    after = torch.load(latest(changed) / "model/models" / NAME, map_location="cpu", weights_only=True)
    weights = [k for k in before if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert len(weights) > 100 and all(torch.equal(before[k], after[k]) for k in weights)
    card = json.loads((latest(changed) / "model/model_card.json").read_text())
    assert card["pretrained_model"]["path"] == str(pretrained)
    assert "fine-tuning" in train_log(changed)


def test_pretrained_model_with_wrong_nclasses_is_refused_before_training(trained, tmp_path):
    pretrained = tmp_path / "pretrained_model"
    shutil.copyfile(latest(trained) / "model/models" / NAME, pretrained)

    def files(folder):
        return {p for p in (trained / "results" / folder).rglob("*") if p.is_file()}

    models, logs = files("models"), files("logs/train")
    run = run_snakemake(trained, {**CONFIG, "pretrained_model": str(pretrained), "nclasses": 3})
    assert run.returncode != 0
    assert "nclasses = 2 in the model but nclasses: 3 in the config" in run.stderr
    assert files("models") == models, "nothing half-written"
    assert all("epoch 1/" not in p.read_text() for p in files("logs/train") - logs)


def kill_training(work, cfg, epochs_done: int, sig: int):
    """Run the workflow up to `train`; once `epochs_done` epochs are logged, send `sig` to the training job.

    Returns the snakemake exit code, the train log and the model's version folder.
    """
    (work / "run.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2"]
    cmd += ["--configfile", "run.yaml", "--until", "train"]
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started, deadline = time.time(), time.time() + 600
    logs = work / "results/logs/train"
    marker = f"epoch {epochs_done}/{cfg['n_epochs']} "
    while time.time() < deadline and proc.poll() is None:
        fresh = [p for p in logs.glob("*.log") if p.stat().st_mtime >= started]
        if fresh and marker in fresh[0].read_text():
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"training ended before it could be killed:\n{proc.stdout.read()[-3000:]}"
    pids = subprocess.run(
        ["pgrep", "-f", f"{work}/.snakemake/scripts/.*train.py"], capture_output=True, text=True
    )
    for pid in pids.stdout.split():
        os.kill(int(pid), sig)
    out = proc.communicate(timeout=300)[0]
    return proc.returncode, out, fresh[0], work / "results/models" / fresh[0].stem


# SIGTERM's path is also tested in tests/training/test_resume.py (request_stop); CI keeps the SIGKILL case.
@pytest.mark.parametrize(
    "sig", [pytest.param(signal.SIGTERM, marks=pytest.mark.slow), signal.SIGKILL], ids=["SIGTERM", "SIGKILL"]
)
def test_killed_training_resumes_from_its_checkpoint(changed, sig):
    n_epochs, save_every, done = 8 + (sig == signal.SIGKILL), 2, 4
    cfg = {**CONFIG, "n_epochs": n_epochs, "save_every": save_every}
    code, out, log, model_dir = kill_training(changed, cfg, done, sig)
    assert code != 0, out[-3000:]
    checkpoint = torch.load(model_dir / "checkpoint.pt", weights_only=False)
    saved = checkpoint["epoch"] + 1  # epochs kept
    if sig == signal.SIGTERM:
        assert saved >= done and "stop requested" in log.read_text()  # every finished epoch kept
    assert done - saved <= save_every, "at most save_every epochs lost"
    # A per-epoch copy cut short (as by a full disk before the kill): it must not survive the resume.
    copies = sorted((model_dir / "models").glob(f"{NAME}_epoch_*"))
    assert copies, "Omnipose wrote per-epoch copies before the kill"
    cut = copies[0]
    cut.write_bytes(cut.read_bytes()[:1000])
    run = run_snakemake(changed, cfg, targets=["train"])
    assert run.returncode == 0, run.stderr[-4000:]
    assert f"resuming from the checkpoint of epoch {saved}" in log.read_text()
    card = json.loads((model_dir / "model_card.json").read_text())
    assert card["resumed_at_epoch"] == saved and card["epochs"] == n_epochs
    assert card["training_parts"] == 2 and card["wall_seconds"] > card["last_part_seconds"] > 0
    assert cut.name not in card["checkpoints"] and not cut.exists(), "the cut copy is removed, not listed"
    for name in card["checkpoints"]:
        torch.load(model_dir / "models" / name, map_location="cpu", weights_only=True)
    losses = pd.read_csv(model_dir / "losses.tsv", sep="\t")
    assert list(losses["epoch"]) == list(range(n_epochs)) and np.isfinite(losses["loss"]).all()
    # TensorBoard: the killed part's events after its checkpoint are hidden, the resumed part's follow on
    assert_logged(tensorboard_events(model_dir / "tensorboard"), "train/loss", losses.epoch, losses.loss)
    # the table keeps 5 decimals: equal to the checkpoint's losses within that rounding
    np.testing.assert_allclose(losses["loss"].iloc[:saved], checkpoint["losses"], rtol=0, atol=1e-5)
    assert not (model_dir / "checkpoint.pt").exists(), "removed once training is complete"
    # Same format as an uninterrupted model: Omnipose's state_dict, same keys and shapes; Omnipose loads it.
    reference = torch.load(latest(changed) / "model/models" / NAME, map_location="cpu", weights_only=True)
    resumed = torch.load(model_dir / "models" / NAME, map_location="cpu", weights_only=True)
    assert {k: v.shape for k, v in resumed.items()} == {k: v.shape for k, v in reference.items()}
    models.CellposeModel(gpu=False, pretrained_model=str(model_dir / "models" / NAME), nchan=1, nclasses=2,
                         dim=2, omni=True, diam_mean=card["diam_mean"])  # fmt: skip
