"""Dense-crop packing: clusters of cells cut out of their tiles and packed into ensemble images.

Omnipose's documentation recommends it but ships no code for it; this is the project's own. The
cluster step follows ``omnipose.measure.crop_bbox`` (foreground dilated ``gap`` times with the
cross-shaped element, connected components, one padded bounding box per cluster); the packing is
``rectpack`` (MaxRects, global bin selection, 90-degree rotation allowed).

A crop holds the cells of one cluster and the real image within ``pad`` pixels of them; every other
pixel of its box (another cluster's cells, far corners) is filled with the source image's background
level, so no cell appears unlabelled and no cell appears twice. Intensities are normalised per
SOURCE image (Omnipose's normalize99 percentiles, 0.01 and 99.99) before cropping, so that crops
of one source keep their relative contrast and crops of different sources are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import rectpack
from scipy import ndimage as ndi
from skimage.measure import label as connected_components

from .labels import Link, label_dtype, remap_links

#: Percentiles of Omnipose's normalize99 (omnipose.utils.normalize99 defaults).
LOWER, UPPER = 0.01, 99.99


@dataclass(frozen=True)
class Normalisation:
    """Per-channel intensity mapping of one source image: (x - lo) / (hi - lo); fill = background level."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]
    background: tuple[float, ...]

    def apply(self, image: np.ndarray) -> np.ndarray:
        lo = np.asarray(self.lo, np.float64).reshape(-1, *([1] * (image.ndim - 1)))
        hi = np.asarray(self.hi, np.float64).reshape(lo.shape)
        return ((image - lo) / np.where(hi > lo, hi - lo, 1.0)).astype(np.float32)

    def to_json(self) -> dict:
        return {"lo": list(self.lo), "hi": list(self.hi), "background": list(self.background)}

    @classmethod
    def from_json(cls, data: dict) -> Normalisation:
        return cls(tuple(data["lo"]), tuple(data["hi"]), tuple(data["background"]))


def normalisation(image: np.ndarray, labels: np.ndarray) -> Normalisation:
    """Normalisation of a source image (C, *spatial): normalize99 percentiles and the background median.

    Written here rather than imported: omnipose.utils.normalize99 does the same arithmetic, but
    importing omnipose costs ~13 s per job, more than the whole per-image step.
    """
    flat = image.reshape(image.shape[0], -1).astype(np.float64)
    lo = np.percentile(flat, LOWER, axis=1)
    hi = np.percentile(flat, UPPER, axis=1)
    norm = Normalisation(tuple(map(float, lo)), tuple(map(float, hi)), (0.0,) * len(lo))
    scaled = norm.apply(image).reshape(image.shape[0], -1)
    bg = labels.ravel() == 0
    level = np.median(scaled[:, bg], axis=1) if bg.any() else np.zeros(len(lo))
    return Normalisation(norm.lo, norm.hi, tuple(float(v) for v in level))


@dataclass
class Crop:
    """A cluster of cells cut from a tile, ready to pack."""

    source: str
    tile: int
    box: tuple[int, int, int, int]  # y0, x0, y1, x1 in source coordinates
    image: np.ndarray  # (C, h, w) float32, normalised, fill outside the kept region
    labels: np.ndarray  # (h, w) 1..n
    cells: dict[int, int]  # crop label -> source label
    fill: np.ndarray  # (C,) the source's background level, painted outside the kept region
    links: list[Link] = field(default_factory=list)
    split_cell: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape


def clusters(labels: np.ndarray, gap: int) -> list[list[int]]:
    """Cells grouped into clusters: foreground dilated ``gap`` times, connected components (8-connected)."""
    fg = labels > 0
    grown = ndi.binary_dilation(fg, iterations=gap) if gap > 0 else fg
    comp = connected_components(grown, connectivity=2)
    owner = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    owner[labels[fg]] = comp[fg]
    groups: dict[int, list[int]] = {}
    for cell in np.flatnonzero(owner):
        groups.setdefault(int(owner[cell]), []).append(int(cell))
    return [groups[k] for k in sorted(groups)]


