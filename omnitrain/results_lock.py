"""One run at a time on a results folder: Snakemake's own lock is per working directory, and two runs from two
working directories that share one ``pipeline.results`` would both register versions and write one registry
table. Imported by the workflow's ``onstart`` only (no step's code: changing it re-versions nothing).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path


class ResultsInUse(Exception):
    """Another run holds the results folder, or it cannot be written: the message says which, and the fix."""


_held: dict[str, int] = {}


def hold_results(results: Path, targets, warn=None) -> None:
    """Take ``results`` for the run of Snakemake's ``targets`` in this process, or raise ResultsInUse naming
    the run that holds it. `snakemake segment` and `snakemake export` take locks of their own, and every
    other target the pipeline's: segmenting with a version, or exporting it, while the next one trains stays
    possible.

    A POSIX lock on ``<results>/.<kind>.lock``, held until this process ends: the system releases it when
    the process dies (kill -9 included), so no stale lock is ever left, and it works over NFS (lockd). A
    filesystem that cannot lock at all is said through ``warn`` (the run goes on unguarded)."""
    targets = set(targets)
    own = [kind for kind in ("segment", "export") if kind in targets]
    kinds = own + ["pipeline"] * bool(targets - set(own) or not targets)
    for kind in kinds:
        _hold(Path(results), kind, warn)


def _hold(results: Path, kind: str, warn) -> None:
    path = results / f".{kind}.lock"
    if str(path) in _held:
        return
    try:
        results.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise ResultsInUse(
            f"cannot write in the results folder {results} ({exc.strerror}): make it writable, or set"
            " pipeline.results in the config to a folder you can write"
        ) from None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EAGAIN):  # no locks on this filesystem (NFS without lockd)
            os.close(fd)
            if warn is not None:
                warn(
                    f"Note: {results} cannot be locked ({exc.strerror}): nothing stops a run from another"
                    " working directory on the same results folder; run one at a time"
                )
            return
        holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "a process that wrote nothing yet"
        os.close(fd)
        raise ResultsInUse(
            f"{results} is in use by another run of this pipeline ({holder}): two runs writing one results"
            " folder could tear its registry. Wait for that run to end, then run this command again; or give"
            " this run a results folder of its own (pipeline.results in the config)"
        ) from None
    os.ftruncate(fd, 0)
    since = time.strftime("%Y-%m-%d %H:%M:%S")
    holder = f"pid {os.getpid()} on {socket.gethostname()}, in {os.getcwd()}, since {since}"
    os.pwrite(fd, f"{holder}\n".encode(), 0)
    _held[str(path)] = fd  # kept open: closing any descriptor of the file would release the lock
