"""Label matrices and links: relabelling to 1..N, links files, dtype choice."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

Link = tuple[int, ...]


def label_dtype(n: int) -> np.dtype:
    """The smallest unsigned dtype Omnipose reads for labels up to ``n``."""
    return np.dtype(np.uint16) if n < 2**16 else np.dtype(np.uint32)


def relabel(lab: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Labels renumbered 1..N in order of their old value; returns (labels, {old: new}).

    Any integer dtype works as it is, unsigned 64-bit values at or above 2**63 included (a cast to
    int64 would wrap them negative); floating labels with whole values (validation refused the others)
    are rounded first.
    """
    if np.issubdtype(lab.dtype, np.floating):
        lab = np.rint(lab).astype(np.int64)
    values, inverse = np.unique(lab, return_inverse=True)
    inverse = inverse.reshape(lab.shape)
    if values.size and values[0] == 0:
        old = values[1:]
    else:  # no background pixel: every value is an object
        old, inverse = values, inverse + 1
    mapping = {int(o): i + 1 for i, o in enumerate(old.tolist())}
    return inverse.astype(label_dtype(len(old))), mapping


def read_links(path: str | Path | None) -> list[Link]:
    """Links of a ``<base>_links.txt`` file (Omnipose's CSV of label integers); [] when absent."""
    if path is None or not Path(path).is_file():
        return []
    with open(path, newline="") as fh:
        return [tuple(int(v) for v in row) for row in csv.reader(fh) if row and "".join(row).strip()]


def write_links(path: str | Path, links: Iterable[Link]) -> None:
    """Write links one per line, sorted, so that equal link sets give equal bytes."""
    rows = sorted(set(links))
    Path(path).write_text("".join(",".join(str(v) for v in row) + "\n" for row in rows))


def remap_links(links: Iterable[Link], mapping: Mapping[int, int]) -> list[Link]:
    """Links in new label numbers; a link that names a label no longer present is dropped."""
    out = []
    for link in links:
        if all(v in mapping for v in link):
            out.append(tuple(mapping[v] for v in link))
    return sorted(set(out))
