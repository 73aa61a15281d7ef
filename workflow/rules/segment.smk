# Using a model: segment the images of segment_dir with a registered version (segment_model), each image in its
# own content-addressed folder (reruns segment only new or changed images), then the set's table, review order
# and drafts to correct (omnitrain/segmentation.py, omnitrain/drafts.py). The target is `snakemake segment`.
from natsort import natsorted

from omnitrain.discovery import _base_of
from omnitrain.drafts import read_drafts, unedited_by_hash
from omnitrain.hashing import code_digest
from omnitrain.segmentation import (
    BATCH_TABLE as SEGMENT_BATCH_TABLE,
    IMAGE_FOLDER as SEGMENT_IMAGE_FOLDER,
    LATEST as SEGMENT_LATEST,
    SET_FOLDER as SEGMENT_SET_FOLDER,
    SegmentError,
    image_key,
    model_files as segment_model_files,
    model_settings,
    resolve_model,
    results_of_set_file,
    set_id,
)
from omnitrain.sources import source_id


localrules:
    segment_set,
    segment_latest,


# A training label that is still a draft's bytes: said at start, before a training on it (the registered
# version's change record says it again, also for drafts saved unchanged under other label numbers).
_DRAFTS = read_drafts(RESULTS)
if _DRAFTS:
    _labels = {str(p.label): INPUT_FILES[str(p.label)] for p in INPUTS.pairs}
    for _label in unedited_by_hash(_labels, _DRAFTS):
        logger.warning(
            f"Note: {_label} is a draft added unedited (the model's own masks): correct it, or training"
            " teaches the model its own mistakes"
        )


def _segment_plan():
    """What `snakemake segment` does: the version, its settings and files, the images, batches and set."""
    if not config["segment_dir"]:
        raise SegmentError(
            "segment_dir is not set: name the folder of images to segment, e.g."
            " snakemake segment --config segment_dir=new_images"
        )
    root = Path(config["segment_dir"])
    if not root.is_dir():
        raise SegmentError(f"segment_dir '{root}' is not a folder (relative paths start at {Path.cwd()})")
    found = find_pairs(root)
    images = natsorted(found.unlabeled + [p.image for p in found.pairs], key=str)
    if not images:
        raise SegmentError(
            f"segment_dir '{root}' holds no image (.tif, .tiff, .png, .jpg, .jpeg ending in img_filter"
            f" '{config['img_filter']}'; subfolders only with look_one_level_down)"
        )
    if found.duplicate_bases:
        names = "; ".join(", ".join(map(str, group)) for group in found.duplicate_bases)
        raise SegmentError(f"two images with one base name would get one label name: {names}: rename one")
    record = resolve_model(RESULTS, str(config["segment_model"]))
    version = record["version"]
    settings = model_settings(record)
    code, env = code_digest("segment_images.py"), ENVS["omnipose"]
    in_training = set(INPUT_FILES.values())
    items = {}
    for path in images:
        base = _base_of(path, config["img_filter"])
        rel = path.parent.relative_to(root)
        name = base if str(rel) == "." else f"{rel.as_posix()}/{base}"
        sha = HASHES.sha256(path)
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
            "folder": f"{RESULTS}/{SEGMENT_IMAGE_FOLDER.format(model=version, source=sid, key=key)}",
        }
    HASHES.save()
    drafts = {
        "on": config["segment_drafts"],
        "mask_filter": config["mask_filter"],
        "in_training": sorted(s for s, i in items.items() if i["in_training"]),
    }
    pairs = [[s, i["key"]] for s, i in items.items()]
    batches = batch_ids(list(items), {s: i["key"] for s, i in items.items()})
    return {
        "version": version,
        "settings": settings,
        "files": segment_model_files(record),
        "items": items,
        "batches": batches,
        "drafts": drafts,
        "set": set_id(version, pairs, drafts, code_digest("segment_set.py"), ENVS["preprocess"]),
    }


try:
    SEGMENT = _segment_plan()
    SEGMENT_REFUSAL = ""
except SegmentError as exc:  # said only when a segment target is asked for
    SEGMENT, SEGMENT_REFUSAL = None, str(exc)


