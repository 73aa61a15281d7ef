"""The register step: a version's record (what it was made from, its scores), its lineage manifest, what
changed since the previous version of the same experiment and fold, and links to its parts.

:func:`register` is the whole step for one :class:`RegisterJob` (what the ``register`` rule gives its script);
the registry table and the leaderboard are built from the records it writes (omnitrain/registry.py,
omnitrain/leaderboard.py).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from .drafts import origins, read_drafts
from .evaluation import INTERVAL_KEYS
from .hashing import SCRIPTS, code_digest, version_id
from .manifest import files_of, run_info, write_json
from .registry import changes_markdown, compare, data_hash, file_table, load_records

#: The held-out scores a record keeps in summary.
SUMMARY = ("mean_ap", "ap50", "ap75", "aji", "pq", "images", *INTERVAL_KEYS)


@dataclass(frozen=True)
class RegisterJob:
    """One register job: the version, its run, its steps' versions, folders and files, and its outputs."""

    version: str
    run: dict  # {"experiment", "fold"}
    settings: dict  # every enabled step's settings (the version's params)
    versions: dict  # {step: version id}
    sources: dict  # {source id: {"name", "role", "files", ...}}
    results: str
    folders: dict  # {step: folder}
    links: dict  # {name: folder} linked from the version's folder
    benchmarks: dict  # {rule: Snakemake benchmark file}
    model_files: dict  # {"model_file", "size_model_file"}
    inputs: dict  # register's inputs by name: validation, trainset, card, scores, per_image, ...
    record: str  # outputs
    manifest: str
    changes_json: str
    changes: str
    report: str

    @classmethod
    def from_snakemake(cls, sm) -> RegisterJob:
        p, out = sm.params, sm.output
        return cls(
            version=p.version, run=p.run, settings=p.settings, versions=p.versions, sources=p.sources,
            results=p.results, folders=p.folders, links=p.links, benchmarks=p.benchmarks,
            model_files=p.model_files, inputs={name: str(path) for name, path in sm.input.items()},
            record=out.record, manifest=out.manifest, changes_json=out.changes_json, changes=out.changes,
            report=out.report,
        )  # fmt: skip


def register(job: RegisterJob, log: logging.Logger) -> dict:
    """Write the record, the change record (JSON and Markdown), the links and the manifest; the record."""
    results = Path(job.results)
    card = json.loads(Path(job.inputs["card"]).read_text())
    record = version_record(job, card)
    parent = parent_record(results, job.version, job.run)
    record["parent"] = parent["version"] if parent else None
    record["change"] = compare(parent, record) if parent else None
    write_json(job.changes_json, record["change"])
    Path(job.changes).write_text(changes_markdown(record["change"], job.version, record["from_drafts"]))
    for d in record["from_drafts"]:
        if not d["edited"]:
            log.warning(f"{d['label']} is version {d['model_version']}'s draft, unedited (see {job.changes})")
    link_parts(Path(job.record).parent, job.links)
    write_json(job.manifest, manifest(job, record, card))
    Path(job.report).write_text(report_intro(record))
    write_json(job.record, record)
    scores = record["scores"]["summary"]
    what = f"parent {record['parent']}" if parent else "first version"
    log.info(
        f"registered version {job.version} ({what}): held-out mean AP {scores.get('mean_ap')},"
        f" AP@0.5 {scores.get('ap50')}; changes: {job.changes}"
    )
    return record


