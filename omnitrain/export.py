"""BioImage Model Zoo packages of registered versions (``snakemake export``, docs/export.md).

A package holds the network a version was scored with, as the zoo's model format 0.5 describes it: the
architecture imported from ``cellpose_omni`` (the kwargs Omnipose builds from the model card) with its
state_dict, the same network traced to TorchScript, a test input cut from a held-out image with the
network's output on it as Omnipose computes it, unpadded (``bioimageio test`` reproduces it with each weight
format), a cover
made from the held-out overlay, and a documentation page with the held-out scores, the training data and how
Omnipose makes masks from the outputs. ``bioimageio.spec`` writes and zips it; ``bioimageio.core`` tests it.

The package's preprocessing is Omnipose's: each channel scaled so its 0.01 and 99.99 percentiles become
0 and 1, clipped; Omnipose pads 8 px each side by reflection before the network, which the zoo expresses as
an output halo of 8 px with reflect padding. Masks are not part of it: the zoo's only flow postprocessing
is Cellpose's (cell probability), while Omnipose's third output is a distance field with its own
reconstruction (the documentation page has the call).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .hashing import version_id
from .registry import RegistryProblem, resolve
from .segmentation import SegmentError, model_files, model_settings

#: Below the results folder: one package of one version, keyed by the export settings and code.
EXPORT_FOLDER = "exports/{model}/{key}"
#: The pointer to the package made last (and the link exports/latest.zip).
LATEST = "exports/latest.txt"

#: Omnipose pads each side by 8 px (cellpose_omni.transforms.pad_image_ND: extra * div // 2) and to a multiple
#: of 16 before the network: the outputs' halo, and the input sizes the package accepts (32 + 16 n).
HALO = 8
SIZE_STEP = 16
MIN_SIZE = 2 * HALO + SIZE_STEP
#: The test input: at most this many pixels per side, cut from the middle of a held-out image.
TEST_SIZE = 256
#: Omnipose's percentiles (omnipose.utils.normalize99, applied per channel by cellpose_omni).
PERCENTILES = (0.01, 99.99)
#: CPnet's constructor arguments that decide its weights' shapes and its forward pass.
ARCHITECTURE_KEYS = (
    "nbase", "nout", "sz", "residual_on", "style_on", "concatenation", "dim", "kernel_size", "scale_factor",
    "dilation",
)  # fmt: skip
#: CellposeModel.eval's reconstruction settings that the pipeline leaves at their default.
EVAL_DEFAULTS = {"min_size": 15, "diam_threshold": 12.0, "flow_factor": 5.0, "interp": True}

OMNIPOSE_CITATION = {
    "text": "Cutler KJ, Stringer C, Lo TW, et al. Omnipose: a high-precision morphology-independent solution"
    " for bacterial cell segmentation. Nature Methods 19, 1438-1448 (2022)",
    "doi": "10.1038/s41592-022-01639-4",
}
CELLPOSE_CITATION = {
    "text": "Stringer C, Wang T, Michaelos M, Pachitariu M. Cellpose: a generalist algorithm for cellular"
    " segmentation. Nature Methods 18, 100-106 (2021)",
    "doi": "10.1038/s41592-020-01018-x",
}


class ExportError(ValueError):
    """A version that cannot be exported: the message says what to do."""


def plan(config: dict, results: str, code: str, env: str) -> dict:
    """What `snakemake export` makes: the version ``export.model`` names, its files, the package's folder."""
    settings = dict(config["export"])
    name = str(settings.pop("model"))
    check_settings(settings)
    try:
        record = resolve(results, name, experiments=True)
    except RegistryProblem as exc:
        raise ExportError(f"export.model: {exc}") from None
    version = record["version"]
    try:
        files = model_files(record)
        folders = record["paths"]["folders"]
        files.update(
            record=f"{results}/versions/{version}/record.json",
            heldout=folders["heldout"],
            predictions=folders["prediction"],
        )
        prediction = model_settings(record)["prediction"]
    except (SegmentError, KeyError):
        raise ExportError(
            f"export.model: version {version} was registered before its settings and folders were recorded"
            " (December 2026): it cannot be exported; name a newer version (see registry.tsv)"
        ) from None
    missing = [str(f) for f in files.values() if f and not Path(f).exists()]
    if missing:
        raise ExportError(
            f"version {version}'s files are gone ({', '.join(missing)}): removed by hand? Name another"
            f" version with export.model (see {results}/registry.tsv)"
        )
    if not record.get("data", {}).get("test_images"):
        raise ExportError(
            f"version {version} has no held-out images: a package's test tensors, cover and scores come from"
            " them; name a version scored on held-out images with export.model"
        )
    card = json.loads(Path(files["card"]).read_text())
    if card["dim"] != 2:
        raise ExportError(
            f"version {version} is a {card['dim']}D model: export makes packages of 2D models only (the"
            " package's halo and test tensors are 2D); name a 2D version with export.model"
        )
    key = version_id("export", version, settings, code, env)
    return {
        "version": version,
        "key": key,
        "folder": f"{results}/{EXPORT_FOLDER.format(model=version, key=key)}",
        "settings": settings,
        "prediction": prediction,
        "files": files,
    }


