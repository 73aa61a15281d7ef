"""The per-image work of ``snakemake segment``: an image prepared as the version's held-out images were,
checked first, and drawn (outlines, filled objects) for people.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .channels import plan_from_config
from .evaluation import _grey, volume_planes
from .preprocess import select_channels
from .problems import Problem, error, errors
from .validation import Settings, check_image


class SegmentImageError(ValueError):
    """An image that cannot be segmented with the version's channel settings."""


def prepare_image(image: np.ndarray, channels: dict) -> np.ndarray:
    """The image as the version's held-out images were handed to it: its channels selected as in
    training (channels first), a single channel without its axis."""
    plan, problems = plan_from_config(channels)
    if problems:
        raise SegmentImageError("; ".join(problems))
    data, _ = select_channels(image, None, plan, channels["dim"], channels["channel_axis"])
    return data[0] if data.shape[0] == 1 else data


def image_problems(image: np.ndarray, path: str | Path, channels: dict) -> list[Problem]:
    """Why an image cannot be segmented with these channel settings: validate_inputs' image checks (dtype,
    axes, channels, NaN, blank), and a channel axis that only a label could tell (the guess without one,
    the smaller of the first and last axes, is refused unless that axis is the smallest)."""
    plan, _ = plan_from_config(channels)
    dim, axis = channels["dim"], channels["channel_axis"]
    found = errors(check_image(image, Path(path), None, Settings(plan, dim, axis))[1])
    shape = image.shape
    if not found and axis is None and len(shape) == dim + 1:
        guess = min((shape[0], 0), (shape[-1], len(shape) - 1))[1]
        if any(n <= shape[guess] for a, n in enumerate(shape) if a != guess):
            found.append(
                error(
                    path,
                    "channel-axis",
                    f"cannot tell which axis of the image {tuple(shape)} holds the channels without a label",
                    "set channel_axis (0-based) for these images: snakemake segment --config channel_axis=N",
                )
            )
    return found


def _grey_of(image: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The first channel of a channels-first image (its only one otherwise), as a float array."""
    img = image.astype(np.float64)
    return img[0] if img.ndim == masks.ndim + 1 else img


def _planes(picture: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """A volume's picture: the planes evaluation's overlays show, side by side; a 2D picture as it is."""
    if masks.ndim == 2:
        return picture
    gap = np.ones((masks.shape[1], 4, 3))
    tiles = []
    for z in volume_planes(masks):
        tiles += [gap, picture[z]] if tiles else [picture[z]]
    return np.concatenate(tiles, axis=1)


def outlines_picture(image: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """RGB uint8: the image in grey with the objects' outlines in red (a volume: three z-planes)."""
    from skimage.segmentation import find_boundaries

    grey = _grey(_grey_of(image, masks))
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    edges = np.stack([find_boundaries(m, mode="inner") for m in masks]) if masks.ndim == 3 else None
    rgb[find_boundaries(masks, mode="inner") if edges is None else edges] = (1.0, 0.15, 0.1)
    return (_planes(rgb, masks) * 255).round().astype(np.uint8)


def overlay_picture(image: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """RGB uint8: every object filled in its own colour over the grey image (a volume: three z-planes)."""
    from skimage.color import label2rgb

    grey = _grey(_grey_of(image, masks))
    rgb = label2rgb(masks, image=grey, alpha=0.35, bg_label=0, image_alpha=1.0)
    return (_planes(np.clip(rgb, 0, 1), masks) * 255).round().astype(np.uint8)
