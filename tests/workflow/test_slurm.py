"""The SLURM profile on a real single-node SLURM (Debian slurm-wlm + munge on loopback, started by the test).

Skips, with the reason, where slurm-wlm is not installed (.ci/run installs it), where the test is not root, or
where a real SLURM is configured on the machine (/etc/slurm/slurm.conf that the test did not write).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from helpers import ROOT, run_snakemake

from omnitrain.demo import write_demo

# slow: the longest workflow test (about 4 minutes: four trainings); `make test` runs it, `make ci` does not
pytestmark = [pytest.mark.workflow, pytest.mark.slow]

SLURM = ROOT / "tests" / "workflow" / "slurm"
CONFIG = {
    "dir": "demo",
    "n_epochs": 2,
    "tyx": [64, 64],  # tiny crops: the test is about submission, not the model
    # each experiment's training: its own GPU job; one on two GPUs at once (torch DataParallel)
    "experiments": {"slow_lr": {"learning_rate": 0.05, "dataparallel": True, "resources": {"train_gpus": 2}}},
    "learning_rate": 0.1,
    "RAdam": True,
    "resources": {"train_threads": 1, "train_mem_mb": 4000, "train_runtime": 30},
}
NAMES = ["colony_dense_02", "colony_dense_03", "sparse_02"]


def _why_not() -> str | None:
    missing = [b for b in ("slurmctld", "slurmd", "sbatch", "squeue", "munged") if not shutil.which(b)]
    if missing:
        return f"SLURM is not installed here (no {', '.join(missing)}); .ci/run installs slurm-wlm and munge"
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd/munged for the test needs root"
    if os.path.exists("/etc/slurm/slurm.conf") and not os.path.exists("/etc/slurm/.omnitrain-test"):
        return "a real SLURM is configured on this machine (/etc/slurm/slurm.conf): not touching it"
    return None


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    why = _why_not()
    if why:
        pytest.skip(why)
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(["bash", str(SLURM / "start.sh"), str(state)], capture_output=True, text=True)
    try:
        assert started.returncode == 0, started.stderr
        yield state
    finally:
        subprocess.run(["bash", str(SLURM / "stop.sh"), str(state)], capture_output=True)


def test_demo_runs_through_sbatch_and_equals_a_local_run(slurm, tmp_path):
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    for work in (on_slurm, local):
        write_demo(work / "demo", names=NAMES)
    run = run_snakemake(
        on_slurm,
        CONFIG,
        "--profile",
        str(ROOT / "profiles" / "slurm"),
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--slurm-keep-successful-logs",
        timeout=1500,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    text = run.stdout + run.stderr
    jobs = re.findall(r"rule_(\w+)/(?:[^/\s]+/)?(\d+)\.log\)", text)
    submitted = dict(jobs)
    assert len(re.findall(r"submitted with SLURM jobid \d+", text)) >= 10
    assert {"prepare_images", "pack", "train", "predict_heldout", "evaluate", "register"} <= set(submitted)
    trainings = sorted({job for rule, job in jobs if rule == "train"})
    assert len(trainings) == 2, "one GPU job per experiment's training"
    gres = []
    for train_job in trainings:
        job = subprocess.run(["scontrol", "show", "job", train_job], capture_output=True, text=True).stdout
        assert "TimeLimit=00:30:00" in job, job
        gres += re.findall(r"gres:gpu:(\d)", job)[:1]
    assert sorted(gres) == ["1", "2"], "the dataparallel training asks for resources.train_gpus: 2"
    assert (on_slurm / ".snakemake" / "slurm_logs" / "rule_train").is_dir()

    run = run_snakemake(local, CONFIG, targets=["train"])
    assert run.returncode == 0, run.stderr[-4000:]
    models = [sorted((w / "results/models").iterdir()) for w in (on_slurm, local)]
    assert len(models[0]) == 2 and [m.name for m in models[0]] == [m.name for m in models[1]], "same versions"
    for on_slurm_model, local_model in zip(*models, strict=True):
        cards = [json.loads((m / "model_card.json").read_text()) for m in (on_slurm_model, local_model)]
        assert cards[0]["training_set"]["digest"] == cards[1]["training_set"]["digest"]
        assert cards[0]["model_sha256"] == cards[1]["model_sha256"], "same data, seed, threads: same weights"
