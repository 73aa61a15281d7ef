"""Fine-tuning a built-in model through snakemake: the seed's `--pretrained_model cyto --chan 2 --chan2 1` on
RGB images. A loopback server (127.0.0.1) stands for Omnipose's model site and serves a model this pipeline
trained, saved under the built-in's file name: tests never reach the internet."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import threading

import numpy as np
import pandas as pd
import pytest
import tifffile
from helpers import DSB, dry_run_jobs, needs, one, run_snakemake
from kills import run_killing_each

from omnitrain.pretrained import IDS_FILE, IDS_VARIABLE, MIRROR_VARIABLE, git_blob_id

pytestmark = [pytest.mark.workflow, needs(DSB)]
pytest.importorskip("cellpose_omni.models")

COLOUR = [
    "dsb_color_610f32e2d9d2",
    "dsb_color_a0325cb7aa59",
    "dsb_color_af6b6173c594",
    "dsb_color_ebc18868864a",
]
# The seed's cyto example: two channels, green (chan 2) the cytoplasm and red (chan2 1) the nuclei.
CONFIG = {
    "dir": "data",
    "nchan": 2,
    "chan": 2,
    "chan2": 1,
    "n_epochs": 1,
    "tyx": [64, 64],
    "learning_rate": 0.1,
    "RAdam": True,
    "packing": {
        "enabled": False
    },  # the training set is then the images themselves: channels compared exactly
    "monitor": {"every": 0},
    "resources": {"train_threads": 2},
}


class Requests(http.server.SimpleHTTPRequestHandler):
    served: list[str] = []

    def log_message(self, format, *args):  # noqa: A002 (http.server's name)
        Requests.served.append(self.path)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Omnipose's model site on 127.0.0.1 (a folder served over HTTP), its URL set as the mirror, and an empty
    Omnipose model folder; yields (work folder, served folder, base URL, server)."""
    work = tmp_path_factory.mktemp("pretrained")
    (work / "data").mkdir()
    for name in COLOUR:
        for suffix in (".tif", "_masks.tif"):
            shutil.copyfile(DSB / f"{name}{suffix}", work / "data" / f"{name}{suffix}")
    served = work / "site"
    served.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Requests, directory=str(served))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    # The served file is not Omnipose's cyto: the table of git blob ids the download checks holds its id.
    env = {
        MIRROR_VARIABLE: base,
        "CELLPOSE_LOCAL_MODELS_PATH": str(work / "omnipose_models"),
        IDS_VARIABLE: str(work / "ids.tsv"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield work, served, base, httpd
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    httpd.shutdown()
    httpd.server_close()


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def fine_tuned(site):
    """A two-channel model trained from scratch, served as `cytotorch_0`, then `pretrained_model: cyto`."""
    work, served, base, _ = site
    run = run_snakemake(work, CONFIG, targets=("train",))
    assert run.returncode == 0, run.stderr[-4000:]
    card = json.loads(one(work / "results/models", "*/model_card.json").read_text())
    assert card["pretrained_model"] is None and card["nchan"] == 2
    shutil.copyfile(work / card["model"], served / "cytotorch_0")  # (relative to the working directory)
    own_id = f"cytotorch_0\t{git_blob_id(served / 'cytotorch_0')}"
    lines = IDS_FILE.read_text().splitlines()
    (work / "ids.tsv").write_text(
        "\n".join(own_id if line.startswith("cytotorch_0\t") else line for line in lines)
    )
    Requests.served.clear()
    tuned = {**CONFIG, "pretrained_model": "cyto"}
    run = run_snakemake(work, tuned)
    assert run.returncode == 0, run.stderr[-4000:]
    return work, tuned


def test_the_training_set_has_green_then_red_as_omnipose_expects(fine_tuned):
    work, _ = fine_tuned
    trainset = one(work / "results/trainsets", "*/trainset")
    table = pd.read_csv(trainset.parent / "provenance.tsv", sep="\t")
    assert len(table) >= 2
    for row in table.itertuples():
        image = tifffile.imread(trainset / f"{row.image}.tif")
        rgb = tifffile.imread(work / "data" / f"{row.source}.tif")  # YXC
        source = rgb[row.src_y0 : row.src_y1, row.src_x0 : row.src_x1]
        assert image.shape == (2, *source.shape[:2])  # a tile of its source, channel first
        np.testing.assert_array_equal(image[0], source[..., 1])  # channel 1: green (chan 2), the cytoplasm
        np.testing.assert_array_equal(image[1], source[..., 0])  # channel 2: red (chan2 1), the nuclei


def test_the_builtin_is_downloaded_once_and_recorded(fine_tuned, site):
    work, served, base, _ = site
    assert Requests.served == ["/cytotorch_0"], "one download, of Omnipose's file name"
    in_omnipose = work / "omnipose_models" / "cytotorch_0"
    assert sha256(in_omnipose) == sha256(served / "cytotorch_0")
    record = json.loads(one(work / "results/pretrained", "*/pretrained.json").read_text())
    assert record["downloaded"] is True and record["url"] == f"{base}/cytotorch_0"
    assert record["sha256"] == sha256(served / "cytotorch_0") and record["omnipose_file"] == str(in_omnipose)
    assert record["git_blob_id"] == git_blob_id(served / "cytotorch_0")  # the id checked against the table
    latest = (work / "results/latest").resolve()
    card = json.loads((latest / "model/model_card.json").read_text())
    start = card["pretrained_model"]
    assert start["name"] == "cyto" and start["url"] == f"{base}/cytotorch_0"
    assert start["sha256"] == record["sha256"] and card["nchan"] == 2 and card["diam_mean"] == 30
    assert start["git_blob_id"] == record["git_blob_id"]
    log = (
        work
        / "results/logs/train"
        / f"{json.loads((latest / 'record.json').read_text())['versions']['model']}.log"
    )
    assert "fine-tuning cyto" in log.read_text()
    registry = pd.read_csv(work / "results/registry.tsv", sep="\t").iloc[-1]
    assert registry["pretrained_model"] == "cyto" and registry["pretrained_sha256"] == record["sha256"]


@pytest.mark.parametrize("how", ["job:commit", "run:exit"])
def test_a_killed_download_then_the_same_command_keeps_one_checked_file(fine_tuned, site, tmp_path, how):
    """kill -9 just after the file is in Omnipose's folder (before its record), or once all is written but
    before Snakemake hears of it: the same command then ends with the one file, checked, and its record."""
    work, tuned = fine_tuned
    _, served, _, _ = site
    shutil.copytree(work / "data", tmp_path / "work" / "data")
    work = tmp_path / "work"
    models = tmp_path / "omnipose_models"
    env = {"CELLPOSE_LOCAL_MODELS_PATH": str(models)}
    killed = run_killing_each(
        work, tuned, ["download_pretrained"], targets=("download_pretrained",), env=env, how=[how]
    )
    assert killed == [("download_pretrained", how)]
    assert sorted(p.name for p in models.iterdir()) == ["cytotorch_0"], "one file, no partial download"
    record = json.loads(one(work / "results/pretrained", "*/pretrained.json").read_text())
    assert record["git_blob_id"] == git_blob_id(models / "cytotorch_0") == git_blob_id(served / "cytotorch_0")
    assert record["omnipose_file"] == str(models / "cytotorch_0")
    assert not list((work / "results").rglob("*.tmp*"))


def test_a_second_run_downloads_nothing_even_offline(fine_tuned, site):
    work, tuned = fine_tuned
    _, _, _, httpd = site
    httpd.shutdown()  # the site is gone: nothing listens on its port
    httpd.server_close()
    Requests.served.clear()
    changed = {**tuned, "learning_rate": 0.05}
    jobs = dry_run_jobs(work, changed)
    assert jobs.get("train") == 1 and "download_pretrained" not in jobs
    run = run_snakemake(work, changed, targets=("train",))
    assert run.returncode == 0, run.stderr[-4000:]
    assert Requests.served == []
    records = [json.loads(p.read_text()) for p in (work / "results/pretrained").glob("*/pretrained.json")]
    assert len(records) == 1


def test_offline_download_names_the_url_and_path_and_trains_nothing(fine_tuned, site, tmp_path):
    """A built-in not in Omnipose's model folder, with no site: one message, and no training output."""
    work, tuned = fine_tuned
    _, _, base, httpd = site
    httpd.server_close()
    models_before = sorted((work / "results/models").iterdir())
    os.environ["CELLPOSE_LOCAL_MODELS_PATH"] = str(tmp_path / "empty_models")
    try:
        run = run_snakemake(work, {**tuned, "pretrained_model": "cyto2"})
    finally:
        os.environ["CELLPOSE_LOCAL_MODELS_PATH"] = str(work / "omnipose_models")
    assert run.returncode != 0
    assert (
        f"{base}/cyto2torch_0" in run.stderr and str(tmp_path / "empty_models" / "cyto2torch_0") in run.stderr
    )
    assert "Training from cyto2 did not start" in run.stderr and "Traceback" not in run.stderr
    assert sorted((work / "results/models").iterdir()) == models_before
    assert len(list((work / "results/pretrained").glob("*/pretrained.json"))) == 1, "cyto's only"


def test_the_two_channel_model_exports_a_package_that_passes_bioimageio_test(fine_tuned):
    """The package of a model with two channels (green then red, from RGB files): its test tensors have both,
    and bioimageio.core reproduces them; its masks score as the pipeline's did."""
    pytest.importorskip("bioimageio.core")
    import zipfile

    import yaml

    work, tuned = fine_tuned
    run = run_snakemake(work, tuned, "export")
    assert run.returncode == 0, run.stderr[-4000:]
    package = (work / "results/exports/latest.zip").resolve()
    made = json.loads((package.parent / "export.json").read_text())
    assert made["bioimageio_test"] == "passed"
    with zipfile.ZipFile(package) as z:
        rdf = yaml.safe_load(z.read("rdf.yaml"))
        test_input = np.load(z.open(rdf["inputs"][0]["test_tensor"]["source"]))
    assert rdf["inputs"][0]["axes"][1]["channel_names"] == ["channel0", "channel1"]
    assert test_input.shape[:2] == (1, 2)
    assert rdf["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]["nbase"][0] == 2
    held_out = made["heldout"]
    assert held_out["package"]["ap50"] == pytest.approx(held_out["pipeline"]["ap50"], abs=0.02)