def segment_plan(wildcards=None):
    """The plan, for the segment rules' inputs and params; with wildcards, only for this plan's version
    and batches (another one means segment_dir or segment_model changed while this run was going on)."""
    if SEGMENT is None:
        raise WorkflowError(SEGMENT_REFUSAL)
    model, batch = getattr(wildcards, "segmodel", None), getattr(wildcards, "segbatch", None)
    segset = getattr(wildcards, "segset", None)
    if (
        (model and model != SEGMENT["version"])
        or (batch and batch not in SEGMENT["batches"])
        or (segset and segset != SEGMENT["set"])
    ):
        raise WorkflowError(
            f"segmentations/{model} (batch {batch}) is not what segment_dir and segment_model give now:"
            " were they changed while this run was going on? Run snakemake segment again"
        )
    return SEGMENT


def segment_set_folder(plan):
    return f"{RESULTS}/{SEGMENT_SET_FOLDER.format(model=plan['version'], set=plan['set'])}"


def segment_targets(wildcards):
    plan = segment_plan()
    return [f"{segment_set_folder(plan)}/segmentation.tsv", f"{RESULTS}/{SEGMENT_LATEST}"]


def segment_model_inputs(wildcards):
    files = segment_plan(wildcards)["files"]
    inputs = {"model": ancient(files["model"]), "card": ancient(files["card"])}
    if files["size_model"]:
        inputs["size_model"] = ancient(files["size_model"])
    return inputs


def segment_batch_inputs(wildcards):
    plan = segment_plan(wildcards)
    images = [ancient(plan["items"][s]["image"]) for s in plan["batches"][wildcards.segbatch]]
    return {**segment_model_inputs(wildcards), "images": images}


def segment_batch_tables(wildcards):
    plan = segment_plan(wildcards)
    table = f"{RESULTS}/{SEGMENT_BATCH_TABLE}"
    return [table.format(model=plan["version"], batch=b) for b in plan["batches"]]


rule segment_images:
    input:
        unpack(segment_batch_inputs),
    output:
        table=f"{RESULTS}/{SEGMENT_BATCH_TABLE.format(model='{segmodel}', batch='{segbatch}')}",
    log:
        f"{LOGS}/segment_images/{{segmodel}}_{{segbatch}}.log",
    conda:
        "../../envs/omnipose.yaml"
    threads: config["resources"]["train_threads"]
    resources:
        gpu=0 if config["use_gpu"] is False else 1,
        mem_mb=config["resources"]["train_mem_mb"],
    params:
        images=lambda w: [segment_plan(w)["items"][s] for s in segment_plan(w)["batches"][w.segbatch]],
        settings=lambda w: segment_plan(w)["settings"],
        use_gpu=config["use_gpu"],  # where it runs, not what it computes: not in the folders' keys
    script:
        "../scripts/segment_images.py"


rule segment_set:
    input:
        tables=segment_batch_tables,
    output:
        table=f"{RESULTS}/{SEGMENT_SET_FOLDER.format(model='{segmodel}', set='{segset}')}/segmentation.tsv",
        review=f"{RESULTS}/{SEGMENT_SET_FOLDER.format(model='{segmodel}', set='{segset}')}/review.tsv",
        drafts_table=f"{RESULTS}/{SEGMENT_SET_FOLDER.format(model='{segmodel}', set='{segset}')}/drafts.tsv",
        masks=directory(f"{RESULTS}/{SEGMENT_SET_FOLDER.format(model='{segmodel}', set='{segset}')}/masks"),
        drafts=directory(f"{RESULTS}/{SEGMENT_SET_FOLDER.format(model='{segmodel}', set='{segset}')}/drafts"),
    log:
        f"{LOGS}/segment_set/{{segmodel}}_{{segset}}.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        images=lambda w: list(segment_plan(w)["items"].values()),
        model_version=lambda w: segment_plan(w)["version"],
        set=lambda w: segment_plan(w)["set"],
        drafts=lambda w: segment_plan(w)["drafts"]["on"],
        mask_filter=lambda w: segment_plan(w)["drafts"]["mask_filter"],
        results=lambda w, output: str(results_of_set_file(output.table)),
    script:
        "../scripts/segment_set.py"


rule segment_latest:
    input:
        table=lambda w: f"{segment_set_folder(segment_plan())}/segmentation.tsv",
    output:
        latest=f"{RESULTS}/{SEGMENT_LATEST}",
    log:
        f"{LOGS}/segment_latest.log",
    conda:
        "../../envs/preprocess.yaml"
    params:
        folder=lambda w: segment_set_folder(segment_plan()) if SEGMENT else "",
    script:
        "../scripts/segment_latest.py"
