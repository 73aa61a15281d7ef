"""Per-image preprocessing: channel selection, and the chain select -> tile -> crop used by the rules."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .channels import GREY, ChannelPlan, find_channel_axis
from .labels import Link, relabel, remap_links
from .packing import Crop, Normalisation, make_crops, normalisation
from .tiling import Tile, cut_tiles


@dataclass
class Source:
    """A source image after channel selection: image (C, *spatial), labels 1..N, links, provenance."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    links: list[Link]
    label_map: dict[int, int]  # original label -> new label
    channel_axis: int | None
    norm: Normalisation


def select_channels(
    image: np.ndarray,
    labels: np.ndarray | None,
    plan: ChannelPlan,
    dim: int = 2,
    channel_axis: int | None = None,
) -> tuple[np.ndarray, int | None]:
    """The planned channels of ``image``, stacked first: (nchan, *spatial), and the axis they came from.

    ``labels`` (None for an image to segment) tell where the channel axis is when channel_axis is None.

    Kept channels keep the image's dtype; a grey channel (Cellpose's chan = 0, the mean of all
    channels) is float32.
    """
    axis, why = find_channel_axis(image.shape, None if labels is None else labels.shape, dim, channel_axis)
    if why:
        raise ValueError(why)
    data = plan.apply(image, axis)
    if plan.sources is not None and GREY in plan.sources and axis is not None:
        data = data.astype(np.float32)
    elif plan.sources is not None and GREY in plan.sources:
        data = data.astype(image.dtype)  # a one-channel image: its grey is itself
    return np.ascontiguousarray(data), axis


def prepare_source(
    name: str,
    image: np.ndarray,
    labels: np.ndarray,
    links: list[Link],
    plan: ChannelPlan,
    dim: int = 2,
    channel_axis: int | None = None,
) -> Source:
    """Channel selection, labels renumbered 1..N (links remapped) and the source's normalisation."""
    data, axis = select_channels(image, labels, plan, dim, channel_axis)
    new, mapping = relabel(labels)
    return Source(name, data, new, remap_links(links, mapping), mapping, axis, normalisation(data, new))


def source_crops(source: Source, tiling: dict, packing: dict | None) -> tuple[list[Tile], list[Crop]]:
    """Tiles of a source, and the dense crops of every non-empty tile (settings: config sections).

    With ``packing`` None, only the tiles (no crops).
    """
    tiles = cut_tiles(
        source.image,
        source.labels,
        source.links,
        tile_size=tiling["tile_size"],
        factor=tiling["max_ratio"],
        min_fragment_area=tiling["min_fragment_area"],
    )
    crops: list[Crop] = []
    for tile in tiles:
        if tile.empty or packing is None:
            continue
        to_source = {new: old for old, new in tile.label_map.items()}
        crops += make_crops(
            source.name,
            tile.index,
            (tile.box[0].start, tile.box[1].start),
            tile.image,
            tile.labels,
            tile.links,
            to_source,
            source.norm,
            gap=packing["gap"],
            pad=packing["pad"],
            rim=packing["rim"],
            bin_size=packing["bin_size"],
            max_crop=packing["max_crop"],
            unlabelled=dropped_fragments(source.labels[tile.box], tile.labels),
        )
    return tiles, crops


def dropped_fragments(source_labels: np.ndarray, tile_labels: np.ndarray) -> np.ndarray:
    """Pixels that hold an object in the source but no label in the tile (fragments the tiling dropped)."""
    return (source_labels > 0) & (tile_labels == 0)
