"""Deterministic synthetic demo data: phase-contrast-like rod-shaped bacteria, and 3D cell clusters.

The demo set is generated, never downloaded: micro-colonies grown cell by cell from
a seed, rasterised into an exact instance label matrix, and rendered with the look of
phase contrast (dark cell bodies, a bright halo around colonies, brighter septa between
touching cells, uneven illumination and noise). Some images are larger than 512 px (so
tiling has work to do), some are sparse (so dense-crop packing has work to do).

Nothing here uses a library for colony growth because none fits: the simulation is a
short rejection sampler on the label raster itself, which is what keeps labels exact.

The 3D demo set (``--dim 3``, for config/demo3d.yaml) is small fluorescence-like ZYX volumes: clusters
of touching ellipsoidal cells plus scattered ones, rasterised into exact instance labels, with dimmer
boundaries between touching cells, an axial blur stronger than the lateral one, background and noise.
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
#: New images to segment (``--unlabelled``: the images only, as a folder for ``snakemake segment``).
NEW_SPECS: dict[str, tuple[int, int, int, int, int]] = {
    "new_colony_01": (256, 256, 1, 45, 3),
    "new_colony_02": (288, 256, 1, 60, 2),
    "new_colony_03": (256, 320, 2, 25, 4),
    "new_sparse_01": (256, 256, 0, 0, 9),
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
    h, w, colonies, per_colony, sparse = (DEMO_SPECS | NEW_SPECS)[name]
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
    return _write_set(out_dir, names or sorted(DEMO_SPECS), lambda name: make_image(name, seed))


def write_unlabelled(out_dir: str | Path, seed: int = 0, names: list[str] | None = None) -> list[Path]:
    """Write new demo images (:data:`NEW_SPECS`) as ``<name>.tif`` only: images to segment. Their true
    labels are :func:`make_image`'s."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or sorted(NEW_SPECS):
        _write_if_changed(out / f"{name}.tif", make_image(name, seed)[0])
        written.append(out / f"{name}.tif")
    return written


