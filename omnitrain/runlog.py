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
    for handler in (logging.FileHandler(path, mode="w"), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(fmt)
        log.addHandler(handler)
    return log
