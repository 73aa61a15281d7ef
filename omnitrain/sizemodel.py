"""The SizeModel of Omnipose 1.1.4, fitted by the pipeline because SizeModel.train is broken there.

Omnipose's SizeModel.train passes its arguments by position into transforms.reshape_train_test
(channels lands in channel_axis) and raises TypeError; SizeModel.eval fails on numpy 2 types. This
module carries out the same method with Omnipose's own pieces, called correctly:

- per training image, the diameter ``utils.diameters(labels, omni=True)[0]``;
- ``n_epochs`` passes of random rotations and rescalings of every image
  (``transforms.original_random_rotate_and_resize``, scale_range 1, 512 x 512), each giving the
  network's 256-d style vector (``model.network(x)[1]``) and the target
  ``log(diameter) - log(diam_mean) + log(scale)``;
- ridge regression on the centred styles and targets, ``A = solve(X Xᵀ + λI, X y)``;
- saved with ``np.save`` as ``{'A', 'smean', 'diam_mean', 'ymean'}`` (Omnipose's format), and a
  prediction ``max(5, exp(A·(style - smean) + log(diam_mean) + ymean))``.

When the config's diameter is 0 (no rescaling; Omnipose's diam_mean would be 0 and log(0) undefined)
the training set's median diameter is the reference diam_mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def diameters(labels: list[np.ndarray]) -> np.ndarray:
    from .omni import omnipose_models

    omnipose_models()  # numba-cached (omnitrain/omni.py)
    from cellpose_omni import utils

    return np.array([float(utils.diameters(lab, omni=True)[0]) for lab in labels])


def fit(
    model,
    images: list[np.ndarray],
    labels: list[np.ndarray],
    channel_axis: int | None,
    diam_mean: float,
    n_epochs: int = 10,
    batch_size: int = 8,
    l2_regularization: float = 1.0,
    seed: int = 0,
) -> tuple[dict, dict]:
    """Fit the linear style -> log diameter model. Returns (params to save, training statistics)."""
    from cellpose_omni import transforms

    data, labs, _, _, _ = transforms.reshape_train_test(
        list(images),
        list(labels),
        None,
        None,
        channels=None,
        channel_axis=channel_axis,
        normalize=True,
        dim=2,
        omni=True,
    )
    diam = diameters(labs)
    keep = np.flatnonzero(diam > 0)
    data, labs, diam = [data[i] for i in keep], [labs[i] for i in keep], diam[keep]
    if not len(diam):
        raise ValueError("no training image has objects: the size model cannot be fitted")
    if not diam_mean:
        diam_mean = float(np.median(diam))
    rng_state = np.random.get_state()
    np.random.seed(seed)
    batch = max(1, batch_size // 2)  # as SizeModel.train: half the batch, larger tiles
    n = len(data)
    styles = np.zeros((n_epochs * n, 256), np.float32)
    targets = np.zeros(n_epochs * n, np.float32)
    for epoch in range(n_epochs):
        for start in range(0, n, batch):
            inds = np.arange(start, min(start + batch, n))
            imgi, _, scale = transforms.original_random_rotate_and_resize(
                [data[i] for i in inds],
                Y=[labs[i].astype(np.int32) for i in inds],
                scale_range=1,
                xy=(512, 512),
            )
            styles[inds + n * epoch] = model.network(imgi)[1]
            targets[inds + n * epoch] = np.log(diam[inds]) - np.log(diam_mean) + np.log(scale)
    np.random.set_state(rng_state)
    smean = styles.mean(axis=0)
    X = (styles - smean).T.copy()
    ymean = float(targets.mean())
    y = targets - ymean
    A = np.linalg.solve(X @ X.T + l2_regularization * np.eye(X.shape[0]), X @ y)
    fitted = A @ X
    corr = float(np.corrcoef(y, fitted)[0, 1]) if np.std(y) > 0 and np.std(fitted) > 0 else float("nan")
    params = {"A": A, "smean": smean, "diam_mean": float(diam_mean), "ymean": ymean}
    stats = {
        "samples": int(len(targets)),
        "images": n,
        "train_correlation": corr,
        "diam_mean": float(diam_mean),
    }
    return params, stats


def save(path: str | Path, params: dict) -> None:
    """Save as Omnipose does: np.save of the parameter dict (read back with allow_pickle=True)."""
    with open(path, "wb") as fh:
        np.save(fh, params)


def load(path: str | Path) -> dict:
    return np.load(path, allow_pickle=True).item()


def style_of(model, image: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """The network's style vector for a whole image, as SizeModel.eval gets it (cp.eval, no masks)."""
    styles = model.eval(
        image,
        channels=None,
        channel_axis=channel_axis,
        normalize=True,
        net_avg=False,
        resample=False,
        compute_masks=False,
        omni=True,
    )[-1]
    return np.asarray(styles, np.float32).reshape(-1)


def predict(params: dict, style: np.ndarray) -> float:
    """Predicted diameter of an image from its style (Omnipose's SizeModel._size_estimation)."""
    est = np.exp(params["A"] @ (style - params["smean"]) + np.log(params["diam_mean"]) + params["ymean"])
    return float(np.maximum(5.0, est))


#: The columns of the held-out diameter table (size_heldout.tsv).
HELDOUT_COLUMNS = ("image", "true_diameter", "predicted_diameter", "error", "relative_error")


def heldout_errors(params: dict, model, folder: str | Path, channel_axis: int | None) -> list[dict]:
    """Per held-out image of ``folder``: its true median diameter, the size model's prediction, the error."""
    from .discovery import discover
    from .imageio import read_array

    rows = []
    for pair in discover(folder).pairs:
        image, labels = read_array(pair.image), read_array(pair.label)
        true = float(diameters([labels])[0])
        predicted = predict(params, style_of(model, image, channel_axis))
        rows.append(
            {
                "image": pair.base,
                "true_diameter": round(true, 3),
                "predicted_diameter": round(predicted, 3),
                "error": round(predicted - true, 3),
                "relative_error": round((predicted - true) / true, 4) if true else None,
            }
        )
    return rows