def _write_set(out_dir: str | Path, names: list[str], make) -> list[Path]:
    """``make(name)`` -> (image, labels) written as ``<name>.tif`` + ``<name>_masks.tif``; the image paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        img, lab = make(name)
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


# --- The 3D demo set -------------------------------------------------------------------------------------

#: Volume specs of the 3D demo set: name -> (depth, height, width, clusters, cells per cluster, sparse cells).
#: Small enough to train on a CPU. All but cluster_dense_03 are longer than 1.25 x 64 px in y or x, so tiling
#: at tile_size 64 cuts them (z, 32-40, stays whole). Like the 2D set, all volumes sit in one folder and the
#: pipeline's split holds some out (with pipeline.seed 0: cluster_dense_02 and sparse3d_01).
DEMO3D_SPECS: dict[str, tuple[int, int, int, int, int, int]] = {
    "cluster_large_01": (40, 160, 128, 3, 18, 4),
    "cluster_large_02": (36, 96, 144, 2, 24, 4),
    "cluster_dense_01": (32, 96, 96, 1, 50, 0),
    "cluster_dense_02": (40, 104, 96, 1, 55, 2),
    "cluster_dense_03": (32, 80, 80, 2, 16, 0),
    "cluster_mixed_01": (32, 112, 96, 2, 20, 8),
    "cluster_mixed_02": (36, 96, 96, 1, 30, 6),
    "sparse3d_01": (32, 96, 96, 0, 0, 14),
}


@dataclass(frozen=True, eq=False)
class Ellipsoid:
    """A roughly convex cell: semi-axes ``radii`` along the columns of the rotation ``axes``, ZYX voxels."""

    center: np.ndarray  # (3,) z, y, x
    radii: np.ndarray  # (3,)
    axes: np.ndarray  # (3, 3) orthonormal columns

    def reach(self, direction: np.ndarray) -> float:
        """Distance from the centre to the surface along the unit vector ``direction``."""
        return float(1.0 / np.linalg.norm((self.axes.T @ direction) / self.radii))


def _random_ellipsoid(rng: np.random.Generator, center: np.ndarray) -> Ellipsoid:
    """An ellipsoid of semi-axes 4-7 voxels (a little elongated) in a random orientation."""
    base = rng.uniform(5.0, 6.6)
    radii = np.clip(base * rng.uniform(0.8, 1.2, size=3), 4.0, 7.0)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return Ellipsoid(np.asarray(center, float), radii, q * np.sign(np.diag(r)))


def _fits(cell: Ellipsoid, shape: tuple[int, ...]) -> bool:
    """Whether the whole cell lies inside a volume of ``shape`` (demo cells are whole, as in 2D)."""
    reach = cell.radii.max() + 1
    return bool(np.all(cell.center - reach >= 0) and np.all(cell.center + reach <= np.array(shape) - 1))


def ellipsoid_distance(cell: Ellipsoid, shape: tuple[int, ...]) -> tuple[tuple[slice, ...], np.ndarray]:
    """(bounding-box slices, normalised distance) of ``cell``: 1 on its surface, below 1 inside."""
    reach = cell.radii.max() + 1
    lo = np.maximum(np.floor(cell.center - reach).astype(int), 0)
    hi = np.minimum(np.ceil(cell.center + reach + 1).astype(int), shape)
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij"), -1)
    local = (grid - cell.center) @ cell.axes / cell.radii
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True)), np.sqrt((local**2).sum(-1))


def grow_cluster(
    cells: list[Ellipsoid], rng: np.random.Generator, center: np.ndarray, n_cells: int, shape: tuple[int, ...]
) -> int:
    """Add a cluster of up to ``n_cells`` touching cells around ``center`` to ``cells``; returns how many.

    Each new cell is proposed against a random cell of the cluster, in a random direction, a little
    closer than the sum of their reaches along it: the two overlap slightly, and rasterising gives the
    overlap to the nearer one, so the pair touches along a shared face. A proposal whose centre is too
    close to any existing centre (it would swallow most of that cell) is rejected.
    """
    cluster: list[Ellipsoid] = []
    first = _random_ellipsoid(rng, center)
    if _fits(first, shape) and _room_for(first, cells):
        cluster.append(first)
        cells.append(first)
    failures = 0
    while cluster and len(cluster) < n_cells and failures < 40 * n_cells:
        # Parents near the cluster's centre are favoured, so clusters grow compact.
        dist = np.linalg.norm(np.array([c.center for c in cluster]) - center, axis=1)
        weights = 1.0 / (1.0 + (dist / 10.0) ** 2)
        parent = cluster[int(rng.choice(len(cluster), p=weights / weights.sum()))]
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        child = _random_ellipsoid(rng, parent.center)
        step = 0.88 * (parent.reach(u) + child.reach(u))
        child = Ellipsoid(parent.center + step * u, child.radii, child.axes)
        if _fits(child, shape) and _room_for(child, cells):
            cluster.append(child)
            cells.append(child)
        else:
            failures += 1
    return len(cluster)


def _room_for(cell: Ellipsoid, cells: list[Ellipsoid], max_overlap: float = 0.3) -> bool:
    """Whether ``cell``'s centre is far enough from every other centre: at least (1 - max_overlap) x the
    sum of the two cells' reaches towards each other, so a neighbour can share a face but not swallow it."""
    for other in cells:
        d = other.center - cell.center
        n = float(np.linalg.norm(d))
        if n == 0 or n < (1 - max_overlap) * (cell.reach(d / n) + other.reach(d / n)):
            return False
    return True


def _isolated(cell: Ellipsoid, cells: list[Ellipsoid], gap: float = 4.0) -> bool:
    """Whether ``cell`` is at least ``gap`` voxels from every cell of ``cells`` (by their largest radii)."""
    reach = cell.radii.max() + gap
    return all(np.linalg.norm(o.center - cell.center) >= reach + o.radii.max() for o in cells)


def scatter_cells3d(
    cells: list[Ellipsoid], rng: np.random.Generator, n_cells: int, shape: tuple[int, ...]
) -> None:
    """Add ``n_cells`` isolated cells at random, at least 4 voxels from any other cell."""
    placed, tries = 0, 0
    while placed < n_cells and tries < 200 * max(n_cells, 1):
        tries += 1
        cell = _random_ellipsoid(rng, rng.uniform(0, 1, size=3) * np.array(shape))
        if _fits(cell, shape) and _isolated(cell, cells):
            cells.append(cell)
            placed += 1