def package_name(version: str) -> str:
    return f"omnipose_{version}.zip"


def valid_size(length: int, at_most: int = TEST_SIZE) -> int:
    """The largest size the package accepts (MIN_SIZE + SIZE_STEP n), at most ``length`` and ``at_most``."""
    n = (min(length, at_most) - MIN_SIZE) // SIZE_STEP
    if n < 0:
        raise ExportError(
            f"an image side of {length} px is below the package's smallest input, {MIN_SIZE} px"
        )
    return MIN_SIZE + n * SIZE_STEP


def middle_crop(image: np.ndarray, at_most: int = TEST_SIZE) -> np.ndarray:
    """The middle of a (channels, y, x) image, each side cut to a size the package accepts."""
    out = image
    for axis in (-2, -1):
        length = image.shape[axis]
        size = valid_size(length, at_most)
        start = (length - size) // 2
        out = np.take(out, np.arange(start, start + size), axis=axis)
    return out


def pick_test_image(pairs, nchan: int):
    """(the first held-out pair whose image is at least MIN_SIZE px on each side, that image channels first
    as float32): the test tensors and the cover come from it."""
    from .imageio import read_array

    for pair in pairs:
        image = channels_first(read_array(pair.image), nchan).astype(np.float32)
        if min(image.shape[-2:]) >= MIN_SIZE:
            return pair, image
    raise ExportError(
        f"no held-out image is {MIN_SIZE} px or more on each side ({', '.join(p.image.name for p in pairs)}):"
        " the package's test tensors are cut from one; name a version with larger held-out images"
    )


