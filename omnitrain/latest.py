"""Pointers to what a target made last: a text file with its path and a link beside it."""

from __future__ import annotations

import os
from pathlib import Path


def point_to(target: str | Path, latest: str | Path, link_name: str) -> Path:
    """Write ``target``'s path into ``latest`` and (re)point the link ``link_name`` beside it at ``target``
    (relative, so a moved results folder keeps it); the link is replaced in one rename. Returns the link."""
    latest = Path(latest)
    latest.write_text(f"{target}\n")
    link, tmp = latest.with_name(link_name), latest.with_name(f".{link_name}.tmp")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(os.path.relpath(target, latest.parent), tmp)
    os.replace(tmp, link)
    return link
