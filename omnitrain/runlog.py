"""Logging for the rules' scripts: to the rule's log file and to stderr."""

from __future__ import annotations

import errno
import logging
import shutil
import sys
from pathlib import Path


def get_logger(path: str, name: str = "omnitrain") -> logging.Logger:
    log = logging.getLogger(name)
    log.handlers.clear()
    log.setLevel(logging.INFO)
    log.propagate = False
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    open(path, "w").close()  # a fresh log; then append-only, as route_omnipose's handler shares the file
    for handler in (logging.FileHandler(path, mode="a"), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(fmt)
        log.addHandler(handler)
    return log


def route_omnipose(path: str) -> None:
    """Send Omnipose's own log lines to the rule's log file, in plain text.

    Importing omnipose installs a coloured stdout handler on the root logger, which would interleave
    Omnipose's every line with Snakemake's console output; the rule's log keeps them all instead.
    Call it after importing cellpose_omni/omnipose.
    """
    root = logging.getLogger()
    root.handlers.clear()
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s omnipose %(name)s: %(message)s", "%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


#: OS errors that mean "no room to write": the fix is to free space, then run again.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
#: What torch says (without an errno) when it cannot write a file, e.g. on a full disk.
TORCH_WRITE_FAILED = ("PytorchStreamWriter failed", "file write failed", "unexpected pos")


def _free_space(path) -> str:
    folder = Path(path) if path else Path.cwd()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return ""
    return f" ({free / 2**20:.0f} MB free there now)"


def os_error_message(step: str, exc: BaseException, where: str | None = None) -> str | None:
    """One line for an OS error of a step: what happened, on which path, what to do; None when the
    error is not the machine's (a bug, bad data): those keep their traceback."""
    path = getattr(exc, "filename", None) or where
    rerun = "then run the same snakemake command again: it continues where it stopped"
    if (
        isinstance(exc, OSError)
        and exc.errno in NO_SPACE
        or (isinstance(exc, RuntimeError) and any(t in str(exc) for t in TORCH_WRITE_FAILED))
    ):
        return (
            f"{step}: no space left on the device while writing {path}{_free_space(path)}: free space on"
            f" that filesystem (or set pipeline.results to a larger one), {rerun}"
        )
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"{step}: {exc.strerror} on {path}: check its permissions (outputs need a writable"
            f" pipeline.results, inputs must be readable), {rerun}"
        )
    if isinstance(exc, OSError) and exc.errno == errno.EIO:
        return f"{step}: input/output error on {path}: check the disk or network filesystem, {rerun}"
    return None


def run_step(main, sm, said: tuple[type[Exception], ...] = ()) -> None:
    """Run a rule script's ``main(snakemake)``; an OS error (disk full, permissions, I/O) ends it with
    one line naming the step, the path and the fix instead of a traceback, and so does an exception of a
    ``said`` class, whose message already says what is wrong and the fix. Snakemake removes the outputs of
    the failed job, so nothing half-written is kept."""
    try:
        main(sm)
    except said as exc:
        _say(str(exc))
        sys.exit(1)
    except (OSError, RuntimeError) as exc:
        where = next(iter(sm.output), None) if len(sm.output) else None
        message = os_error_message(sm.rule, exc, where)
        if message is None:
            raise
        logging.getLogger("omnitrain").info(message)
        sys.stderr.write(f"\n{message}\n")
        sys.exit(1)


def _say(message: str) -> None:
    """One message to the rule's log and to stderr (through the step's logger once it has one)."""
    log = logging.getLogger("omnitrain")
    if log.handlers:
        log.info(f"\n{message}")
    else:
        sys.stderr.write(f"\n{message}\n")
