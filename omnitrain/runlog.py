"""Logging for the rules' scripts: to the rule's log file and to stderr."""

from __future__ import annotations

import logging
import sys


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
