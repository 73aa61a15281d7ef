"""Deterministic synthetic demo data: phase-contrast-like rod-shaped bacteria.

The demo set is generated, never downloaded: micro-colonies grown cell by cell from
a seed, rasterised into an exact instance label matrix, and rendered with the look of
phase contrast (dark cell bodies, a bright halo around colonies, brighter septa between
touching cells, uneven illumination and noise). Some images are larger than 512 px (so
tiling has work to do), some are sparse (so dense-crop packing has work to do).

Nothing here uses a library for colony growth because none fits: the simulation is a
short rejection sampler on the label raster itself, which is what keeps labels exact.
"""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

#: Image specs of the demo set: name -> (height, width, colonies, cells per colony, sparse cells).
DEMO_SPECS: dict[str, tuple[int, int, int, int, int]] = {
    "colony_large_01": (1100, 960, 3, 110, 6),
    "colony_large_02": (700, 1300, 2, 130, 4),
    "colony_dense_01": (400, 400, 1, 120, 0),
    "colony_dense_02": (420, 380, 1, 100, 2),
    "colony_dense_03": (384, 448, 2, 60, 0),
    "colony_mixed_01": (600, 560, 1, 80, 10),
    "sparse_01": (512, 512, 0, 0, 14),
    "sparse_02": (560, 480, 0, 0, 10),
}


@dataclass(frozen=True)
class Rod:
    """A rod-shaped cell: a capsule of radius ``r`` around the segment ``p0``-``p1``."""

    cy: float
    cx: float
    angle: float
    length: float
    r: float

    def endpoints(self) -> tuple[np.ndarray, np.ndarray]:
        half = max(self.length / 2 - self.r, 0.0)
        d = np.array([np.sin(self.angle), np.cos(self.angle)]) * half
        c = np.array([self.cy, self.cx])
        return c - d, c + d


def rasterize(rod: Rod, shape: tuple[int, int]) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Pixels of ``rod`` inside an image of ``shape``: (bounding-box slices, boolean mask).

    Returns None when any part of the rod lies outside the image (demo cells are whole).
    """
    p0, p1 = rod.endpoints()
    lo = np.floor(np.minimum(p0, p1) - rod.r - 1).astype(int)
    hi = np.ceil(np.maximum(p0, p1) + rod.r + 2).astype(int)
    if lo[0] < 0 or lo[1] < 0 or hi[0] > shape[0] or hi[1] > shape[1]:
        return None
    yy, xx = np.mgrid[lo[0] : hi[0], lo[1] : hi[1]].astype(float)
    seg = p1 - p0
    seg_len2 = float(seg @ seg)
    if seg_len2 == 0:
        t = np.zeros_like(yy)
    else:
        t = np.clip(((yy - p0[0]) * seg[0] + (xx - p0[1]) * seg[1]) / seg_len2, 0, 1)
    dy = yy - (p0[0] + t * seg[0])
    dx = xx - (p0[1] + t * seg[1])
    mask = dy * dy + dx * dx <= rod.r * rod.r
    return (slice(lo[0], hi[0]), slice(lo[1], hi[1])), mask


def _try_place(labels: np.ndarray, rod: Rod, value: int) -> bool:
    placed = rasterize(rod, labels.shape)
    if placed is None:
        return False
    sl, mask = placed
    if np.any(labels[sl][mask]):
        return False
    labels[sl][mask] = value
    return True


def _random_rod(rng: np.random.Generator, cy: float, cx: float, angle: float) -> Rod:
    return Rod(cy, cx, angle, float(rng.uniform(18, 34)), float(rng.uniform(3.4, 4.6)))


def grow_colony(
    labels: np.ndarray,
    rng: np.random.Generator,
    center: tuple[float, float],
    n_cells: int,
    next_label: int,
) -> int:
    """Grow a dense micro-colony of up to ``n_cells`` touching rods around ``center``.

    Daughters are proposed end-to-end or side-by-side next to a random existing cell with
    a small change of angle, and accepted only where they overlap no other cell, so
    neighbours touch without overlapping. Returns the next free label value.
    """
    rods: list[Rod] = []
    first = _random_rod(rng, center[0], center[1], float(rng.uniform(0, np.pi)))
    if _try_place(labels, first, next_label):
        rods.append(first)
        next_label += 1
    failures = 0
    while rods and len(rods) < n_cells and failures < 40 * n_cells:
        # Parents near the colony centre are favoured, so colonies grow compact.
        dist = np.hypot([r.cy - center[0] for r in rods], [r.cx - center[1] for r in rods])
        weights = 1.0 / (1.0 + (dist / 25.0) ** 2)
        parent = rods[int(rng.choice(len(rods), p=weights / weights.sum()))]
        angle = parent.angle + float(rng.normal(0, 0.15))
        child = _random_rod(rng, 0, 0, angle)
        axis = np.array([np.sin(parent.angle), np.cos(parent.angle)])
        normal = np.array([-axis[1], axis[0]])
        if rng.random() < 0.3:
            step = axis * ((parent.length + child.length) / 2 + 0.5) * rng.choice([-1, 1])
        else:
            step = normal * (parent.r + child.r + 0.6) * rng.choice([-1, 1])
            step = step + axis * float(rng.normal(0, parent.length / 4))
        child = Rod(parent.cy + step[0], parent.cx + step[1], angle, child.length, child.r)
        if _try_place(labels, child, next_label):
            rods.append(child)
            next_label += 1
        else:
            failures += 1
    return next_label


def scatter_cells(labels: np.ndarray, rng: np.random.Generator, n_cells: int, next_label: int) -> int:
    """Place ``n_cells`` isolated rods at random, at least a few pixels from any other cell."""
    placed, tries = 0, 0
    while placed < n_cells and tries < 200 * max(n_cells, 1):
        tries += 1
        rod = _random_rod(
            rng,
            float(rng.uniform(0, labels.shape[0])),
            float(rng.uniform(0, labels.shape[1])),
            float(rng.uniform(0, np.pi)),
        )
        halo = Rod(rod.cy, rod.cx, rod.angle, rod.length + 12, rod.r + 6)
        spot = rasterize(halo, labels.shape)
        if spot is None or np.any(labels[spot[0]][spot[1]]):
            continue
        if _try_place(labels, rod, next_label):
            next_label += 1
            placed += 1
    return next_label


def render_phase_contrast(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Phase-contrast-like uint16 image of a label matrix."""
    fg = (labels > 0).astype(np.float32)
    body = ndi.gaussian_filter(fg, 1.0)
    halo = np.clip(ndi.gaussian_filter(fg, 5.0) - fg, 0, None)
    septa = ndi.gaussian_filter(find_boundaries(labels, mode="inner").astype(np.float32) * fg, 0.7)
    h, w = labels.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gy, gx = rng.uniform(-1, 1, size=2)
    illumination = 1.0 + 0.12 * (gy * (yy / h - 0.5) + gx * (xx / w - 0.5))
    img = illumination * (0.55 - 0.38 * body + 0.45 * halo + 0.12 * septa)
    img = img + rng.normal(0, 0.018, size=img.shape).astype(np.float32)
    return np.clip(img * 30000 + 2000, 0, 65535).astype(np.uint16)


