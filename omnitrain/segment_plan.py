"""What `snakemake segment` does, planned without Snakemake: the registered version (``segment_model``), its
settings and files, the images of ``segment_dir`` with their content keys, their batches and the set's id.

The plan is worked out on first use only (a training run never needs it) and kept; a problem is a
SegmentError that says what to do, raised where a segment target asks for the plan.
"""

from __future__ import annotations

from pathlib import Path

from natsort import natsorted

from .batches import batch_ids
from .discovery import _base_of
from .hashing import HashCache, code_digest
from .plan import find_pairs
from .segmentation import (
    BATCH_TABLE,
    IMAGE_FOLDER,
    LATEST,
    SET_FOLDER,
    SegmentError,
    image_key,
    model_files,
    model_settings,
    resolve_model,
    set_id,
)
from .sources import source_id


def build(config: dict, results: str, envs, training_sha256, hashes: HashCache) -> dict:
    """The plan: {"version", "settings", "files", "items" (per image), "batches", "drafts", "set"}.
    ``training_sha256``: the sha256 of the training folders' files (an image already there gets no draft)."""
    if not config["segment_dir"]:
        raise SegmentError(
            "segment_dir is not set: name the folder of images to segment, e.g."
            " snakemake segment --config segment_dir=new_images"
        )
    root = Path(config["segment_dir"])
    if not root.is_dir():
        raise SegmentError(f"segment_dir '{root}' is not a folder (relative paths start at {Path.cwd()})")
    found = find_pairs(config, root)
    images = natsorted(found.unlabeled + [p.image for p in found.pairs], key=str)
    if not images:
        raise SegmentError(
            f"segment_dir '{root}' holds no image (.tif, .tiff, .png, .jpg, .jpeg ending in img_filter"
            f" '{config['img_filter']}'; subfolders only with look_one_level_down)"
        )
    if found.duplicate_bases:
        names = "; ".join(", ".join(map(str, group)) for group in found.duplicate_bases)
        raise SegmentError(f"two images with one base name would get one label name: {names}: rename one")
    record = resolve_model(results, str(config["segment_model"]))
    version = record["version"]
    settings = model_settings(record)
    if config["channel_axis"] is not None:  # where the new images keep their channels: the config says
        settings["channels"] = {**settings["channels"], "channel_axis": config["channel_axis"]}
    files = model_files(record)
    missing = [f for f in files.values() if f and not Path(f).is_file()]
    if missing:
        raise SegmentError(
            f"version {version}'s files are gone ({', '.join(missing)}): removed by hand? Name another"
            f" version with segment_model (see {results}/registry.tsv)"
        )
    code, env = code_digest("segment_images.py"), envs["omnipose"]
    in_training = set(training_sha256)
    items = {}
    for path in images:
        base = _base_of(path, config["img_filter"])
        rel = path.parent.relative_to(root)
        name = base if str(rel) == "." else f"{rel.as_posix()}/{base}"
        sha = hashes.sha256(path)
        key = image_key(version, settings, sha, path.name, code, env)
        sid = source_id(name)
        items[sid] = {
            "source": sid,
            "name": name,
            "name_with_extension": path.relative_to(root).as_posix(),
            "base": base,
            "image": str(path),
            "sha256": sha,
            "key": key,
            "model_version": version,
            "in_training": sha in in_training,
            "folder": f"{results}/{IMAGE_FOLDER.format(model=version, source=sid, key=key)}",
        }
    hashes.save()
    drafts = {
        "on": config["segment_drafts"],
        "mask_filter": config["mask_filter"],
        "in_training": sorted(s for s, i in items.items() if i["in_training"]),
    }
    pairs = [[s, i["key"]] for s, i in items.items()]
    return {
        "version": version,
        "settings": settings,
        "files": files,
        "items": items,
        "batches": batch_ids(list(items), {s: i["key"] for s, i in items.items()}),
        "drafts": drafts,
        "set": set_id(version, pairs, drafts, code_digest("segment_set.py"), envs["preprocess"]),
    }


class SegmentPlanner:
    """The segment plan of one workflow run, built on first use; its refusal kept likewise."""

    def __init__(self, config: dict, results: str, envs, training_sha256, hash_cache: str | Path):
        self._args = (config, results, envs, training_sha256)
        self._hash_cache = hash_cache
        self._built: tuple[dict | None, str] | None = None
        self.results = results

    def plan(self) -> tuple[dict | None, str]:
        """(the plan, "") or (None, why not)."""
        if self._built is None:
            try:
                self._built = (build(*self._args, HashCache(self._hash_cache)), "")
            except SegmentError as exc:
                self._built = (None, str(exc))
        return self._built

    def for_job(self, model: str | None = None, batch: str | None = None, segset: str | None = None) -> dict:
        """The plan, for a segment job; SegmentError when there is none, or when the job's version, batch or
        set is not the plan's (segment_dir or segment_model changed while this run was going on)."""
        plan, refusal = self.plan()
        if plan is None:
            raise SegmentError(refusal)
        if (
            (model and model != plan["version"])
            or (batch and batch not in plan["batches"])
            or (segset and segset != plan["set"])
        ):
            which = f"batch {batch}" if batch else f"set {segset}"
            raise SegmentError(
                f"segmentations/{model} ({which}) is not what segment_dir and segment_model give now: were"
                " they changed while this run was going on? Run snakemake segment again"
            )
        return plan

    def set_folder(self, plan: dict) -> str:
        return f"{self.results}/{SET_FOLDER.format(model=plan['version'], set=plan['set'])}"

    def targets(self, plan: dict) -> list[str]:
        return [f"{self.set_folder(plan)}/segmentation.tsv", f"{self.results}/{LATEST}"]

    def batch_tables(self, plan: dict) -> list[str]:
        table = f"{self.results}/{BATCH_TABLE}"
        return [table.format(model=plan["version"], batch=b) for b in plan["batches"]]