def version_record(job: RegisterJob, card: dict) -> dict:
    """What the version was made from (files, settings, code, device, model) and its held-out scores."""
    files = file_table(job.sources)
    stats = json.loads(Path(job.inputs["trainset"]).read_text())
    scores = json.loads(Path(job.inputs["scores"]).read_text())
    per_image = pd.read_csv(job.inputs["per_image"], sep="\t")
    count = role_counts(job.sources, job.inputs["validation"])
    return {
        "version": job.version,
        "experiment": job.run["experiment"],
        "fold": job.run["fold"],
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "parent": None,
        "versions": job.versions,
        "paths": {"folders": job.folders, "files": job.inputs | job.model_files},
        "data": {
            "hash": data_hash(files),
            "train_images": count["train"][0],
            "test_images": count["test"][0],
            "train_objects": count["train"][1],
            "test_objects": count["test"][1],
            "validation_images": count["validation"][0],
            "training_images": stats["images"],
            "training_objects": stats["cells"],
        },
        "files": files,
        # pairs whose image was drafted by `snakemake segment`: by which version, and edited or not
        "from_drafts": origins(job.sources, read_drafts(job.results)),
        "params": job.settings,
        "params_digest": version_id(job.settings),
        "code": code_digest(*sorted(f.name for f in SCRIPTS.glob("*.py"))),
        "run": run_info(),
        "device": card["device"],
        "model": model_summary(card, job.model_files["model_file"], job.settings["monitor"]["select"]),
        "scores": {
            "summary": {k: scores.get(k) for k in SUMMARY},
            "per_image": {
                str(r["image"]): {"mean_ap": float(r["mean_ap"]), "ap50": float(r["ap50"])}
                for r in per_image.to_dict("records")
            },
        },
    }


def role_counts(sources: dict, validation_table: str) -> dict[str, list[int]]:
    """{role: [source images, labelled objects]}, the objects from the input check's table."""
    validation = pd.read_csv(validation_table, sep="\t")
    objects = dict(zip(validation["image"].astype(str), validation["objects"], strict=True))
    count = {"train": [0, 0], "test": [0, 0], "validation": [0, 0]}
    for src in sources.values():
        count[src["role"]][0] += 1
        count[src["role"]][1] += int(objects.get(src["files"]["image"]["path"], 0))
    return count


def model_summary(card: dict, path: str, select: str) -> dict:
    """The model the evaluation used, its monitoring (without the history) and what it started from."""
    return {
        "selected": selected_model(card, path, select),
        "monitoring": {k: v for k, v in card.get("monitoring", {}).items() if k != "history"},
        "pretrained": card.get("pretrained_model"),  # name, URL and sha256 of the model it started from
    }


def selected_model(card: dict, path: str, select: str) -> dict:
    """Which model file the evaluation used, and the epoch it is from (monitor.select)."""
    mon = card.get("monitoring") or {}
    chosen = {"select": "last", "file": str(path), "epoch": card["epochs"]}
    if mon.get("on"):
        chosen |= {"metric": mon["metric"], "score": mon["best_score"], "best_epoch": mon["best_epoch"]}
        if select == "best":
            chosen |= {"select": "best", "epoch": mon["best_epoch"]}
    return chosen


def parent_record(results: Path, version: str, run: dict) -> dict | None:
    """The version of the same experiment and fold registered last before this one (for the config itself:
    the one latest.txt names), if any."""
    same = (run["experiment"], run["fold"])
    records = [
        r
        for r in load_records(results)
        if r["version"] != version and (r.get("experiment", "base"), r.get("fold")) == same
    ]
    latest = results / "latest.txt"
    if latest.is_file():
        named = latest.read_text().strip()
        for r in records:
            if r["version"] == named:
                return r
    return records[-1] if records else None


def link_parts(folder: Path, links: dict) -> None:
    """Links to the version's parts in its folder: <results>/versions/<id>/model/... (relative, so results
    can move)."""
    for name, target in links.items():
        link = folder / name
        if target and not link.is_symlink():
            os.symlink(os.path.relpath(target, folder), link)