def _bbox(boxes: np.ndarray, cells: list[int]) -> np.ndarray:
    sub = boxes[cells]
    return np.array([sub[:, 0].min(), sub[:, 1].min(), sub[:, 2].max(), sub[:, 3].max()])


def _padded(box, pad: int, shape) -> tuple[int, int, int, int]:
    return (
        max(box[0] - pad, 0),
        max(box[1] - pad, 0),
        min(box[2] + pad, shape[0]),
        min(box[3] + pad, shape[1]),
    )


def fit_groups(
    cells: list[int], boxes: np.ndarray, centroids: np.ndarray, pad: int, max_side: int, shape
) -> list[list[int]]:
    """Split a cluster into groups of whole cells whose padded boxes are at most ``max_side``
    (recursive bisection).

    A group is bisected across the longer side of its box at the median cell centroid. A single
    cell that does not fit on its own is returned alone (the caller cuts it).
    """
    y0, x0, y1, x1 = _padded(_bbox(boxes, cells), pad, shape)
    if (y1 - y0 <= max_side and x1 - x0 <= max_side) or len(cells) == 1:
        return [cells]
    axis = 0 if y1 - y0 >= x1 - x0 else 1
    order = sorted(cells, key=lambda c: (centroids[c, axis], c))
    half = len(order) // 2
    return fit_groups(order[:half], boxes, centroids, pad, max_side, shape) + fit_groups(
        order[half:], boxes, centroids, pad, max_side, shape
    )


