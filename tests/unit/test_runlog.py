"""OS errors of a step reach the user as one line: step, path, what to do, and that a rerun continues."""

from __future__ import annotations

import errno
import subprocess
import sys
from types import SimpleNamespace

import pytest

from omnitrain.runlog import os_error_message, run_step


def test_disk_full_names_the_step_the_path_and_the_fix(tmp_path):
    exc = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.tif"))
    message = os_error_message("prepare_images", exc)
    assert message.startswith("prepare_images: no space left on the device while writing")
    assert str(tmp_path / "x.tif") in message and "MB free" in message
    assert "free space" in message and "continues where it stopped" in message
    # torch says it without an errno
    torch_exc = RuntimeError(
        "[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file"
    )
    assert "no space left" in os_error_message("train", torch_exc, str(tmp_path / "model"))
    assert "Permission denied" in os_error_message(
        "pack", PermissionError(errno.EACCES, "Permission denied", "/r")
    )
    assert os_error_message("pack", ValueError("a bug")) is None
    assert os_error_message("pack", RuntimeError("another bug")) is None


def test_run_step_ends_an_os_error_with_one_line_and_keeps_tracebacks_of_bugs(tmp_path):
    def full(_sm):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.tsv"))

    sm = SimpleNamespace(rule="pack", output=[str(tmp_path / "out.tsv")])
    with pytest.raises(SystemExit) as info:
        run_step(full, sm)
    assert info.value.code == 1

    def bug(_sm):
        raise KeyError("n_epochs")

    with pytest.raises(KeyError):
        run_step(bug, sm)


def test_a_script_on_a_full_disk_prints_one_line_and_no_traceback(tmp_path):
    code = (
        "import errno, sys; from types import SimpleNamespace; from omnitrain.runlog import run_step\n"
        "def main(sm):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device', sys.argv[1])\n"
        "run_step(main, SimpleNamespace(rule='train', output=[sys.argv[1]]))\n"
    )
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m")], capture_output=True, text=True)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0 and "train: no space left" in res.stderr


def test_a_problem_of_a_said_class_ends_the_step_with_its_message_only(tmp_path):
    code = (
        "import sys; from types import SimpleNamespace; from omnitrain.runlog import get_logger, run_step\n"
        "class Problem(LookupError): pass\n"
        "def main(sm):\n"
        "    get_logger(sys.argv[1])\n"
        "    raise Problem('results/versions/x/record.json is not a readable record: delete it')\n"
        "run_step(main, SimpleNamespace(rule='registry', output=[]), said=(Problem,))\n"
    )
    log = tmp_path / "registry.log"
    res = subprocess.run([sys.executable, "-c", code, str(log)], capture_output=True, text=True)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.count("is not a readable record: delete it") == 1
    assert "is not a readable record: delete it" in log.read_text()
    problem = type("Problem", (LookupError,), {})
    with pytest.raises(KeyError):  # other exceptions keep their tracebacks, a KeyError (a LookupError) too
        run_step(lambda _sm: {}["n_epochs"], SimpleNamespace(rule="registry", output=[]), said=(problem,))