def rasterize_cells(cells: list[Ellipsoid], shape: tuple[int, ...]) -> np.ndarray:
    """Exact instance labels (uint16, 1..N in the order of ``cells``) of overlapping ellipsoids.

    A voxel inside several cells goes to the one it is nearest to in normalised distance, which gives
    touching cells a shared face; a cell's own centre is always its own (distance 0). The rare pieces of a
    cell cut off from its centre by its neighbours become background, so every label is one face-connected
    component.
    """
    labels = np.zeros(shape, np.uint16)
    best = np.full(shape, np.inf, np.float32)
    for value, cell in enumerate(cells, start=1):
        sl, d = ellipsoid_distance(cell, shape)
        win = (d <= 1) & (d < best[sl])
        best[sl][win] = d[win]
        labels[sl][win] = value
    for value, cell in enumerate(cells, start=1):
        sl, _ = ellipsoid_distance(cell, shape)
        pieces, n = ndi.label(labels[sl] == value)
        if n > 1:
            # The piece holding the centre stays (its distance there is ~0, so no neighbour took it).
            c = tuple(np.round(cell.center).astype(int) - [s.start for s in sl])
            labels[sl][(pieces > 0) & (pieces != pieces[c])] = 0
    return labels


def render_fluorescence(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fluorescence-like uint16 volume of a label volume: bright cells of uneven brightness, dimmer
    boundaries between touching cells (what lets a model separate them), dimming with depth, a blur
    stronger along z than in yx (the axial point-spread function), background and noise."""
    fg = labels > 0
    brightness = np.concatenate([[0.0], rng.uniform(0.6, 1.0, size=int(labels.max()))]).astype(np.float32)
    signal = brightness[labels]
    signal[find_boundaries(labels, mode="inner") & fg] *= 0.45
    depth = labels.shape[0]
    signal *= (1.0 - 0.25 * np.arange(depth, dtype=np.float32) / depth)[:, None, None]
    signal = ndi.gaussian_filter(signal, sigma=(1.3, 0.6, 0.6))
    img = 0.08 + signal + 0.04 * ndi.gaussian_filter(fg.astype(np.float32), sigma=(4.0, 3.0, 3.0))
    img = img + rng.normal(0, 0.025, size=img.shape).astype(np.float32) * np.sqrt(img / 0.5)
    return np.clip(img * 24000 + 800, 0, 65535).astype(np.uint16)


def make_volume(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The 3D demo volume ``name`` (ZYX) and its label volume (uint16, 0 = background, 1..N = cells)."""
    depth, h, w, clusters, per_cluster, sparse = DEMO3D_SPECS[name]
    shape = (depth, h, w)
    rng = np.random.default_rng([seed, 3, *name.encode()])
    cells: list[Ellipsoid] = []
    for _ in range(clusters):
        for _attempt in range(20):  # a centre inside an earlier cluster has no room for a first cell
            center = np.array([depth / 2, h, w]) * rng.uniform([0.9, 0.25, 0.25], [1.1, 0.75, 0.75])
            if grow_cluster(cells, rng, center, per_cluster, shape):
                break
    scatter_cells3d(cells, rng, sparse, shape)
    labels = rasterize_cells(cells, shape)
    return render_fluorescence(labels, rng), labels


def write_demo3d(out_dir: str | Path, seed: int = 0, names: list[str] | None = None) -> list[Path]:
    """Write the 3D demo set as ``<name>.tif`` + ``<name>_masks.tif`` (ZYX) into ``out_dir``.

    Byte-identical for the same seed; files that already hold these bytes are left alone. Returns the
    image paths written.
    """
    return _write_set(out_dir, names or sorted(DEMO3D_SPECS), lambda name: make_volume(name, seed))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder to write the demo images and masks into")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dim", type=int, choices=(2, 3), default=2, help="2: the phase-contrast images; 3: the volumes"
    )
    parser.add_argument(
        "--unlabelled",
        action="store_true",
        help="new 2D images without labels, to try `snakemake segment` on",
    )
    args = parser.parse_args(argv)
    if args.unlabelled:
        paths = write_unlabelled(args.out_dir, args.seed)
        print(json.dumps({p.stem: {"shape": list(tifffile.imread(p).shape)} for p in paths}, indent=1))
        return
    paths = (write_demo3d if args.dim == 3 else write_demo)(args.out_dir, args.seed)
    stats = {}
    for p in paths:
        lab = tifffile.imread(p.with_name(p.stem + "_masks.tif"))
        stats[p.stem] = {"shape": list(lab.shape), "cells": int(lab.max())}
    print(json.dumps(stats, indent=1))


if __name__ == "__main__":
    main()
