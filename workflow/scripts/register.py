"""Rule register: the version's record, its lineage manifest, and what changed since the previous one."""

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1]))  # noqa: F821 (the repository root)

import pandas as pd

from omnitrain.drafts import origins, read_drafts
from omnitrain.evaluation import INTERVAL_KEYS
from omnitrain.hashing import SCRIPTS, code_digest, version_id
from omnitrain.manifest import files_of, run_info, write_json
from omnitrain.registry import (
    RegistryProblem,
    changes_markdown,
    compare,
    data_hash,
    file_table,
    load_records,
)
from omnitrain.runlog import get_logger, run_step


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


def timings(benchmarks: dict) -> dict:
    """Seconds and peak memory of the steps, from their Snakemake benchmark files (when present)."""
    out = {}
    for step, path in benchmarks.items():
        if path and Path(path).is_file():
            row = pd.read_csv(path, sep="\t").iloc[0]
            out[step] = {"seconds": float(row["s"]), "max_rss_mb": float(row["max_rss"])}
    return out


def selected_model(card: dict, path: str, select: str) -> dict:
    """Which model file the evaluation used, and the epoch it is from (monitor.select)."""
    mon = card.get("monitoring") or {}
    chosen = {"select": "last", "file": str(path), "epoch": card["epochs"]}
    if mon.get("on"):
        chosen |= {"metric": mon["metric"], "score": mon["best_score"], "best_epoch": mon["best_epoch"]}
        if select == "best":
            chosen |= {"select": "best", "epoch": mon["best_epoch"]}
    return chosen


def main(sm) -> None:
    log = get_logger(sm.log[0])
    p = sm.params
    results = Path(p.results)
    out = Path(sm.output.record).parent
    sources = p.sources
    files = file_table(sources)
    # Objects per source image, from the validation table (one row per pair found).
    validation = pd.read_csv(sm.input.validation, sep="\t")
    objects = dict(zip(validation["image"].astype(str), validation["objects"], strict=True))
    count = {"train": [0, 0], "test": [0, 0], "validation": [0, 0]}
    for src in sources.values():
        count[src["role"]][0] += 1
        count[src["role"]][1] += int(objects.get(src["files"]["image"]["path"], 0))
    stats = json.loads(Path(sm.input.trainset).read_text())
    card = json.loads(Path(sm.input.card).read_text())
    scores = json.loads(Path(sm.input.scores).read_text())
    per_image = pd.read_csv(sm.input.per_image, sep="\t")
    record = {
        "version": p.version,
        "experiment": p.run["experiment"],
        "fold": p.run["fold"],
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "parent": None,
        "versions": p.versions,
        "paths": {
            "folders": p.folders,
            "files": {name: str(path) for name, path in sm.input.items()} | p.model_files,
        },
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
        "from_drafts": origins(sources, read_drafts(results)),
        "params": p.settings,
        "params_digest": version_id(p.settings),
        "code": code_digest(*sorted(f.name for f in SCRIPTS.glob("*.py"))),
        "run": run_info(),
        "device": card["device"],
        "model": {
            "selected": selected_model(card, p.model_files["model_file"], p.settings["monitor"]["select"]),
            "monitoring": {k: v for k, v in card.get("monitoring", {}).items() if k != "history"},
            "pretrained": card.get("pretrained_model"),  # name, URL and sha256 of the model it started from
        },
        "scores": {
            "summary": {
                k: scores.get(k) for k in ("mean_ap", "ap50", "ap75", "aji", "pq", "images", *INTERVAL_KEYS)
            },
            "per_image": {
                str(r["image"]): {"mean_ap": float(r["mean_ap"]), "ap50": float(r["ap50"])}
                for r in per_image.to_dict("records")
            },
        },
    }
    parent = parent_record(results, p.version, p.run)
    record["parent"] = parent["version"] if parent else None
    change = compare(parent, record) if parent else None
    record["change"] = change
    write_json(sm.output.changes_json, change)
    Path(sm.output.changes).write_text(changes_markdown(change, p.version, record["from_drafts"]))
    for d in record["from_drafts"]:
        if not d["edited"]:
            log.warning(
                f"{d['label']} is version {d['model_version']}'s draft, unedited (see {sm.output.changes})"
            )
    # Links to the version's parts: <results>/versions/<id>/model/... (relative, so results can move).
    for name, target in p.links.items():
        link = out / name
        if target and not link.is_symlink():
            os.symlink(os.path.relpath(target, out), link)
    lineage = {"inputs": {k: v["sha256"] for k, v in files.items()}}
    for name, target in p.links.items():
        if target:
            found = files_of([target])
            if name == "trainset":  # its checks/ hold every version's check: this one's is "check"
                found = {f: d for f, d in found.items() if "/checks/" not in f}
            lineage[name] = found
    manifest = {
        "version": p.version,
        "versions": p.versions,
        "params": p.settings,
        "run": record["run"],
        "device": card["device"],
        "model": {
            "selected": record["model"]["selected"],
            "monitoring": {k: v for k, v in card.get("monitoring", {}).items() if k != "history"},
            "pretrained": record["model"]["pretrained"],
        },
        "timings": timings(p.benchmarks),
        "files": lineage,
    }
    write_json(sm.output.manifest, manifest)
    write_json(sm.output.record, record)
    what = f"parent {record['parent']}" if parent else "first version"
    log.info(
        f"registered version {p.version} ({what}): held-out mean AP {scores.get('mean_ap')},"
        f" AP@0.5 {scores.get('ap50')}; changes: {sm.output.changes}"
    )


run_step(main, snakemake, said=(RegistryProblem,))  # noqa: F821 (defined by Snakemake)