def manifest(job: RegisterJob, record: dict, card: dict) -> dict:
    """The lineage: the sha256 of every input and of every file of the version's parts, with timings."""
    lineage = {"inputs": {k: v["sha256"] for k, v in record["files"].items()}}
    for name, target in job.links.items():
        if target:
            found = files_of([target])
            if name == "trainset":  # its checks/ hold every version's check: this one's is "check"
                found = {f: d for f, d in found.items() if "/checks/" not in f}
            lineage[name] = found
    return {
        "version": job.version,
        "versions": job.versions,
        "params": job.settings,
        "run": record["run"],
        "device": card["device"],
        "model": record["model"],
        "timings": timings(job.benchmarks),
        "files": lineage,
    }


def timings(benchmarks: dict) -> dict:
    """Seconds and peak memory of the steps, from their Snakemake benchmark files (when present)."""
    out = {}
    for step, path in benchmarks.items():
        if path and Path(path).is_file():
            row = pd.read_csv(path, sep="\t").iloc[0]
            out[step] = {"seconds": float(row["s"]), "max_rss_mb": float(row["max_rss"])}
    return out


def report_intro(record: dict) -> str:
    """The first page of ``snakemake --report`` (reStructuredText): what was trained from what, the model and
    its held-out scores. The model's path goes in a block that wraps anywhere (a path is one word to a
    browser, which would otherwise run it under the workflow's graph beside the text)."""
    steps, data, scores = record["params"]["steps"], record["data"], record["scores"]["summary"]
    model, inputs = steps["model"], steps["validation"]
    title = f"Omnipose model, version {record['version']}"
    test_dir = f" from ``{inputs['test_dir']}``" if inputs["test_dir"] else ""
    lines = [
        title,
        "=" * len(title),
        "",
        f"Trained with the real Omnipose from **{data['train_images']}** training source image(s) in"
        f" ``{inputs['dir']}`` ({data['training_images']} image(s) after tiling and packing), and evaluated"
        f" on **{data['test_images']}** held-out source image(s){test_dir}. Model: nchan {model['nchan']},"
        f" nclasses {model['nclasses']}, dim {model['dim']}, {model['n_epochs']} epochs (model version"
        f" {record['versions']['model']}), the {record['model']['selected']['select']} epoch's file:",
        "",
        ".. raw:: html",
        "",
        f'   <p style="{WRAPPED}">{record["model"]["selected"]["file"]}</p>',
        "",
    ]
    if not scores.get("images") or scores.get("ap50") is None:
        lines.append(f"No held-out image: {UNSEEN}.")
    else:
        lines.append(
            f"Held-out **AP\\@0.5 {scores['ap50']:.3f}**, **mean AP {scores['mean_ap']:.3f}** (AP = TP / (TP"
            " + FP + FN), mean over IoU thresholds 0.50 to 0.95)."
        )
        if scores.get("ap50_low") is None:
            lines.append(f"No interval: it needs two or more held-out images ({UNSEEN}).")
        else:
            lines.append(
                f"95 % bootstrap intervals over the held-out images: AP\\@0.5 {scores['ap50_low']:.2f} to"
                f" {scores['ap50_high']:.2f}, mean AP {scores['mean_ap_low']:.2f} to"
                f" {scores['mean_ap_high']:.2f} (another draw of images like these could score anywhere in"
                " them: two models whose intervals overlap widely are not shown to differ)."
            )
    return "\n".join([*lines, "", SEE_ALSO, ""])


#: A path is one word to a browser: this lets it wrap anywhere instead of running under the graph beside it.
WRAPPED = "font-family: monospace; overflow-wrap: anywhere"
UNSEEN = "evaluate on unseen images: set ``split.test_fraction`` or ``test_dir``"
SEE_ALSO = (
    "See the training loss (loss_curve.png_), the held-out overlays (overlays.png_: matched objects green,"
    " false positives red, missed yellow) and AP over IoU thresholds (ap_curve.png_), the training set as"
    " Omnipose sees it (preview.png_), and what changed since the previous version (changes.md_). Every"
    " output lives under a content-derived version id; ``registry.tsv`` in the results folder lists every"
    " version."
)
