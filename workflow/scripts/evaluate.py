"""Rule evaluate: score the held-out predictions (AP over IoU thresholds, AJI, PQ) and draw the pictures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from omnitrain.discovery import discover
from omnitrain.evaluation import (
    FN_COLOUR,
    FP_COLOUR,
    PLANE_GAP,
    TP_COLOUR,
    VOLUME_PLANES,
    interval_text,
    overlay,
    score,
    volume_planes,
)
from omnitrain.imageio import read_array
from omnitrain.manifest import write_json
from omnitrain.runlog import get_logger, run_step


def ap_curve(summary, per_threshold, path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for _, sub in per_threshold.groupby("image"):
        ax.plot(sub["iou_threshold"], sub["ap"], color="0.75", lw=1)
    ax.plot(
        summary["iou_threshold"], summary["ap"], color="C0", lw=2.5, marker="o", label="all held-out images"
    )
    if len(summary) and summary["ap_low"].notna().all():
        ax.fill_between(
            summary["iou_threshold"], summary["ap_low"], summary["ap_high"], color="C0", alpha=0.15, lw=0,
            label="95 % bootstrap interval over images",
        )  # fmt: skip
    ax.plot([], [], color="0.75", lw=1, label="one image")
    ax.set_xlabel("IoU threshold")
    ax.set_ylabel("AP = TP / (TP + FP + FN)")
    ax.set_ylim(0, 1)
    mean = f"{summary['ap'].mean():.3f}" if len(summary) else "no held-out image"
    ax.set_title(f"Held-out AP (mean over thresholds {mean})")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def montage(panels, path) -> None:
    """Panels (title, overlay, z planes or None) in a grid: three 2D images a row, or one volume a row (its
    planes side by side, each named by its z in its corner)."""
    volumes = any(planes is not None for _, _, planes in panels)
    n = max(len(panels), 1)
    cols = 1 if volumes else min(3, n)
    rows = -(-n // cols)
    if volumes:  # each plane about as wide as a 2D panel; rows as tall as their images, titles between
        width = 4.5 * len(VOLUME_PLANES)
        image_height = max(rgb.shape[0] / rgb.shape[1] for _, rgb, _ in panels) * width * 0.98
        top, bottom, between = 0.55, 0.45, 0.8  # inches: the first title, the legend, a title and a gap
        height = rows * image_height + (rows - 1) * between + top + bottom
        figsize = (width, height)
    else:
        figsize = (4.5 * cols, 4.5 * rows + 0.6)
    fig, axes = plt.subplots(rows, cols, figsize=figsize, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    z_box = {"facecolor": "black", "alpha": 0.6, "lw": 0, "pad": 1.5}  # a plane's z, readable on any image
    for ax, (title, rgb, planes) in zip(axes.ravel(), panels, strict=False):
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        if planes is not None:
            plane_width = (rgb.shape[1] - PLANE_GAP * (len(planes) - 1)) / len(planes)
            for i, z in enumerate(planes):
                x = i * (plane_width + PLANE_GAP)
                ax.text(x + 1, 1, f"z {z}", color="white", fontsize=8, ha="left", va="top", bbox=z_box)
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no held-out image", ha="center", va="center")
    matched = "matched (3D IoU >= 0.5)" if volumes else "matched (IoU >= 0.5)"
    handles = [
        plt.Line2D([], [], color=TP_COLOUR, lw=3, label=matched),
        plt.Line2D([], [], color=FP_COLOUR, lw=3, label="false positive"),
        plt.Line2D([], [], color=FN_COLOUR, lw=3, label="missed"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=8)
    if volumes:
        fig.subplots_adjust(
            left=0.01, right=0.99, top=1 - top / height, bottom=bottom / height, hspace=between / image_height
        )
    else:
        fig.subplots_adjust(bottom=0.08 if rows == 1 else 0.04)
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)


def main(sm) -> None:
    log = get_logger(sm.log[0])
    preds = Path(sm.input.predictions)
    pairs, panels = [], []
    for pair in discover(sm.input.heldout).pairs:
        true = read_array(pair.label)
        pred_file = preds / f"{pair.base}_cp_masks.tif"
        pred = read_array(pred_file) if pred_file.is_file() else np.zeros_like(true)
        pairs.append((pair.base, true, pred))
        if len(panels) < sm.params.settings["evaluation"]["overlay_images"]:
            # Labels are Y, X in a 2D run and Z, Y, X in a 3D one (the image may add a channel axis).
            planes = volume_planes(true, pred) if true.ndim == 3 else None
            panels.append((pair.base, overlay(read_array(pair.image), true, pred), planes, true.shape[0]))
    per_threshold, per_image, summary, overall = score(pairs)
    for i, (_, p, planes, depth) in enumerate(panels):
        row = per_image.iloc[i]
        title = f"{row['image']}: AP@0.5 {row['ap50']:.2f}, {row['n_pred']} pred / {row['n_true']} true"
        if planes is not None:
            title += f"\nplanes z {', '.join(map(str, planes))} of {depth}; colours from the 3D match"
        panels[i] = (title, p, planes)
    per_threshold.to_csv(sm.output.per_threshold, sep="\t", index=False, float_format="%.4f")
    per_image.to_csv(sm.output.per_image, sep="\t", index=False, float_format="%.4f")
    summary.to_csv(sm.output.summary, sep="\t", index=False, float_format="%.4f")
    write_json(sm.output.scores, overall)
    ap_curve(summary, per_threshold, sm.output.ap_curve)
    montage(panels, sm.output.overlays)
    if not pairs:
        log.info("no held-out image: nothing to evaluate (set split.test_fraction or test_dir)")
        return
    log.info(
        f"held-out: {overall['images']} image(s), {overall['true_objects']} true"
        f" / {overall['predicted_objects']} predicted objects; mean AP {overall['mean_ap']:.3f}"
        f"{interval_text(overall, 'mean_ap')}, AP@0.5 {overall['ap50']:.3f}{interval_text(overall, 'ap50')}"
        f"{' ([95 % bootstrap interval over images])' if interval_text(overall, 'ap50') else ''},"
        f" AJI {overall['aji']:.3f}, PQ {overall['pq']:.3f}; summary: {sm.output.summary}"
    )


run_step(main, snakemake)  # noqa: F821 (defined by Snakemake)