def make_image(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The demo image ``name`` and its label matrix (uint16, 0 = background, 1..N = cells)."""
    h, w, colonies, per_colony, sparse = DEMO_SPECS[name]
    rng = np.random.default_rng([seed, *name.encode()])
    labels = np.zeros((h, w), dtype=np.uint16)
    nxt = 1
    for _ in range(colonies):
        center = (float(rng.uniform(0.25, 0.75) * h), float(rng.uniform(0.25, 0.75) * w))
        nxt = grow_colony(labels, rng, center, per_colony, nxt)
    nxt = scatter_cells(labels, rng, sparse, nxt)
    return render_phase_contrast(labels, rng), labels


def write_demo(out_dir: str | Path, seed: int = 0, names: list[str] | None = None) -> list[Path]:
    """Write the demo set as ``<name>.tif`` + ``<name>_masks.tif`` into ``out_dir``.

    Byte-identical for the same seed. Returns the image paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or sorted(DEMO_SPECS):
        img, lab = make_image(name, seed)
        _write_if_changed(out / f"{name}.tif", img)
        _write_if_changed(out / f"{name}_masks.tif", lab)
        written.append(out / f"{name}.tif")
    return written


def _write_if_changed(path: Path, arr: np.ndarray) -> None:
    """Write a TIFF unless the file already holds exactly these bytes (keeps mtimes, so no rerun)."""
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, compression="zlib")
    data = buf.getvalue()
    if not (path.is_file() and path.read_bytes() == data):
        path.write_bytes(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder to write the demo images and masks into")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = write_demo(args.out_dir, args.seed)
    stats = {}
    for p in paths:
        lab = tifffile.imread(p.with_name(p.stem + "_masks.tif"))
        stats[p.stem] = {"shape": list(lab.shape), "cells": int(lab.max())}
    print(json.dumps(stats, indent=1))


if __name__ == "__main__":
    main()
