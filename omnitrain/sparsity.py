"""Will Omnipose give up on an image? The chance that its random training crops hold no boundary.

Omnipose 1.1.4 draws each training crop (omnipose.core.random_crop_warp) with a random rotation, a
random scale per axis and a random position, and redraws it while it holds fewer than two label values
(all background, or all inside one cell). After 101 such crops in a row it stops training with
"Sparse or over-dense image detected" (unless blank crops are allowed, as with ``tiling.keep_empty``).
An image of a few cells in a large field can make that happen at any epoch, after hours on a GPU.

This module estimates, from the label image alone, the chance ``p`` that one crop is uniform: the
share of crop windows, over Omnipose's crop positions and scales, whose labels are all equal. The
windows are axis-aligned squares (cubes in 3D) of the crop's size in the image, ``tyx / scale`` times
the image's own rescaling (its diameter over the model's ``diam_mean``); whether a window is uniform
comes from a minimum and a maximum filter of the labels (uniform where they agree), which scipy
computes in time independent of the window size. A crop's rotation is left out: the rotated window has
the same area and nearly the same chance.

Omnipose gives up on an image when 101 crops in a row are uniform, so over training, with ``n`` crops
drawn from that image, the expected number of give-ups is ``n * p**101``; :func:`expected_failures`
computes it and validate_training_set refuses images where it exceeds ``validation.sparse_crop_risk``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Omnipose redraws a uniform crop up to this many times in a row, then raises (depth > 100).
DRAWS_BEFORE_FAILURE = 101


def scale_range(rescale: bool) -> float:
    """Omnipose's augmentation scale range: 1.5 when training rescales by diameter, else 2.0."""
    return 1.5 if rescale else 2.0


def crop_scales(rescale: bool, n: int = 5) -> np.ndarray:
    """``n`` quantile midpoints of Omnipose's crop scale distribution (a + (b - a) * Beta(1, beta)).

    a = 1 / range and b = range, beta chosen so that the mean scale is 1 (omnipose.core)."""
    r = scale_range(rescale)
    a, b = 1.0 / r, r
    m = (1.0 - a) / (b - a)
    beta = (1.0 - m) / m
    q = (np.arange(n) + 0.5) / n
    # Beta(1, beta) has the closed-form quantile 1 - (1 - q) ** (1 / beta).
    return a + (b - a) * (1.0 - (1.0 - q) ** (1.0 / beta))


def _centres(size: int, crop: int) -> slice:
    """The pixels Omnipose centres a crop on along one axis: uniform over [crop/2, size - crop/2]
    when the image is larger than the crop, else the image's centre."""
    if size > crop:
        return slice(int(np.floor(crop / 2)), int(np.ceil(size - crop / 2)))
    return slice(size // 2, size // 2 + 1)


def uniform_crop_chance(labels: np.ndarray, tyx, rescale_factor: float = 1.0, rescale: bool = True) -> float:
    """The chance that one of Omnipose's random crops of ``labels`` holds a single label value.

    Parameters
    ----------
    labels : the label image (2D or 3D, 0 = background)
    tyx : the crop size Omnipose trains with (one value per axis)
    rescale_factor : the image's own scale, its diameter over diam_mean (1 without rescaling)
    rescale : whether training rescales by diameter (diameter != 0): sets the scale range
    """
    labels = np.asarray(labels)
    if labels.size == 0 or labels.max() == labels.min():
        return 1.0
    centres = tuple(_centres(s, t) for s, t in zip(labels.shape, tyx, strict=True))
    chances = []
    for scale in crop_scales(rescale):
        window = tuple(max(1, int(round(t * rescale_factor / scale))) for t in tyx)
        low = ndimage.minimum_filter(labels, size=window, mode="mirror")
        high = ndimage.maximum_filter(labels, size=window, mode="mirror")
        chances.append(float(np.mean(low[centres] == high[centres])))
    return float(np.mean(chances))


def expected_failures(p: float, crops: float) -> float:
    """Expected number of times Omnipose gives up on an image over ``crops`` crops drawn from it."""
    return crops * p**DRAWS_BEFORE_FAILURE


def crops_per_image(n_epochs: int, nimg_per_epoch: int | None, n_images: int) -> float:
    """How many training crops one image gives over the whole training (images are drawn evenly; Omnipose
    trains max(nimg_per_epoch, number of images) crops per epoch)."""
    per_epoch = max(nimg_per_epoch or 0, n_images)
    return n_epochs * per_epoch / max(n_images, 1)


def largest_uniform_chance(risk: float, crops: float) -> float:
    """The crop uniformity chance at which the expected give-ups reach ``risk`` (for the message)."""
    return (risk / max(crops, 1e-12)) ** (1.0 / DRAWS_BEFORE_FAILURE)


def source_names(provenance: str, sources: dict[str, str]) -> dict[str, str]:
    """{training image name: the user's source image(s) it was cut or packed from}, from the training
    set's provenance table and {source id: the user's image file}."""
    import pandas as pd

    prov = pd.read_csv(provenance, sep="\t")
    out = {}
    for name, rows in prov.groupby("image"):
        files = [sources.get(sid, sid) for sid in sorted(set(rows["source"]))]
        out[str(name)] = files[0] if len(files) == 1 else f"{len(files)} source images: {', '.join(files)}"
    return out


def sparse_image_problems(
    images: dict,
    tyx,
    diameter: float,
    n_epochs: int,
    nimg_per_epoch: int | None,
    min_train_masks: int,
    risk: float,
):
    """Per training image: (uniform crop chance, expected give-ups), and the errors for those above ``risk``.

    ``images`` maps each training image's path to ``{"labels", "diameter", "source"}`` (its label
    matrix, its omnipose diameter, and the user's source image(s) it was made from, for the message).
    Returns ({path: (p, expected)}, [Problem]).
    """
    from .problems import error

    used = {path: item for path, item in images.items() if int(item["labels"].max()) >= min_train_masks}
    crops = crops_per_image(n_epochs, nimg_per_epoch, len(used))
    found, problems = {}, []
    for path, item in used.items():
        factor = max(item["diameter"], 5.0) / diameter if diameter else 1.0  # omnipose clips at 5
        p = uniform_crop_chance(item["labels"], tyx, factor, rescale=bool(diameter))
        expected = expected_failures(p, crops)
        found[path] = (p, expected)
        if expected > risk:
            problems.append(
                error(
                    path,
                    "sparse-image",
                    f"{p:.1%} of Omnipose's random {'x'.join(map(str, tyx))} crops of this training"
                    f" image (from {item['source']}) hold fewer than 2 label values: over the"
                    f" {crops:.0f} crops of it in training, Omnipose is expected to give up on it"
                    f" {expected:.3g} time(s) ('Sparse or over-dense image detected';"
                    f" validation.sparse_crop_risk is {risk:g}, i.e. at most"
                    f" {largest_uniform_chance(risk, crops):.1%} uniform crops)",
                    # packing is 2D only (a 3D run trains on its tiles)
                    (
                        "turn packing on (packing.enabled: true packs dense crops of cell clusters), "
                        if len(tyx) == 2
                        else ""
                    )
                    + f"use a larger tyx, crop {item['source']} around its cells, or drop it from the"
                    " training folder",
                )
            )
    return found, problems
