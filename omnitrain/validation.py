"""Pre-flight checks of a training set: every problem, with its file and its fix, at once.

:func:`validate_folder` pairs the files (:mod:`omnitrain.discovery`), reads every pair and checks
it (:func:`check_pair`), and returns one table row per pair plus the list of problems. Errors are
what would crash Omnipose or make it train on wrong data; warnings are what a user should look at.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.measure import label as connected_components

from .channels import ChannelPlan, find_channel_axis, plan_from_config
from .discovery import Discovery, Pair, discover
from .imageio import ReadError, TooLarge, read_array, read_header
from .problems import Problem, error, errors, format_report, warning

#: Columns of the validation table, in order.
COLUMNS = [
    "base",
    "image",
    "label",
    "links",
    "image_shape",
    "image_dtype",
    "channels",
    "label_dtype",
    "objects",
    "max_label",
    "foreground_fraction",
    "median_object_area",
    "split_labels",
    "n_links",
    "errors",
    "warnings",
    "problems",
]


@dataclass(frozen=True)
class Settings:
    """What :func:`check_pair` needs to know of the configuration."""

    plan: ChannelPlan
    dim: int = 2
    channel_axis: int | None = None
    tyx: tuple[int, ...] | None = None
    min_objects: int = 3
    max_background_fraction: float = 0.98
    min_object_area: int = 9
    max_split_fraction: float = 0.5

    @classmethod
    def from_config(cls, config: dict) -> Settings:
        plan, _ = plan_from_config(config)
        v = config["validation"]
        tyx = config["tyx"]
        return cls(
            plan=plan,
            dim=config["dim"],
            channel_axis=config["channel_axis"],
            tyx=tuple(tyx) if tyx is not None else None,
            min_objects=v["min_objects"],
            max_background_fraction=v["max_background_fraction"],
            min_object_area=v["min_object_area"],
            max_split_fraction=v["max_split_fraction"],
        )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _few(values, n: int = 5) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:n])
    return shown + (f" and {len(values) - n} more" if len(values) > n else "")


def check_labels(lab: np.ndarray, path: Path, settings: Settings) -> tuple[dict, list[Problem], np.ndarray]:
    """Check a label matrix. Returns (statistics, problems, the label values present, 0 excluded)."""
    stats: dict = {"label_dtype": str(lab.dtype)}
    lab, problem = _as_integer_labels(lab, path, settings.dim)
    if problem is not None:
        return stats, [problem], np.array([], dtype=np.int64)
    flat = lab.ravel()
    top = int(flat.max()) if flat.size else 0
    values, areas = _label_areas(flat, top)
    n = len(values)
    fg = float(areas.sum()) / max(flat.size, 1)
    stats.update(
        objects=n,
        max_label=top,
        foreground_fraction=round(fg, 4),
        median_object_area=float(np.median(areas)) if n else 0.0,
    )
    if n == 0:
        problem = error(
            path,
            "empty-labels",
            "label matrix has no objects (all background): Omnipose stops training with"
            " 'Sparse or over-dense image detected'",
            "draw the objects in this image, or remove the pair from the training folder",
        )
        return stats, [problem], values
    problems: list[Problem] = []
    if path.suffix.lower() == ".png" and top >= 65535:
        problems.append(
            error(
                path,
                "png-label-overflow",
                f"PNG label file reaches {top}, the 16-bit limit of PNG: labels above 65535 were"
                " lost or wrapped when it was saved",
                "save the label matrix as .tif (uint32) instead of .png",
            )
        )
    split, pieces = _split_labels(lab, flat, top)
    stats["split_labels"] = len(split)
    problems += _split_problems(path, values, split, pieces, settings)
    problems += _content_warnings(path, values, areas, fg, settings)
    return stats, problems, values


def _dimension_mismatch(what: str, shape: tuple[int, ...], dim: int) -> tuple[str, str]:
    """(message, fix) for an image or label file whose number of axes does not fit ``dim``: a volume in a
    2D run, a 2D image in a 3D run (dim is one of the things that never change after training)."""
    axes = (
        f"{what} have {len(shape)} axes {tuple(shape)}"
        if what == "labels"
        else (f"{what} has {len(shape)} axes {tuple(shape)}")
    )
    if dim == 2 and len(shape) == 3 and what == "labels":
        return (
            f"{axes}: a label volume (ZYX), but dim is 2 (2D training wants one YX label matrix per image)",
            "to train a 3D model on volumes set dim: 3 (see config/demo3d.yaml); for 2D, save one YX label"
            " matrix per image (a stack of 2D images is one file per plane)",
        )
    if dim == 3 and len(shape) == 2:
        kind = "label matrix" if what == "labels" else what
        return (
            f"{axes}: a 2D {kind} (YX), but dim is 3 (3D training wants ZYX volumes)",
            "save the volume itself (ZYX, one file per volume), or train 2D images in a run with dim: 2",
        )
    if what == "labels":
        return f"{axes}; with dim = {dim} a label matrix has {dim}", (
            f"save one {dim}D label matrix per image (no channel or stack axis)"
        )
    return f"{axes}; with dim = {dim} it must have {dim} (one channel) or {dim + 1} (several channels)", (
        "save the image with its spatial axes and at most one channel axis"
    )


def _equal_channels(lab: np.ndarray) -> bool:
    """Whether the colour channels (R, G, B; alpha aside) of a channel-last image are equal everywhere."""
    return bool(np.array_equal(lab[..., 0], lab[..., 1]) and np.array_equal(lab[..., 0], lab[..., 2]))


def _as_integer_labels(lab: np.ndarray, path: Path, dim: int) -> tuple[np.ndarray, Problem | None]:
    """The labels as integers, or the error that says why they are no label matrix."""
    if lab.ndim == dim + 1 and lab.shape[-1] in (3, 4) and _equal_channels(lab):
        return lab, error(
            path,
            "colour-labels",
            f"labels are a colour image {lab.shape} whose colour channels are equal: a grey label matrix"
            " saved as RGB, which holds at most 255 objects and loses any label above 255",
            "save the label matrix as a one-channel image (a 16-bit TIFF or PNG) from your annotation tool",
        )
    if lab.ndim == dim + 1 and lab.shape[-1] in (3, 4):
        return lab, error(
            path,
            "colour-labels",
            f"labels are a colour image {lab.shape} (each object painted in a colour), not a label matrix",
            "export the label matrix itself (one integer per object, 0 = background), e.g. as a"
            " 16-bit TIFF from your annotation tool",
        )
    if lab.ndim != dim:
        return lab, error(path, "label-dimensions", *_dimension_mismatch("labels", lab.shape, dim))
    if lab.dtype == bool:
        return lab, error(
            path,
            "binary-mask",
            "labels are a boolean (binary) mask, not a label matrix: touching cells cannot be told apart",
            "save one integer per object (0 = background, 1..N = objects), e.g."
            " skimage.measure.label(mask) if no cells touch, or re-export instance labels",
        )
    if not np.issubdtype(lab.dtype, np.integer):
        if not np.issubdtype(lab.dtype, np.floating):
            return lab, error(
                path,
                "label-dtype",
                f"labels have dtype {lab.dtype}, not integers",
                "save the label matrix as unsigned integers (uint16 or uint32)",
            )
        if not np.all(np.isfinite(lab)) or np.any(lab != np.round(lab)):
            return lab, error(
                path,
                "float-labels",
                "labels are floating point with fractional or non-finite values: this is a"
                " probability map or an interpolated (resized) label image, not a label matrix",
                "save the integer label matrix; resize labels only with nearest-neighbour"
                " interpolation (order=0)",
            )
        lab = lab.astype(np.int64)
    if lab.size and lab.min() < 0:
        return lab, error(
            path,
            "negative-labels",
            f"labels contain negative values (minimum {lab.min()})",
            "use 0 for background and 1..N for objects (e.g. save as uint16/uint32)",
        )
    return lab, None


def _dense(top: int, size: int) -> bool:
    """Label values small enough for bincount (sparse huge ids would allocate max-label entries)."""
    return top < 4 * size + 1024


def _label_areas(flat: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """The label values present (0 excluded) and the area of each."""
    if _dense(top, flat.size):
        counts = np.bincount(flat)
        values = np.flatnonzero(counts)
        areas = counts[values]
    else:
        values, areas = np.unique(flat, return_counts=True)
    keep = values != 0
    return values[keep], areas[keep]


def _split_labels(lab: np.ndarray, flat: np.ndarray, top: int) -> tuple[np.ndarray, int]:
    """The labels made of several separate pieces, and the number of pieces in all."""
    # Connected pieces of each label: skimage joins neighbouring pixels of EQUAL value only.
    # Face connectivity: a pixel that touches the rest of its label only at a corner counts as a
    # separate piece (a stray pixel is the usual annotation defect, e.g. in the DSB 2018 labels).
    pieces = connected_components(lab, background=0, connectivity=1)
    owner = np.zeros(int(pieces.max()) + 1, dtype=np.int64)
    owner[pieces.ravel()] = flat
    if _dense(top, flat.size):
        split = np.flatnonzero(np.bincount(owner[1:], minlength=top + 1) > 1)
    else:
        vals, cnt = np.unique(owner[1:], return_counts=True)
        split = vals[cnt > 1]
    return split, int(pieces.max())


def _split_problems(path: Path, values, split, pieces: int, settings: Settings) -> list[Problem]:
    """A binary or semantic mask (errors), or labels split into pieces (a warning)."""
    n = len(values)
    if n == 1 and len(split) == 1:
        return [
            error(
                path,
                "binary-mask",
                f"labels are a binary mask: the single value {values[0]} covers {pieces} separate objects",
                "save one integer per object (0 = background, 1..N = objects), e.g."
                " skimage.measure.label(mask > 0) if no cells touch, or re-export instance labels",
            )
        ]
    if len(split) > settings.max_split_fraction * n:
        return [
            error(
                path,
                "semantic-mask",
                f"{len(split)} of {n} label values each cover several separate objects: this looks"
                " like a semantic (class) mask, not an instance label matrix",
                "give every object its own label value (instance labels), e.g. from your annotation"
                " tool's instance export",
            )
        ]
    if len(split):
        return [
            warning(
                path,
                "split-labels",
                f"{_plural(len(split), 'label')} split into separate pieces ({_few(split)}): each is"
                " trained as one object",
                "give each piece its own label, or join the pieces, in the annotation tool",
            )
        ]
    return []


def _content_warnings(path: Path, values, areas, fg: float, settings: Settings) -> list[Problem]:
    """Few objects, mostly background, tiny objects: worth a look, not a reason to stop."""
    out = []
    n = len(values)
    if n < settings.min_objects:
        out.append(
            warning(
                path,
                "few-objects",
                f"only {_plural(n, 'object')} (validation.min_objects is {settings.min_objects})",
                "check that the labels are complete",
            )
        )
    if 1 - fg > settings.max_background_fraction:
        # Packing is 2D only; in 3D, validate_training_set's sparse check says how often crops are empty.
        fix = (
            "crop the image around the cells, or leave it to the pipeline's dense-crop packing"
            if settings.dim == 2
            else "crop the volume around the cells if the training-set check finds its crops too often empty"
        )
        what = f"{(1 - fg) * 100:.1f}% of the image is background: " + (
            "most training crops will be empty" if settings.dim == 2 else "many training crops may be empty"
        )
        out.append(warning(path, "mostly-background", what, fix))
    tiny = values[areas < settings.min_object_area]
    if len(tiny):
        out.append(
            warning(
                path,
                "tiny-objects",
                f"{_plural(len(tiny), 'object')} smaller than {settings.min_object_area} pixels"
                f" ({_few(tiny)}): often stray clicks in the annotation tool",
                "delete them, or lower validation.min_object_area if they are real",
            )
        )
    return out


def check_image(img: np.ndarray, path: Path, label_shape, settings: Settings) -> tuple[dict, list[Problem]]:
    """Check an image against its label's shape and the channel plan."""
    stats: dict = {"image_shape": "x".join(map(str, img.shape)), "image_dtype": str(img.dtype)}
    problems: list[Problem] = []
    if not (np.issubdtype(img.dtype, np.number) or img.dtype == bool) or np.iscomplexobj(img):
        problems.append(
            error(path, "image-dtype", f"image has dtype {img.dtype}", "save the image as integers or floats")
        )
        return stats, problems
    axis, why = find_channel_axis(img.shape, label_shape, settings.dim, settings.channel_axis)
    if why:
        if len(img.shape) not in (settings.dim, settings.dim + 1):
            problems.append(error(path, "image-axes", *_dimension_mismatch("image", img.shape, settings.dim)))
        else:
            layout = "ZYX" if settings.dim == 3 else "YX"
            fix = f"save the image as {layout} or {layout} with one channel axis"
            problems.append(error(path, "image-axes", why, fix))
        return stats, problems
    spatial = img.shape if axis is None else tuple(np.delete(img.shape, axis))
    n_channels = 1 if axis is None else img.shape[axis]
    stats["channels"] = n_channels
    if label_shape is not None and tuple(spatial) != tuple(label_shape):
        problems.append(
            error(
                path,
                "shape-mismatch",
                f"image is {'x'.join(map(str, spatial))} pixels"
                + (f" (channel axis {axis} removed)" if axis is not None else "")
                + f" but its label matrix is {'x'.join(map(str, label_shape))}",
                "re-export the label matrix from this very image (same size, no crop or resize)"
                + ("" if axis is not None or settings.channel_axis is None else ", or fix channel_axis"),
            )
        )
    why = settings.plan.incompatibility(n_channels)
    if why:
        problems.append(
            error(path, "channels", why, "fix nchan, chan/chan2, all_channels or channels.select")
        )
    if np.issubdtype(img.dtype, np.floating) and not np.all(np.isfinite(img)):
        problems.append(
            error(
                path,
                "non-finite-image",
                "image contains NaN or infinite values: training losses become NaN",
                "replace them (e.g. numpy.nan_to_num) when exporting the image",
            )
        )
    elif img.size and img.min() == img.max():
        problems.append(
            error(
                path,
                "constant-image",
                f"image has the same value ({img.flat[0]}) everywhere: blank or saturated export",
                "re-export the image, or remove the pair",
            )
        )
    # In 3D the crop is a cube (Omnipose 1.1.4 needs one), so a volume of fewer planes than tyx is the rule
    # rather than a mistake: only a short y or x is worth a warning there.
    checked = slice(1, None) if settings.dim == 3 else slice(None)
    if settings.tyx is not None and any(
        s < t for s, t in zip(spatial[checked], settings.tyx[checked], strict=True)
    ):
        problems.append(
            warning(
                path,
                "smaller-than-tyx",
                f"image {'x'.join(map(str, spatial))} is smaller than the training crop tyx"
                f" {list(settings.tyx)}: Omnipose pads it with zeros",
                "use a smaller tyx"
                + (
                    ", or leave such images to the pipeline's dense-crop packing"
                    if settings.dim == 2
                    else " (a cube: Omnipose 1.1.4 needs one in 3D)"
                ),
            )
        )
    return stats, problems


