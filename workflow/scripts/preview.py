"""Rule preview: a contact sheet of the training set, cell outlines coloured by source image."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from skimage.segmentation import find_boundaries

from omnitrain.imageio import read_array
from omnitrain.runlog import get_logger, run_step

MAX_PANELS = 24


def grey(image: np.ndarray) -> np.ndarray:
    img = image.astype(np.float64)
    if img.ndim == 3:
        img = img[0]
    lo, hi = np.percentile(img, [1, 99])
    return np.clip((img - lo) / (hi - lo if hi > lo else 1), 0, 1)


def main(sm) -> None:
    log = get_logger(sm.log[0])
    folder = Path(sm.input.trainset)
    prov = pd.read_csv(sm.input.provenance, sep="\t")
    sources = sorted(prov["source"].unique())
    cmap = plt.get_cmap("tab20", max(len(sources), 1))
    colour = {s: np.array(cmap(i)[:3]) for i, s in enumerate(sources)}
    names = sorted(prov["image"].unique())[:MAX_PANELS]
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows + 0.8), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names, strict=False):
        image, lab = read_array(folder / f"{name}.tif"), read_array(folder / f"{name}_masks.tif")
        plane, size, n_cells = "", "x".join(map(str, lab.shape)), len(np.unique(lab)) - 1
        if lab.ndim == 3:  # a volume (dim 3): its plane with the most foreground
            z = int(np.argmax((lab > 0).sum(axis=(1, 2))))
            plane = f", plane z {z}"
            image, lab = image[..., z, :, :], lab[z]
        img = grey(image)
        rgb = np.repeat(img[..., None], 3, axis=2)
        owner = np.zeros(int(lab.max()) + 1, dtype=object)  # of the labels shown
        for r in prov[prov["image"] == name].itertuples():
            for new in json.loads(r.label_map):
                if int(new) < len(owner):
                    owner[int(new)] = r.source
        edges = find_boundaries(lab, mode="inner")
        for value in np.unique(lab[edges]):
            if value and owner[value]:
                rgb[edges & (lab == value)] = colour[owner[value]]
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(f"{name}  {size}, {n_cells} cells{plane}", fontsize=9)
    handles = [plt.Line2D([], [], color=colour[s], lw=3, label=s) for s in sources]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(sources), 4), fontsize=8, frameon=False)
    fig.subplots_adjust(bottom=0.06 + 0.03 * (-(-len(sources) // 4)))
    fig.suptitle("Training set as Omnipose will see it (outline colour = source image)", fontsize=11)
    fig.savefig(sm.output.preview, dpi=80, metadata={"Software": None})
    shown = f"{len(names)} of {prov['image'].nunique()}"
    log.info(f"preview of {shown} training images from {len(sources)} source(s): {sm.output.preview}")


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