def _cell_geometry(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding boxes (y0, x0, y1, x1) and centroids of every label value, indexed by label."""
    n = int(labels.max())
    boxes = np.zeros((n + 1, 4), dtype=np.int64)
    centroids = np.zeros((n + 1, 2))
    for i, sl in enumerate(ndi.find_objects(labels), 1):
        if sl is not None:
            boxes[i] = (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop)
    idx = np.arange(1, n + 1)
    if n:
        centroids[1:] = np.array(ndi.center_of_mass(np.ones_like(labels), labels, idx))
    return boxes, centroids


def crop_region(
    labels: np.ndarray,
    box: tuple[int, int, int, int],
    cells: list[int],
    pad: int,
    rim: int,
    unlabelled: np.ndarray | None = None,
) -> np.ndarray:
    """Pixels of ``box`` that keep their real intensities: within ``pad`` of the group's own cells and
    not within ``rim`` of any other cell. ``unlabelled`` marks object pixels that have no label here
    (fragments the tiling dropped): they count as other cells."""
    y0, x0, y1, x1 = box
    sub = labels[y0:y1, x0:x1]
    own = np.isin(sub, cells)
    other = (sub > 0) & ~own
    if unlabelled is not None:
        other |= unlabelled[y0:y1, x0:x1]
    near_own = ndi.distance_transform_edt(~own) <= pad
    near_other = ndi.distance_transform_edt(~other) <= rim if other.any() else np.zeros_like(own)
    return (near_own & ~near_other) | own


def make_crops(
    source: str,
    tile_index: int,
    offset: tuple[int, int],
    image: np.ndarray,
    labels: np.ndarray,
    links: list[Link],
    to_source: dict[int, int],
    norm: Normalisation,
    gap: int = 3,
    pad: int = 6,
    rim: int = 2,
    bin_size: int = 512,
    max_crop: int | None = None,
    unlabelled: np.ndarray | None = None,
) -> list[Crop]:
    """The crops of one tile (image (C, h, w) raw, labels 1..N in tile numbers).

    ``to_source`` maps tile labels to source labels and ``offset`` is the tile's corner in the
    source, so each crop knows where it came from. ``unlabelled`` marks pixels of objects without a
    label in this tile (fragments dropped by tiling): they are painted over like other clusters' cells.
    """
    scaled = norm.apply(image)
    fill = np.asarray(norm.background, np.float32).reshape(-1, 1, 1)
    boxes, centroids = _cell_geometry(labels)
    crops = []
    for cluster in clusters(labels, gap):
        limit = min(max_crop or bin_size, bin_size)
        for group in fit_groups(cluster, boxes, centroids, pad, limit, labels.shape):
            box = _padded(_bbox(boxes, group), pad, labels.shape)
            keep = crop_region(labels, box, group, pad, rim, unlabelled)
            y0, x0, y1, x1 = box
            for piece in _pieces(box, bin_size):
                py0, px0, py1, px1 = piece
                k = keep[py0 - y0 : py1 - y0, px0 - x0 : px1 - x0]
                sub = labels[py0:py1, px0:px1]
                lab = np.where(k & np.isin(sub, group), sub, 0)
                present = [int(c) for c in np.unique(lab) if c]
                if not present:
                    continue
                new = {old: i + 1 for i, old in enumerate(present)}
                remapped = np.zeros(lab.shape, dtype=label_dtype(len(present)))
                for old, i in new.items():
                    remapped[lab == old] = i
                img = np.where(k[None], scaled[:, py0:py1, px0:px1], fill).astype(np.float32)
                crops.append(
                    Crop(
                        source=source,
                        tile=tile_index,
                        box=(py0 + offset[0], px0 + offset[1], py1 + offset[0], px1 + offset[1]),
                        image=img,
                        labels=remapped,
                        cells={i: to_source[old] for old, i in new.items()},
                        fill=fill.ravel(),
                        links=remap_links(links, new),
                        split_cell=piece != box,
                    )
                )
    return crops


def _pieces(box, bin_size: int) -> list[tuple[int, int, int, int]]:
    """The box itself when it fits a bin, else a grid of near-equal pieces that do (only a single
    cell larger than a bin gets here)."""
    y0, x0, y1, x1 = box
    ny, nx = -(-(y1 - y0) // bin_size), -(-(x1 - x0) // bin_size)
    ys = [y0 + (i * (y1 - y0)) // ny for i in range(ny + 1)]
    xs = [x0 + (i * (x1 - x0)) // nx for i in range(nx + 1)]
    return [(ys[i], xs[j], ys[i + 1], xs[j + 1]) for i in range(ny) for j in range(nx)]


@dataclass
class Placement:
    crop: int  # index into the crop list
    bin: int
    y: int
    x: int
    rotated: bool


#: rectpack placement rules tried by :func:`pack_rectangles`. (In Global bin mode the order of the
#: rectangles does not change the result; MaxRectsBl was never the best on the benchmark sets.)
STRATEGIES = [rectpack.MaxRectsBssf, rectpack.MaxRectsBaf, rectpack.GuillotineBssfSas]


def _pack_once(shapes, bin_size: int, rotation: bool, algo) -> list[Placement]:
    packer = rectpack.newPacker(
        mode=rectpack.PackingMode.Offline,
        bin_algo=rectpack.PackingBin.Global,
        pack_algo=algo,
        sort_algo=rectpack.SORT_AREA,
        rotation=rotation,
    )
    for i, (h, w) in enumerate(shapes):
        packer.add_rect(int(w), int(h), i)
    packer.add_bin(bin_size, bin_size, count=float("inf"))
    packer.pack()
    placed = []
    for b, x, y, w, h, rid in packer.rect_list():
        oh, ow = shapes[rid]
        placed.append(Placement(rid, b, int(y), int(x), rotated=(h, w) != (oh, ow)))
    return placed


def pack_rectangles(shapes: list[tuple[int, int]], bin_size: int, rotation: bool = True) -> list[Placement]:
    """Place rectangles (h, w) into bin_size x bin_size bins; deterministic.

    Every strategy of :data:`STRATEGIES` is tried (rectpack is fast; the choice matters for a few
    large crops) and the packing with the fewest bins wins, then the one whose last bin holds the
    least area (so all the other bins are as full as possible).
    """
    best, best_key = None, None
    for algo in STRATEGIES:
        placed = _pack_once(shapes, bin_size, rotation, algo)
        if len(placed) != len(shapes):
            continue
        per_bin: dict[int, int] = {}
        for p in placed:
            per_bin[p.bin] = per_bin.get(p.bin, 0) + shapes[p.crop][0] * shapes[p.crop][1]
        key = (len(per_bin), min(per_bin.values()))
        if best_key is None or key < best_key:
            best, best_key = placed, key
    if best is None:
        raise RuntimeError(f"rectpack could not place {len(shapes)} crops into {bin_size} px bins")
    return sorted(best, key=lambda p: (p.bin, p.y, p.x))


@dataclass
class PackedBin:
    image: np.ndarray  # (C, H, W) float32
    labels: np.ndarray  # (H, W)
    links: list[Link]
    rows: list[dict]  # provenance, one per crop


def assemble_bins(
    crops: list[Crop], bin_size: int, rotation: bool = True, trim: bool = True
) -> list[PackedBin]:
    """Pack crops and paint them into bins. Bins are ordered fullest first; each is trimmed to the
    extent of its crops when ``trim`` (only the last, sparse bin usually shrinks)."""
    if not crops:
        return []
    placements = pack_rectangles([c.shape for c in crops], bin_size, rotation)
    by_bin: dict[int, list[Placement]] = {}
    for p in placements:
        by_bin.setdefault(p.bin, []).append(p)
    area = {b: sum(crops[p.crop].labels.size for p in ps) for b, ps in by_bin.items()}
    order = sorted(by_bin, key=lambda b: (-area[b], b))
    nchan = crops[0].image.shape[0]
    out = []
    for b in order:
        ps = by_bin[b]
        fill = np.mean([crops[p.crop].fill for p in ps], axis=0).astype(np.float32)
        image = np.broadcast_to(fill.reshape(-1, 1, 1), (nchan, bin_size, bin_size)).copy()
        total = sum(len(crops[p.crop].cells) for p in ps)
        labels = np.zeros((bin_size, bin_size), dtype=label_dtype(total))
        links: list[Link] = []
        rows = []
        next_label = 0
        for p in ps:
            crop = crops[p.crop]
            img, lab = crop.image, crop.labels
            if p.rotated:
                img, lab = np.rot90(img, 1, axes=(1, 2)), np.rot90(lab, 1)
            h, w = lab.shape
            region = (slice(p.y, p.y + h), slice(p.x, p.x + w))
            image[(slice(None), *region)] = img
            shifted = np.where(lab > 0, lab.astype(np.int64) + next_label, 0)
            labels[region] = shifted
            links += [tuple(v + next_label for v in link) for link in crop.links]
            rows.append(
                {
                    "crop": p.crop,
                    "source": crop.source,
                    "tile": crop.tile,
                    "src_y0": crop.box[0],
                    "src_x0": crop.box[1],
                    "src_y1": crop.box[2],
                    "src_x1": crop.box[3],
                    "bin_y": p.y,
                    "bin_x": p.x,
                    "height": h,
                    "width": w,
                    "rotated": p.rotated,
                    "split_cell": crop.split_cell,
                    "cells": len(crop.cells),
                    "label_map": {int(k + next_label): int(v) for k, v in crop.cells.items()},
                }
            )
            next_label += len(crop.cells)
        if trim:
            ys = max(r["bin_y"] + r["height"] for r in rows)
            xs = max(r["bin_x"] + r["width"] for r in rows)
            image, labels = image[:, :ys, :xs], labels[:ys, :xs]
        out.append(PackedBin(np.ascontiguousarray(image), np.ascontiguousarray(labels), sorted(links), rows))
    return out
