"""tests/unit holds the tests that neither start snakemake nor train a network, so that the folder runs in
about a minute: a test that does either fails here, naming where it belongs (tests/workflow runs
snakemake, tests/training trains Omnipose through its API)."""

from __future__ import annotations

import subprocess

import pytest
import torch
from guard import starts_snakemake

WHERE = "tests/unit must not {what}: move this test to {folder}"


def _refuse_training(*args, **kwargs):
    # Every training step of Omnipose (and of anything else) runs a backward pass.
    pytest.fail(WHERE.format(what="train a network", folder="tests/training"), pytrace=False)


#: The shared trained runs (tests/conftest.py): set up before any function fixture, so refused by name.
TRAINED_RUNS = {"demo_trained", "train_run", "monitored_run", "experiments_run", "demo3d_run"}


def pytest_runtest_setup(item):
    if TRAINED_RUNS & set(item.fixturenames):
        pytest.fail(WHERE.format(what="use a trained run", folder="tests/workflow"), pytrace=False)


@pytest.fixture(autouse=True)
def no_snakemake_and_no_training(monkeypatch):
    popen_init = subprocess.Popen.__init__

    def checked_popen(self, args, *rest, **kwargs):
        if starts_snakemake(args):
            pytest.fail(WHERE.format(what="start snakemake", folder="tests/workflow"), pytrace=False)
        popen_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", checked_popen)
    monkeypatch.setattr(torch.Tensor, "backward", _refuse_training)
    monkeypatch.setattr(torch.autograd, "backward", _refuse_training)
