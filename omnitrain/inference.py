"""Running a trained model on one image, the same way for the held-out images and for new ones.

``predict_heldout`` (the evaluation) and ``segment_images`` (the ``segment`` target) both call
:func:`segment_array`, so a model segments new images exactly as it was scored: the same Omnipose
call, thresholds and size-model rescaling.
"""

from __future__ import annotations

import numpy as np

from . import sizemodel


def segment_array(model, image: np.ndarray, card: dict, evaluation: dict, size: dict | None = None):
    """(masks, flows, rescale) of ``image`` (channels first when the model has several; one channel: no
    channel axis). ``evaluation`` holds mask_threshold, flow_threshold and niter; ``size`` a size model
    (:func:`omnitrain.sizemodel.load`) whose predicted diameter rescales the image, or None."""
    axis = 0 if card["nchan"] > 1 else None
    rescale = None
    if size is not None:
        diam = sizemodel.predict(size, sizemodel.style_of(model, image, axis))
        rescale = float(card["diam_mean"] / diam)
    masks, flows = model.eval(
        image,
        channels=None,
        channel_axis=axis,
        omni=True,
        rescale=rescale,
        diameter=None,
        mask_threshold=float(evaluation["mask_threshold"]),
        flow_threshold=float(evaluation["flow_threshold"]),
        niter=evaluation["niter"],
    )[:2]
    return np.asarray(masks), flows, rescale


def flow_errors(masks: np.ndarray, flows) -> np.ndarray:
    """Per object, the mean squared difference between the flows the network predicted and those of the
    masks made from them (Omnipose's own quality measure, ``omnipose.core.flow_error``): high where the
    masks do not explain the network's output. Empty for an image without objects."""
    from omnipose.core import flow_error

    if not masks.max():
        return np.zeros(0)
    # flow_error renumbers its mask argument in place: it gets a copy
    errors = flow_error(masks.astype(np.int32), np.asarray(flows[1], dtype=np.float32))[0]
    return np.asarray(errors, dtype=np.float64)


def diameter(masks: np.ndarray) -> float:
    """The objects' diameter as Omnipose measures it for diam_mean (``omnipose.core.diameters``: from the
    mean of the distance field inside the objects, one number per image; 0 without objects)."""
    from omnipose.core import diameters

    return float(diameters(masks)) if masks.max() else 0.0