def check_links(path: Path, values: np.ndarray) -> tuple[int, list[Problem]]:
    """Parse a links file (CSV rows of label integers, Omnipose's format) against the labels present."""
    problems: list[Problem] = []
    links: list[tuple[int, ...]] = []
    with open(path, newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            if not row or not "".join(row).strip():
                continue
            try:
                links.append(tuple(int(v) for v in row))
            except ValueError:
                problems.append(
                    error(
                        path,
                        "links-syntax",
                        f"line {lineno} {','.join(row)!r} is not a comma-separated list of label integers",
                        "write one link per line as two label values, e.g. '3,7'",
                    )
                )
                return 0, problems
    present = set(values.tolist())
    absent = sorted({v for link in links for v in link if v not in present})
    if absent:
        problems.append(
            error(
                path,
                "links-unknown-label",
                f"links name label(s) {_few(absent)} that do not exist in the label matrix",
                "remove those links, or relabel consistently with the label matrix",
            )
        )
    return len(links), problems


def check_pair(pair: Pair, settings: Settings) -> tuple[dict, list[Problem]]:
    """Read and check one pair; returns its table row (without problem columns) and its problems."""
    row: dict = {"base": pair.base, "image": str(pair.image), "label": str(pair.label)}
    row["links"] = str(pair.links) if pair.links else ""
    row["n_links"] = 0
    lab, problems = _read_labels(pair.label, settings.dim)
    img, found = _read(pair.image, "image", settings.dim)
    problems += found
    values = np.array([], dtype=np.int64)
    label_ok = False
    if lab is not None:
        stats, found, values = check_labels(lab, pair.label, settings)
        row.update(stats)
        problems.extend(found)
        label_ok = not any(p.code in _SHAPELESS for p in found)
    if img is not None:
        label_shape = lab.shape if lab is not None and label_ok else None
        stats, found = check_image(img, pair.image, label_shape, settings)
        row.update(stats)
        problems.extend(found)
    if pair.links is not None and lab is not None:
        row["n_links"], found = check_links(pair.links, values)
        problems.extend(found)
    return row, problems


def several_pages(path: Path, what: str, dim: int, fix: str | None = None) -> Problem | None:
    """The error for a TIFF whose pages were saved as separate images in a 2D run (which takes one image per
    file; tifffile alone would read the first page and drop the others in silence); None otherwise."""
    try:
        pages = read_header(path).images
    except Exception:  # an unreadable header: reading the file reports it with its reason
        return None
    if pages == 1 or dim != 2:
        return None
    return error(
        path,
        "several-pages",
        f"the {what} holds {pages} pages saved as separate images, and a 2D run takes one image per file",
        fix
        or "save each page as its own file (an image and its label file per page); if the pages are the"
        " planes of one volume, train it with dim: 3, which reads them as one ZYX stack",
    )


def _read(path: Path, what: str, dim: int) -> tuple[np.ndarray | None, list[Problem]]:
    """The array of an image or label file, or the problem that says why it cannot be used."""
    problem = several_pages(path, what, dim)
    if problem:
        return None, [problem]
    try:
        return read_array(path), []
    except TooLarge as exc:
        return None, [
            error(
                path,
                "too-large",
                f"{what} not read: {exc}",
                "crop or tile it into pieces below the limit (the pipeline tiles images of a usable size"
                " itself), or run on a machine with more memory",
            )
        ]
    except ReadError as exc:
        return None, [error(path, "unreadable", f"cannot read the {what} ({exc})", "re-export the file")]


def _read_labels(path: Path, dim: int) -> tuple[np.ndarray | None, list[Problem]]:
    """The label matrix, unless a lossy TIFF compression (JPEG, ...) has changed its values."""
    try:
        compression = read_header(path).compression
    except Exception:  # an unreadable header: reading the file reports it with its reason
        compression = None
    if compression:
        return None, [
            error(
                path,
                "lossy-compressed-labels",
                f"the label TIFF is {compression}-compressed: lossy compression changes label values at"
                " object edges (each object gets a fringe of new values)",
                "export the label matrix again without lossy compression (no compression, zlib/deflate or"
                " LZW), from the annotation tool's original labels",
            )
        ]
    return _read(path, "label file", dim)


#: Label errors after which the label's shape says nothing about the image's.
_SHAPELESS = ("colour-labels", "label-dimensions")


def validate_pairs(
    discovery: Discovery, settings: Settings, min_pairs: int = 2
) -> tuple[pd.DataFrame, list[Problem]]:
    """The table (one row per pair) and every problem: naming problems first, then per pair."""
    problems = discovery.problems(min_pairs)
    rows = []
    for pair in discovery.pairs:
        row, found = check_pair(pair, settings)
        row["errors"] = len(errors(found))
        row["warnings"] = len(found) - row["errors"]
        row["problems"] = "; ".join(f"{p.severity}: {p.what}" for p in found)
        rows.append(row)
        problems.extend(found)
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table, problems


def validate_folder(
    config: dict, folder: str | Path | None = None, min_pairs: int = 2
) -> tuple[pd.DataFrame, list[Problem]]:
    """Discover and check the training folder of a (checked) config (or another folder with its rules)."""
    found = discover(
        folder if folder is not None else config["dir"],
        img_filter=config["img_filter"],
        mask_filter=config["mask_filter"],
        look_one_level_down=config["look_one_level_down"],
    )
    return validate_pairs(found, Settings.from_config(config), min_pairs)


def naming_refusal(found: Discovery, test_found: Discovery | None) -> str:
    """The report of the naming errors of the training (and test) folder, or "" when there are none.

    Naming errors need no pixel to be read, so they are known when the workflow starts: every
    per-image job refuses to run with them (images without labels, labels without images, two
    images with one base name, ...), whatever the target, and nothing is prepared, packed or trained.
    """
    problems = errors(found.problems())
    if test_found is not None:
        problems += errors(test_found.problems(min_pairs=1))
    if not problems:
        return ""
    return format_report(problems, "The input folders have naming errors") + (
        "\nNothing is prepared, packed or trained until they are fixed (validate_inputs lists every problem)."
    )


def summary_text(table: pd.DataFrame, problems: list[Problem], title: str) -> str:
    """A human-readable summary: counts, then every problem with its fix."""
    objects = table["objects"].dropna()
    head = [title, f"pairs: {len(table)}; objects: {int(objects.sum())}"]
    if len(objects):
        head.append(
            f"objects per image: min {int(objects.min())} / median {float(objects.median()):g}"
            f" / max {int(objects.max())}"
        )
    return "\n".join(head) + "\n" + format_report(problems, "Validation")