def pad_to_valid(image: np.ndarray) -> tuple[np.ndarray, tuple[slice, ...]]:
    """(the image padded by reflection to sizes the package accepts, the slices that cut the output back
    to the image), each side padded as Omnipose pads it: half before, the rest after."""
    pads, cuts = [], []
    for length in image.shape[-2:]:
        missing = max(MIN_SIZE, -(-length // SIZE_STEP) * SIZE_STEP) - length
        pads.append((missing // 2, missing - missing // 2))
        cuts.append(slice(missing // 2, missing // 2 + length))
    padded = np.pad(image, [(0, 0)] * (image.ndim - 2) + pads, mode="reflect")
    return padded, (Ellipsis, *cuts)


def channels_first(image: np.ndarray, nchan: int) -> np.ndarray:
    """A held-out image as the model takes it (one channel: no channel axis) with its channel axis first."""
    return image[None] if nchan == 1 and image.ndim == 2 else image


def network_input(image: np.ndarray) -> np.ndarray:
    """A (channels, y, x) image normalised as Omnipose normalises it (cellpose_omni.transforms.normalize_img
    with omni=True: each channel on its own)."""
    from cellpose_omni import transforms

    normalised = transforms.normalize_img(np.moveaxis(image, 0, -1).astype(np.float32), omni=True)
    return np.ascontiguousarray(np.moveaxis(normalised, -1, 0))


def network_output(model, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flows (1, nout, y, x), style (1, 256)) of a (channels, y, x) image: Omnipose's normalisation and its
    own network call (``model.network``, what CellposeModel.eval runs on each padded image)."""
    flows, style = model.network(network_input(image)[None])
    return np.asarray(flows, dtype=np.float32), np.asarray(style, dtype=np.float32)


def pipeline_flows(model, image: np.ndarray) -> np.ndarray:
    """(nout, y, x): the network's output on a (channels, y, x) image as the pipeline's Omnipose call computes
    it (CellposeModel.eval at the image's own scale: Omnipose's normalisation, then its padding, network and
    cut, ``_run_nets`` of cellpose_omni 1.1.4)."""
    flows, _ = model._run_nets(np.moveaxis(network_input(image), 0, -1), net_avg=False, tile=False)
    return np.moveaxis(np.asarray(flows, dtype=np.float32), -1, 0)


def architecture(net) -> dict:
    """The kwargs of cellpose_omni.resnet_torch.CPnet that rebuild ``net`` (the network Omnipose made from the
    model card's nchan, nclasses and dim)."""
    return {
        k: (list(v) if isinstance(v, (list, tuple)) else v)
        for k in ARCHITECTURE_KEYS
        for v in [getattr(net, k)]
    }


def output_channels(nout: int, dim: int = 2) -> list[str]:
    """The network's output channels: the flow field's components, the distance field, and the boundary
    logits when the model has them (nclasses 3: dim + 2 outputs)."""
    names = ["flow_y", "flow_x", "distance"] + ["boundary"] * (nout == dim + 2)
    if len(names) != nout:
        raise ExportError(f"a {dim}D network with {nout} outputs is none Omnipose 1.1.4 makes")
    return names


def masks_from_flows(flows: np.ndarray, evaluation: dict, dim: int = 2) -> np.ndarray:
    """Masks from one image's network output (nout, y, x), made as the pipeline makes them: Omnipose's
    reconstruction with the version's thresholds (omnipose.core.compute_masks, called as CellposeModel.eval
    calls it at the image's own scale)."""
    from omnipose.core import compute_masks

    boundary = flows[dim + 1] if flows.shape[0] == dim + 2 else None
    return compute_masks(
        flows[:dim],
        flows[dim],
        bd=boundary,
        niter=evaluation["niter"],
        mask_threshold=float(evaluation["mask_threshold"]),
        flow_threshold=float(evaluation["flow_threshold"]),
        nclasses=flows.shape[0],  # CellposeModel's nclasses: the network's outputs
        dim=dim,
        **EVAL_DEFAULTS,
    )[0]


def package_flows(description, image: np.ndarray) -> np.ndarray:
    """The package's ``flows`` (nout, y, x) for one (channels, y, x) image of any size, run by bioimageio.core
    as another tool runs it: padded to a size it accepts (:func:`pad_to_valid`), then cut back."""
    from bioimageio.core import predict

    padded, cut = pad_to_valid(image.astype(np.float32))
    out = predict(model=description, inputs={"image": padded[None]})
    return out.members["flows"].data.values[0][cut]


def cover_picture(plain: np.ndarray, overlay: np.ndarray, at_most: int = 400) -> np.ndarray:
    """RGB uint8, twice as wide as high (the zoo's cover shape): the middle square of the image as drawn
    without its masks beside the same square of its overlay (both RGB, one size), at most ``at_most`` px high
    (every n-th pixel: the zoo asks for small covers, below 500 kB)."""
    side = min(plain.shape[:2])
    y, x = (plain.shape[0] - side) // 2, (plain.shape[1] - side) // 2
    step = -(-side // at_most)
    square = (slice(y, y + side, step), slice(x, x + side, step))
    return np.concatenate([plain[square][..., :3], overlay[square][..., :3]], axis=1)


def conda_environment(versions: dict) -> str:
    """The package's environment (its pytorch_state_dict weights import cellpose_omni): the torch and Omnipose
    the model was trained with (the model card's, without a local build tag such as +cu130, which PyPI has
    not), and ncolor, which Omnipose 1.1.4 imports without requiring it."""
    pins = {name: str(versions[name]).split("+")[0] for name in ("torch", "omnipose", "ncolor")}
    return (
        "name: omnipose\nchannels:\n  - conda-forge\n  - nodefaults\n"
        "dependencies:\n  - python=3.11\n  - pip\n  - pip:\n"
        + "".join(f"      - {name}=={version}\n" for name, version in pins.items())
    )


def _scores_table(scores: dict) -> str:
    summary = scores["summary"]
    rows = [
        ("AP@0.5", "ap50"), ("AP@0.75", "ap75"), ("mean AP (0.5-0.95)", "mean_ap"),
        ("aggregated Jaccard", "aji"), ("panoptic quality", "pq"),
    ]  # fmt: skip
    lines = ["| metric | held-out images |", "|---|---|"]
    lines += [f"| {label} | {summary[key]:.3f} |" for label, key in rows if summary.get(key) is not None]
    per_image = ["| image | AP@0.5 | mean AP |", "|---|---|---|"]
    per_image += [
        f"| {n} | {s['ap50']:.3f} | {s['mean_ap']:.3f} |" for n, s in scores.get("per_image", {}).items()
    ]
    return "\n".join(lines) + "\n\nPer image:\n\n" + "\n".join(per_image)


def documentation(
    record: dict, card: dict, prediction: dict, test_image: str, name: str, package: dict | None = None
) -> str:
    """The package's README.md: inputs, outputs, how masks are made, the held-out validation (``package``: the
    package run by bioimageio.core on the held-out images: images, ap50, mean_ap, and per image its flows'
    max_difference from the pipeline's and their range), the training."""
    ev = prediction["evaluation"]
    channels = output_channels(card_nout(card), card["dim"])
    data, settings = record["data"], card["settings"]
    rescaled = prediction["train_size"] and prediction["diameter"] > 0 and ev["use_size_model"]
    scale = (
        f"This version's evaluation rescaled each image so its objects were {card['diam_mean']:.0f} px across"
        " (their diameter predicted by its size model, which is not part of this package): do the same."
        if rescaled
        else "This version was trained and scored at the images' own scale: give images at that scale."
    )
    boundary = "\n- `boundary`: boundary logits (nclasses 3)." if "boundary" in channels else ""
    package_line = ""
    if package:
        differences = package["flows"].values()
        largest = max((d["max_difference"] for d in differences), default=0.0)
        share = max((d["max_difference"] / d["range"] for d in differences if d["range"] > 0), default=0.0)
        pipeline = record["scores"]["summary"]
        package_line = (
            f" Run this way by bioimageio.core on the {package['images']} held-out image(s), this package"
            f" scores AP@0.5 {package['ap50']:.3f} and mean AP {package['mean_ap']:.3f}; the pipeline's own"
            f" masks scored {pipeline['ap50']:.3f} and {pipeline['mean_ap']:.3f}"
            + (" (with its size model's rescaling, which the package's run had not)" if rescaled else "")
            + f". Its flows differ from the pipeline's by at most {largest:.3g} ({100 * share:.2g} % of an"
            " image's range at most)."
        )
    return f"""# {name}

An [Omnipose](https://github.com/kevinjohncutler/omnipose) network (Omnipose {card["versions"]["omnipose"]},
torch {card["versions"]["torch"]}) trained by the omnitrain Snakemake pipeline: version `{record["version"]}`
(experiment `{record.get("experiment", "base")}`{f", fold {record['fold']}" if record.get("fold") else ""}),
registered {record["created"]}.

## Input

`image`: one 2D image, {card["nchan"]} channel(s), batch x channel x y x x, float32, each side
{MIN_SIZE} + {SIZE_STEP} n px. The package normalises each channel as Omnipose does: its {PERCENTILES[0]} and
{PERCENTILES[1]} percentiles become 0 and 1, clipped to [0, 1]. Omnipose pads each side by {HALO} px by
reflection before the network (and to a multiple of {SIZE_STEP}): the outputs declare that as a halo
of {HALO} px with reflect padding. {scale}

## Outputs

`flows` (batch x channel x y x x), Omnipose's fields:
- `flow_y`, `flow_x`: the flow field, pointing along the distance field's gradient towards each object's
  skeleton.
- `distance`: the distance field, positive inside objects (`mask_threshold` applies to it).{boundary}

`style`: Cellpose's style vector (256 values, norm 1), which Omnipose's size model reads.

## From outputs to masks

Masks come from Omnipose's reconstruction, not from the zoo's Cellpose postprocessing (which expects a cell
probability, not a distance field). With this version's settings (mask_threshold {ev["mask_threshold"]},
flow_threshold {ev["flow_threshold"]}, niter {ev["niter"]}):

```python
import numpy as np
from bioimageio.core import load_model_description, predict
from omnipose.core import compute_masks

model = load_model_description("{package_name(record["version"])}")
# image: channels x y x x; padded by reflection to 32 + 16 n px per side, half before, as Omnipose pads
size = [max(32, -(-n // 16) * 16) for n in image.shape[-2:]]
pads = [(0, 0)] + [((s - n) // 2, s - n - (s - n) // 2) for s, n in zip(size, image.shape[-2:])]
padded = np.pad(image.astype("float32"), pads, mode="reflect")
flows = predict(model=model, inputs={{"image": padded[None]}}).members["flows"].data.values[0]
flows = flows[:, pads[1][0] : pads[1][0] + image.shape[-2], pads[2][0] : pads[2][0] + image.shape[-1]]
masks = compute_masks(
    flows[:2], flows[2], bd={"flows[3]" if boundary else "None"}, niter={ev["niter"]},
    mask_threshold={float(ev["mask_threshold"])}, flow_threshold={float(ev["flow_threshold"])},
    nclasses={len(channels)}, dim=2, min_size={EVAL_DEFAULTS["min_size"]},
    diam_threshold={EVAL_DEFAULTS["diam_threshold"]}, flow_factor={EVAL_DEFAULTS["flow_factor"]}, interp=True,
)[0]
```

The outputs are not quite the pipeline's: Omnipose normalises the image, then pads it by reflection in one
step (8 px each side and up to 15 more to a multiple of 16); here the image is padded to a size the package
accepts, then bioimageio.core pads its halo and normalises the padded image (its percentiles see the
padding).{package_line} Omnipose also leaves a channel unnormalised when its 1st and 99th percentiles are
within 0.001 of each other; the package scales every channel.

## Validation

Scored by the pipeline on {data["test_images"]} held-out image(s) with {data["test_objects"]} labelled
objects, never trained on (average precision at IoU thresholds; masks made by Omnipose's reconstruction with
the settings above):

{_scores_table(record["scores"])}

The test tensors are the middle of the held-out image `{test_image}` and the network's output on it as
Omnipose computes it, without its padding (both weight formats reproduce it); the cover shows that image and
its masks.

## Training

{data["train_images"]} training image(s) with {data["train_objects"]} objects ({data["training_images"]}
image(s) and {data["training_objects"]} objects after tiling and packing), {card["epochs"]} epochs of
{card["crops_per_epoch"]} crops of {" x ".join(map(str, card["tyx"]))} px,
batch size {settings["batch_size"]},
{"RAdam" if settings["RAdam"] else "SGD"} at learning rate {settings["learning_rate"]}, seed {card["seed"]},
{"from " + str(card["pretrained_model"]) if card["pretrained_model"] else "from scratch"},
on {card["device"]}.
The version's record (`record.json`) lists every file, setting and package version.

## Cite

- {OMNIPOSE_CITATION["text"]}. doi:{OMNIPOSE_CITATION["doi"]}
- {CELLPOSE_CITATION["text"]}. doi:{CELLPOSE_CITATION["doi"]}
"""


def card_nout(card: dict) -> int:
    """The network's output channels: Omnipose 1.1.4 gives a model with nclasses c (dim + c - 1) outputs."""
    return card["dim"] + card["nclasses"] - 1


#: The files of a package, as written into its staging folder before bioimageio.spec zips them.
STAGED = {
    "weights": "weights.pt",
    "torchscript": "weights_torchscript.pt",
    "test_input": "test_input.npy",
    "test_flows": "test_output_flows.npy",
    "test_style": "test_output_style.npy",
    "sample_input": "sample_input.tif",
    "sample_flows": "sample_output_flows.tif",
    "sample_style": "sample_output_style.tif",
    "cover": "cover.png",
    "documentation": "README.md",
    "environment": "environment.yaml",
    "record": "record.json",
}


#: The description's fields that come from the config's export settings.
SETTING_FIELDS = ("name", "description", "authors", "license", "tags")


def describe(staged: Path, meta: dict):
    """The zoo's model description (bioimageio.spec, model format 0.5) of the files in ``staged``.

    ``meta``: name, description, authors, license, tags, architecture (CPnet's kwargs), torch (version),
    nchan, outputs (channel names). Export settings that bioimageio.spec rejects raise an ExportError naming
    the config keys (:func:`check_settings` finds them before the job)."""
    from pydantic import ValidationError

    try:
        return _describe(staged, meta)
    except ValidationError as exc:
        refusal = _refusal([e for e in exc.errors() if e["loc"] and e["loc"][0] in SETTING_FIELDS], meta)
        if refusal is None:
            raise
        raise refusal from None


def check_settings(settings: dict) -> None:
    """Raise an ExportError naming each export setting the Model Zoo format refuses (a name with other
    characters than letters, digits, spaces and _+-(), a license that is no SPDX id, a malformed ORCID...),
    checked as bioimageio.spec checks a description, without its network checks. Without bioimageio.spec
    installed here (the export job's environment has it) nothing is checked before the job."""
    try:
        from bioimageio.spec import ValidationContext
        from bioimageio.spec.model import v0_5 as v
    except ImportError:
        return
    from typing import Annotated

    from pydantic import TypeAdapter, ValidationError

    errors = []
    for key in SETTING_FIELDS:
        if settings.get(key) in (None, ""):
            continue  # the export's own (the job gives a name and a description to null or empty ones)
        field = v.ModelDescr.model_fields[key]
        try:
            with ValidationContext(perform_io_checks=False):
                TypeAdapter(Annotated[(field.annotation, *field.metadata)]).validate_python(settings[key])
        except ValidationError as exc:
            errors += [{**e, "loc": (key, *(k for k in e["loc"] if isinstance(k, int) or k in _SUBKEYS))}
                       for e in exc.errors()]  # fmt: skip
    refusal = _refusal(errors, settings)
    if refusal is not None:
        raise refusal


#: The keys below an export setting that a message names (an author's).
_SUBKEYS = ("name", "affiliation", "email", "orcid")


def _refusal(errors: list[dict], settings: dict) -> ExportError | None:
    """One message for pydantic's errors of the export settings (loc: the setting, then its keys)."""
    said = {}
    for e in errors:
        key = "export." + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in e["loc"])[1:]
        if e["loc"][0] == "license":  # pydantic lists every SPDX id it knows, three times
            key = "export.license"
            message = f"{settings['license']!r} is no SPDX license id (CC-BY-4.0, MIT, BSD-3-Clause, ...)"
        else:
            message = e["msg"].removeprefix("Value error, ")
        said.setdefault(key, message)
    if not said:
        return None
    problems = "; ".join(f"{key}: {message}" for key, message in said.items())
    return ExportError(f"the Model Zoo format refuses {problems}: correct it in the config")


def _describe(staged: Path, meta: dict):
    from bioimageio.spec.model import v0_5 as v

    def file(key):
        return v.FileDescr(source=staged / STAGED[key])

    space = v.ParameterizedSize(min=MIN_SIZE, step=SIZE_STEP)
    image = v.TensorId("image")
    spatial_in = [v.SpaceInputAxis(id=v.AxisId(a), size=space) for a in ("y", "x")]
    spatial_out = [
        v.SpaceOutputAxisWithHalo(id=v.AxisId(a), size=v.SizeReference(tensor_id=image, axis_id=v.AxisId(a)),
                                  halo=HALO)
        for a in ("y", "x")
    ]  # fmt: skip
    spatial = [v.AxisId("y"), v.AxisId("x")]
    inputs = v.InputTensorDescr(
        id=image,
        description=f"a 2D image, {meta['nchan']} channel(s), at the scale the model was trained at",
        axes=[
            v.BatchAxis(),
            v.ChannelAxis(channel_names=[v.Identifier(f"channel{i}") for i in range(meta["nchan"])]),
            *spatial_in,
        ],  # fmt: skip
        test_tensor=file("test_input"),
        sample_tensor=file("sample_input"),
        data=v.IntervalOrRatioDataDescr(type="float32"),
        # mode given explicitly: bioimageio.spec 0.5.12 leaves a default mode out of rdf.yaml, and an empty
        # `pad: {}` reads back as constant padding
        pad=v.ReflectPadding(mode="reflect"),
        preprocessing=[
            v.EnsureDtypeDescr(kwargs=v.EnsureDtypeKwargs(dtype="float32")),
            v.ScaleRangeDescr(
                kwargs=v.ScaleRangeKwargs(
                    axes=spatial, min_percentile=PERCENTILES[0], max_percentile=PERCENTILES[1]
                )
            ),
            v.ClipDescr(kwargs=v.ClipKwargs(min=0.0, max=1.0)),
        ],  # fmt: skip
    )
    flows = v.OutputTensorDescr(
        id=v.TensorId("flows"),
        description="Omnipose's fields: flow (y, x), distance"
        + (", boundary" if len(meta["outputs"]) > 3 else ""),
        axes=[
            v.BatchAxis(),
            v.ChannelAxis(channel_names=[v.Identifier(n) for n in meta["outputs"]]),
            *spatial_out,
        ],
        test_tensor=file("test_flows"),
        sample_tensor=file("sample_flows"),
    )
    style = v.OutputTensorDescr(
        id=v.TensorId("style"),
        description="Cellpose's style vector (norm 1)",
        axes=[
            v.BatchAxis(),
            v.ChannelAxis(channel_names=[v.Identifier(f"style{i:03d}") for i in range(256)]),
        ],
        test_tensor=file("test_style"),
        sample_tensor=file("sample_style"),
    )
    torch_version = v.Version(meta["torch"])
    weights = v.WeightsDescr(
        pytorch_state_dict=v.PytorchStateDictWeightsDescr(
            source=staged / STAGED["weights"],
            architecture=v.ArchitectureFromLibraryDescr(
                import_from="cellpose_omni.resnet_torch",
                callable=v.Identifier("CPnet"),
                kwargs=meta["architecture"],
            ),
            pytorch_version=torch_version,
            dependencies=file("environment"),
        ),
        torchscript=v.TorchscriptWeightsDescr(
            source=staged / STAGED["torchscript"], pytorch_version=torch_version, parent="pytorch_state_dict"
        ),
    )
    return v.ModelDescr(
        name=meta["name"],
        description=meta["description"],
        covers=[file("cover")],
        authors=meta["authors"],
        cite=[
            v.CiteEntry(text=c["text"], doi=v.Doi(c["doi"])) for c in (OMNIPOSE_CITATION, CELLPOSE_CITATION)
        ],
        license=meta["license"],
        documentation=file("documentation"),
        attachments=[file("record")],
        tags=sorted({"omnipose", "cellpose", "instance-segmentation", "2d", "pytorch", *meta["tags"]}),
        git_repo="https://github.com/kevinjohncutler/omnipose",
        inputs=[inputs],
        outputs=[flows, style],
        weights=weights,
        config=v.Config(bioimageio=v.BioimageioConfig(training=v.TrainingDetails(**meta["training"]))),
    )


def training_details(card: dict) -> dict:
    """The zoo's training details, from the model card."""
    settings = card["settings"]
    return {
        "training_epochs": float(card["epochs"]),
        "training_batch_size": float(settings["batch_size"]),
        "initial_learning_rate": float(settings["learning_rate"]),
        "optimizer": "RAdam" if settings["RAdam"] else "SGD",
        "loss_function": "Omnipose's loss (flow, distance and boundary terms)",
        "training_duration": float(card["wall_seconds"]),
    }


def save_package(description, path: Path) -> Path:
    """Zip the package with bioimageio.spec's own packaging (it checks the description, hashes the files)."""
    from bioimageio.spec import save_bioimageio_package

    return Path(save_bioimageio_package(description, output_path=path))


def check_package(path: Path) -> dict:
    """bioimageio.core's test of the package (what `bioimageio test` runs): status, failed, summary."""
    from bioimageio.core import test_model

    summary = test_model(str(path))
    failed = [f"{d.name}: {e.msg}" for d in summary.details for e in d.errors]
    return {"status": summary.status, "failed": failed, "summary": json.loads(summary.model_dump_json())}
