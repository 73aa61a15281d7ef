"""The guard of tests/unit (its conftest.py): starting snakemake or training fails the test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from guard import starts_snakemake


def test_snakemake_is_refused_in_every_form():
    assert starts_snakemake([sys.executable, "-m", "snakemake", "-n"])
    assert starts_snakemake(["/opt/venv/bin/snakemake", "--cores", "1"])
    assert starts_snakemake("snakemake --cores 2 all")
    assert starts_snakemake(["bash", "-c", "cd work && snakemake -n"])
    assert not starts_snakemake([sys.executable, "-c", "run_step(main, snakemake)"])
    assert not starts_snakemake(Path(sys.executable)) and not starts_snakemake(b"/bin/true")
    with pytest.raises(pytest.fail.Exception, match="move this test to tests/workflow"):
        subprocess.run([sys.executable, "-m", "snakemake", "--version"], capture_output=True)


def test_other_subprocesses_run():
    done = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True)
    assert done.stdout.strip() == "42"


def test_a_backward_pass_is_refused():
    weight = torch.ones(2, requires_grad=True)
    with pytest.raises(pytest.fail.Exception, match="move this test to tests/training"):
        (weight * 3).sum().backward()
    with pytest.raises(pytest.fail.Exception, match="tests/training"):
        torch.autograd.backward((weight * 3).sum())
