"""Snakemake end to end: the demo validates, bad inputs stop the run with one message and no output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import cells, dry_run_jobs, image_for, one, run_snakemake, save, write_pair

from omnitrain.demo import DEMO_SPECS, write_demo

pytestmark = pytest.mark.workflow


VALIDATION = ["validate_inputs"]  # a rule name: its outputs live under a version id


def snakemake(workdir, config: dict, *options: str, targets=()):
    return run_snakemake(workdir, config, *options, targets=targets)


def test_demo_validates(tmp_path):
    write_demo(tmp_path / "demo")
    run = snakemake(tmp_path, {"dir": "demo"}, targets=VALIDATION)
    assert run.returncode == 0, run.stderr
    table = pd.read_csv(one(tmp_path, "results/validation/*/inputs.tsv"), sep="\t")
    assert sorted(table["base"]) == sorted(DEMO_SPECS)
    for row in table.itertuples():
        lab = tifffile.imread(tmp_path / "demo" / f"{row.base}_masks.tif")
        assert row.objects == lab.max() and row.errors == 0
    summary = one(tmp_path, "results/validation/*/inputs_summary.txt").read_text()
    assert f"pairs: {len(DEMO_SPECS)}" in summary
    assert "0 error(s)" in summary and "sparse_02_masks.tif" in summary  # mostly-background warning
    assert dry_run_jobs(tmp_path, {"dir": "demo"}, *VALIDATION) == {}, "nothing is left to do"


def test_a_dry_run_writes_nothing_but_snakemakes_records_and_the_hash_cache(tmp_path):
    write_demo(tmp_path / "demo")
    (tmp_path / "run.yaml").write_text("dir: demo\n")
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    run = snakemake(tmp_path, {"dir": "demo", "experiments": {"radam": {"RAdam": True}}}, "-n")
    assert run.returncode == 0, run.stderr
    assert "train" in run.stdout and "register" in run.stdout
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()} - {
        p.relative_to(tmp_path).as_posix() for p in before
    }
    assert {p for p in written if not p.startswith(".snakemake/")} == {".omnitrain/hashes.tsv"}, written


def test_changed_label_content_reruns_validation(tmp_path):
    for i in range(3):
        write_pair(tmp_path / "data", f"p{i}", lab=cells(n=4 + i))
    assert snakemake(tmp_path, {"dir": "data"}, targets=VALIDATION).returncode == 0
    lab = cells(n=7)
    tifffile.imwrite(tmp_path / "data" / "p1_masks.tif", lab)
    dry = snakemake(tmp_path, {"dir": "data"}, "-n", targets=VALIDATION)
    assert "validate_inputs" in dry.stdout, dry.stdout


def test_bad_inputs_stop_the_run_with_one_message_and_no_output(tmp_path):
    data = tmp_path / "data"
    write_pair(data, "good0")
    write_pair(data, "good1")
    lab = cells()
    write_pair(data, "binary", lab=(lab > 0).astype(np.uint8) * 255)
    write_pair(data, "mismatch", lab=lab, img=image_for(lab)[:50])
    save(data / "nolabel.tif", image_for(lab))
    save(data / "orphan_masks.tif", lab)
    write_pair(data, "floaty", lab=lab.astype(np.float32) / 3, img=image_for(lab))
    (data / "good0_links.txt").write_text("1,42\n")
    run = snakemake(tmp_path, {"dir": "data"})
    assert run.returncode != 0
    message = run.stderr[run.stderr.index("Input validation of") :]
    for name in (
        "binary_masks.tif",
        "mismatch.tif",
        "nolabel.tif",
        "orphan_masks.tif",
        "floaty_masks.tif",
        "good0_links.txt",
    ):
        assert f"data/{name}: " in message, name
    assert message.count("fix:") >= 6
    # Nothing half-written: no validation table, and at most complete per-image outputs of good pairs
    # (a batch job may run beside the validation; it checks each pair before preparing it).
    written = {
        p.relative_to(tmp_path / "results").parts[:2]
        for p in (tmp_path / "results").rglob("*.*")
        if p.name not in (".pipeline.lock", ".segment.lock")  # the run's hold on the folder (no output)
    }
    assert {w for w in written if w[0] != "logs"} <= {("images", "good0"), ("images", "good1")}, written
    log = one(tmp_path, "results/logs/validate_inputs/*.log").read_text()
    assert "binary mask" in log


def test_config_typo_stops_before_any_job(tmp_path):
    write_pair(tmp_path / "data", "a")
    write_pair(tmp_path / "data", "b")
    run = snakemake(tmp_path, {"dir": "data", "n_epoch": 3, "tyx": [224, 200]})
    assert run.returncode != 0
    assert "did you mean 'n_epochs'?" in run.stderr
    assert "not square" in run.stderr  # every problem of the config in the same message
    assert not (tmp_path / "results").exists()
