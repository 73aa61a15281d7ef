"""omnitrain/results_lock.py: the results folder held by one run at a time."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from omnitrain.results_lock import ResultsInUse, hold_results

HOLD = "import sys, time; from omnitrain.results_lock import hold_results;"
HOLD += "hold_results(sys.argv[1], sys.argv[2:]); print('held', flush=True); time.sleep(600)"


def holder(results, *targets):
    """A process that holds ``results`` for ``targets`` until it is killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(results), *targets], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_on_one_results_folder_is_refused_naming_the_first_and_the_fix(tmp_path):
    proc = holder(tmp_path / "results")
    try:
        with pytest.raises(ResultsInUse) as refused:
            hold_results(tmp_path / "results", {"all"})
        message = str(refused.value)
        assert f"pid {proc.pid} on " in message and str(tmp_path / "results") in message
        assert "Wait for that run to end" in message and "pipeline.results" in message
        hold_results(tmp_path / "results", {"segment"})  # segmenting while another version trains
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    hold_results(tmp_path / "results", set())  # kill -9 leaves no stale lock


def test_segmenting_holds_its_own_lock_and_a_run_of_both_holds_both(tmp_path):
    proc = holder(tmp_path / "results", "segment")
    try:
        with pytest.raises(ResultsInUse):
            hold_results(tmp_path / "results", {"segment"})
        with pytest.raises(ResultsInUse):
            hold_results(tmp_path / "results", {"segment", "all"})
        hold_results(tmp_path / "results", {"train"})
    finally:
        proc.kill()
        proc.wait()


def test_exporting_holds_its_own_lock(tmp_path):
    proc = holder(tmp_path / "results", "export")
    try:
        with pytest.raises(ResultsInUse):
            hold_results(tmp_path / "results", {"export"})
        hold_results(tmp_path / "results", {"all"})  # exporting one version while the next trains
        hold_results(tmp_path / "results", {"segment"})
    finally:
        proc.kill()
        proc.wait()


def test_a_results_folder_that_cannot_be_written_is_refused_with_the_fix(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ResultsInUse) as refused:
        hold_results(tmp_path / "file" / "results", set())  # below a file: no folder can be made there
    message = str(refused.value)
    assert "cannot write in the results folder" in message and "pipeline.results" in message
