"""The source images of a run: their ids (the per-image wildcard), names, and train/test roles."""

from __future__ import annotations

from .discovery import Discovery, Pair
from .split import assign_folds, assign_split, assign_validation


def source_name(pair: Pair, root) -> str:
    """A source image's name: its path below the data folder, without extension (e.g. ``day1/a``)."""
    rel = pair.image.parent.relative_to(root)
    return pair.base if str(rel) == "." else f"{rel.as_posix()}/{pair.base}"


def source_id(name: str) -> str:
    """The wildcard value of a source: its name with folder separators made file-name safe."""
    return name.replace("/", "__")


def build_sources(
    inputs: Discovery, test_inputs: Discovery | None, config: dict, fold: int | None = None
) -> dict[str, dict]:
    """``{id: {"pair", "name", "role", "fold"}}`` for every pair: held-out ("test") by the hash split or
    by test_dir, some training images set aside ("validation") to monitor training, the rest "train".

    With cross-validation (``cross_validation.folds`` k >= 2) and a ``fold`` (1..k), the training images
    are split into k folds (:func:`omnitrain.split.assign_folds`): that fold's images are the validation
    images, the others train; "fold" records each training image's fold (None without folds). The
    held-out test images are the same with and without folds."""
    names = {source_name(p, inputs.root): p for p in inputs.pairs}
    if test_inputs is None:
        roles = assign_split(
            sorted(names),
            config["split"]["test_fraction"],
            seed=config["pipeline"]["seed"],
            group_regex=config["split"]["group_regex"],
            min_test=config["split"]["min_test"],
        )
    else:
        roles = dict.fromkeys(names, "train")
    folds = {}
    if fold is not None:
        k = config["cross_validation"]["folds"]
        train = sorted(n for n, r in roles.items() if r == "train")
        folds = assign_folds(
            train, k, seed=config["pipeline"]["seed"], group_regex=config["split"]["group_regex"]
        )
        roles |= {n: "validation" for n, f in folds.items() if f == fold}
    elif config["monitor"]["every"] > 0:
        for name in assign_validation(
            sorted(n for n, r in roles.items() if r == "train"),
            config["split"]["validation_fraction"],
            seed=config["pipeline"]["seed"],
            group_regex=config["split"]["group_regex"],
            min_train=config["split"]["min_train"],
        ):
            roles[name] = "validation"
    sources = {
        source_id(n): {"pair": p, "name": n, "role": roles[n], "fold": folds.get(n)} for n, p in names.items()
    }
    for pair in test_inputs.pairs if test_inputs is not None else []:
        name = source_name(pair, test_inputs.root)
        sid = f"test__{source_id(name)}"
        if sid in sources:  # e.g. dir/test/x (look_one_level_down) and test_dir/x
            raise ValueError(
                f"{pair.image} and {sources[sid]['pair'].image} get the same id {sid!r}: rename the"
                " subfolder 'test' of the training folder, or the image"
            )
        sources[sid] = {"pair": pair, "name": name, "role": "test", "fold": None}
    return sources
