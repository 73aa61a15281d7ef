"""Cutting large images into near-equal tiles of about the tile size."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import numpy as np

from .labels import Link, relabel, remap_links


def tile_edges(length: int, tile_size: int, factor: float = 1.25) -> list[int]:
    """Edges of near-equal tiles along one axis: [0, ..., length].

    An axis no longer than ``factor * tile_size`` stays whole; a longer one is cut into
    ``ceil(length / tile_size)`` parts whose sizes differ by at most one pixel
    (2048 -> 4 x 512; 1300 -> 433, 433, 434, never 512 + 512 + 276).
    """
    n = 1 if length <= factor * tile_size else math.ceil(length / tile_size)
    return [(i * length) // n for i in range(n + 1)]


def tile_boxes(shape: tuple[int, ...], tile_size: int, factor: float = 1.25) -> list[tuple[slice, ...]]:
    """Tiles of an image of spatial ``shape`` as tuples of slices, row-major; they cover every pixel once."""
    per_axis = [tile_edges(s, tile_size, factor) for s in shape]
    ranges = [list(zip(e[:-1], e[1:], strict=True)) for e in per_axis]
    return [tuple(slice(a, b) for a, b in combo) for combo in product(*ranges)]


@dataclass
class Tile:
    """One tile: image (C, *spatial), labels 1..N, links in tile numbers, and where it came from."""

    index: int
    box: tuple[slice, ...]
    image: np.ndarray
    labels: np.ndarray
    links: list[Link]
    label_map: dict[int, int]  # source label -> tile label
    dropped: list[int]  # source labels whose fragment in this tile was too small

    @property
    def empty(self) -> bool:
        return not self.label_map


def cut_tiles(
    image: np.ndarray,
    labels: np.ndarray,
    links: list[Link],
    tile_size: int = 512,
    factor: float = 1.25,
    min_fragment_area: int = 15,
) -> list[Tile]:
    """Cut ``image`` (C, *spatial) and its labels into tiles.

    Objects cut by a tile border are kept in every tile they reach, except fragments smaller than
    ``min_fragment_area`` pixels, which become background. Each tile's labels are renumbered 1..N
    and the links remapped into them.
    """
    tiles = []
    whole = np.unique(labels[labels > 0], return_counts=True)
    whole_area = dict(zip(whole[0].tolist(), whole[1].tolist(), strict=True))
    for i, box in enumerate(tile_boxes(labels.shape, tile_size, factor)):
        lab = labels[box].copy()
        values, areas = np.unique(lab[lab > 0], return_counts=True)
        # A whole object smaller than the limit is not a fragment: only cut objects are dropped.
        small = [
            int(v) for v, a in zip(values, areas, strict=True) if a < min_fragment_area and a < whole_area[v]
        ]
        if small:
            lab[np.isin(lab, small)] = 0
        new, mapping = relabel(lab)
        tiles.append(
            Tile(
                index=i,
                box=box,
                image=image[(slice(None), *box)],
                labels=new,
                links=remap_links(links, mapping),
                label_map=mapping,
                dropped=small,
            )
        )
    return tiles
