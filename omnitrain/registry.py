"""The model registry: one record per registered version, the registry table, and version comparison.

A version's record (``<results>/versions/<id>/record.json``) is written once, when the version is
registered, and never changed. ``registry.tsv`` and ``latest.txt`` are rebuilt from the records.

Command line::

    python -m omnitrain.registry [--results results] list
    python -m omnitrain.registry [--results results] compare OLD NEW     (ids, or "latest")
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from .hashing import version_id

REGISTRY_COLUMNS = [
    "version",
    "experiment",
    "fold",
    "created",
    "parent",
    "data_hash",
    "train_images",
    "test_images",
    "train_objects",
    "test_objects",
    "training_images",
    "params_digest",
    "trainset_version",
    "heldout_version",
    "model_version",
    "pretrained_model",
    "pretrained_sha256",
    "model",
    "selected",
    "selected_epoch",
    "validation_images",
    "validation_metric",
    "validation_score",
    "size_model",
    "heldout_mean_ap",
    "heldout_ap50",
    "changes",
]


def flatten(tree: dict, prefix: str = "") -> dict:
    """Nested dicts as one level with dotted keys: {"a": {"b": 1}} -> {"a.b": 1}."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def file_table(sources: dict) -> dict[str, dict]:
    """{file name (below its data folder; test_dir files as test_dir/<name>): {"sha256", "role"}}."""
    files = {}
    for src in sources.values():
        for rec in src["files"].values():
            if rec is None:
                continue
            key = f"test_dir/{rec['name']}" if src["from_test_dir"] else rec["name"]
            files[key] = {"sha256": rec["sha256"], "role": src["role"]}
    return dict(sorted(files.items()))


def data_hash(files: dict[str, dict]) -> str:
    return version_id({k: [v["sha256"], v["role"]] for k, v in files.items()})


def compare(old: dict, new: dict) -> dict:
    """What changed from record ``old`` to record ``new``: files, roles, parameters, held-out scores.

    Scores are compared only on the same held-out set (same held-out version); otherwise the change
    record says the held-out set changed and gives no difference.
    """
    a, b = old["files"], new["files"]
    change = {
        "from": old["version"],
        "to": new["version"],
        "files": {
            "added": sorted(set(b) - set(a)),
            "removed": sorted(set(a) - set(b)),
            "modified": sorted(k for k in set(a) & set(b) if a[k]["sha256"] != b[k]["sha256"]),
            "role_changed": sorted(k for k in set(a) & set(b) if a[k]["role"] != b[k]["role"]),
        },
    }
    pa, pb = flatten(old["params"]), flatten(new["params"])
    change["parameters"] = {
        k: {"old": pa.get(k), "new": pb.get(k)} for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)
    }
    change["code"] = {
        "old": old["run"]["commit"],
        "new": new["run"]["commit"],
        "changed": old["code"] != new["code"],
    }
    same = old["versions"]["heldout"] == new["versions"]["heldout"]
    scores = {"same_heldout_set": same}
    if same:
        sa, sb = old["scores"], new["scores"]
        for key in ("mean_ap", "ap50", "aji", "pq"):
            x, y = sa["summary"].get(key), sb["summary"].get(key)
            scores[key] = {"old": x, "new": y, "difference": None if x is None or y is None else y - x}
        scores["per_image"] = {
            image: {
                "old": sa["per_image"][image]["mean_ap"],
                "new": sb["per_image"][image]["mean_ap"],
                "difference": sb["per_image"][image]["mean_ap"] - sa["per_image"][image]["mean_ap"],
            }
            for image in sorted(set(sa["per_image"]) & set(sb["per_image"]))
        }
    else:
        scores["note"] = "the held-out set changed: scores are not comparable, none compared"
    change["heldout_scores"] = scores
    # Pairs that came from drafts (omnitrain/drafts.py), among those added or changed in this version
    new_files = set(change["files"]["added"]) | set(change["files"]["modified"])
    change["from_drafts"] = [
        d for d in new.get("from_drafts", []) if d["image"] in new_files or d["label"] in new_files
    ]
    return change


def drafts_lines(from_drafts: list[dict]) -> list[str]:
    """The change record's section on pairs that came from drafts: their version, edited or not."""
    if not from_drafts:
        return []
    lines = ["", "## Pairs from drafts"]
    for d in from_drafts:
        where = f"{d['image']} + {d['label']} ({d['role']}): drawn by version {d['model_version']}"
        if d["edited"]:
            lines.append(f"- {where}, corrected")
        else:
            lines.append(
                f"- {where}, UNEDITED: the label is the model's own masks; training on it teaches the model"
                " its own mistakes (correct it, or take the pair out)"
            )
    return lines


def _num(x) -> str:
    return "n/a" if x is None else f"{x:+.4f}" if isinstance(x, float) and x != 0 and abs(x) < 1 else f"{x}"


def changes_markdown(change: dict | None, version: str, from_drafts: list[dict] | None = None) -> str:
    """The change record as text a person reads (for a first version, ``from_drafts`` are its pairs that
    came from drafts)."""
    if change is None:
        text = f"# Version {version}\n\nFirst registered version: nothing to compare with.\n"
        return text + "\n".join(drafts_lines(from_drafts or [])[1:] + [""]) if from_drafts else text
    lines = [f"# Version {change['to']} compared with {change['from']}", ""]
    f = change["files"]
    lines.append("## Ground-truth and image files")
    if not any(f.values()):
        lines.append("- no file added, removed, modified or moved between training and held-out")
    for kind in ("added", "removed", "modified", "role_changed"):
        for name in f[kind]:
            lines.append(f"- {kind.replace('_', ' ')}: {name}")
    lines += ["", "## Parameters"]
    if not change["parameters"]:
        lines.append("- unchanged")
    for key, v in change["parameters"].items():
        lines.append(f"- {key}: {v['old']!r} -> {v['new']!r}")
    lines += ["", "## Code", f"- commit {change['code']['old']} -> {change['code']['new']}"]
    lines.append(f"- code of the steps {'changed' if change['code']['changed'] else 'unchanged'}")
    s = change["heldout_scores"]
    lines += ["", "## Held-out scores"]
    if not s["same_heldout_set"]:
        lines.append(f"- {s['note']}")
    else:
        for key in ("mean_ap", "ap50", "aji", "pq"):
            v = s[key]
            lines.append(f"- {key}: {v['old']} -> {v['new']} (difference {_num(v['difference'])})")
        for image, v in s["per_image"].items():
            lines.append(f"- {image}: mean AP {v['old']:.4f} -> {v['new']:.4f} ({_num(v['difference'])})")
    lines += drafts_lines(change.get("from_drafts", []))
    return "\n".join(lines) + "\n"


class RegistryProblem(LookupError):
    """The registry cannot answer (the message says why and what to do)."""


class UnknownVersion(RegistryProblem):
    """A name that names no registered version (the message says what is registered)."""


def load_records(results: str | Path) -> list[dict]:
    """Every registered version's record, oldest first."""
    records = [_read_record(p) for p in Path(results).glob("versions/*/record.json")]
    return sorted(records, key=lambda r: (r["created"], r["version"]))


def _read_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegistryProblem(
            f"{path} is not a readable record ({exc}): edited by hand? Delete it and run snakemake again"
            " (its register step writes it anew)"
        ) from None


def resolve(results: str | Path, name: str, experiments: bool = False) -> dict:
    """The record ``name`` names: "latest" (the one latest.txt names), a version id or a unique prefix of
    one, and with ``experiments`` also an experiment's name (its latest version without a fold)."""
    results = Path(results)
    records = load_records(results)
    if not records:
        raise UnknownVersion(f"no version is registered in {results}: run snakemake first to train one")
    if name == "latest":
        latest = results / "latest.txt"
        if not latest.is_file():
            raise UnknownVersion(f"{latest} does not exist: run snakemake first")
        named = [r for r in records if r["version"] == latest.read_text().strip()]
        if not named:
            raise UnknownVersion(f"{latest} names a version whose record is gone: run snakemake again")
        return named[0]
    of_experiment = [r for r in records if r.get("experiment", "base") == name and not r.get("fold")]
    if experiments and of_experiment:
        return of_experiment[-1]
    matches = [r for r in records if r["version"].startswith(name)]
    if len(matches) != 1:
        what = "no registered version" if not matches else "more than one registered version"
        known = ", ".join(r["version"] for r in records[-5:])
        names = sorted({r.get("experiment", "base") for r in records})
        also = f" an experiment ({', '.join(names)})," if experiments else ""
        raise UnknownVersion(
            f"{name!r} matches {what} in {results}: give latest,{also} or a version id (the newest: {known};"
            f" all: {results}/registry.tsv)"
        )
    return matches[0]


def find_record(results: str | Path, version: str) -> dict:
    try:
        return resolve(results, version)
    except RegistryProblem as exc:
        raise SystemExit(str(exc)) from None


def registry_row(record: dict) -> dict:
    d, s = record["data"], record["scores"]["summary"]
    paths = record["paths"]
    # Records made before the step table (December 2026) name the model files at the top level.
    old = {"model_file": paths.get("model"), "size_model_file": paths.get("size_model")}
    files = paths.get("files") or old
    # The model file the evaluation used: <model>_best with monitor.select best (records from before
    # monitoring have none: their model file is the last epoch's).
    chosen = (record.get("model") or {}).get("selected") or {}
    start = (record.get("model") or {}).get("pretrained") or {}  # None: trained from scratch
    change = record.get("change")
    if change is None:
        summary = "first version"
    else:
        f = change["files"]
        parts = [f"{len(f[k])} {k.replace('_', ' ')}" for k in ("added", "removed", "modified") if f[k]]
        parts += [f"{len(change['parameters'])} parameter(s)"] if change["parameters"] else []
        parts += ["code"] if change["code"]["changed"] else []
        drafted = change.get("from_drafts", [])
        unedited = sum(not d["edited"] for d in drafted)
        if drafted:
            parts.append(f"{len(drafted)} from drafts" + (f" ({unedited} UNEDITED)" if unedited else ""))
        summary = "changed: " + ", ".join(parts) if parts else "no change in data, parameters or code"
    return {
        "version": record["version"],
        "experiment": record.get("experiment", "base"),  # records from before experiments: the config itself
        "fold": record.get("fold") or "",
        "created": record["created"],
        "parent": record["parent"] or "",
        "data_hash": d["hash"],
        "train_images": d["train_images"],
        "test_images": d["test_images"],
        "train_objects": d["train_objects"],
        "test_objects": d["test_objects"],
        "training_images": d["training_images"],
        "params_digest": record["params_digest"],
        "trainset_version": record["versions"]["trainset"],
        "heldout_version": record["versions"]["heldout"],
        "model_version": record["versions"]["model"],
        "pretrained_model": start.get("name", ""),
        "pretrained_sha256": start.get("sha256", ""),
        "model": chosen.get("file") or files.get("model_file") or "",
        "selected": chosen.get("select", "last"),
        "selected_epoch": chosen.get("epoch"),
        "validation_images": d.get("validation_images", 0),
        "validation_metric": chosen.get("metric", ""),
        "validation_score": chosen.get("score"),
        "size_model": files.get("size_model_file") or "",
        "heldout_mean_ap": s.get("mean_ap"),
        "heldout_ap50": s.get("ap50"),
        "changes": summary,
    }


def registry_table(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([registry_row(r) for r in records], columns=REGISTRY_COLUMNS)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m omnitrain.registry", description=__doc__.splitlines()[0])
    ap.add_argument("--results", default="results", help="the pipeline.results folder (default: results)")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print the registry table")
    cmp = sub.add_parser("compare", help="what changed between two versions (ids, prefixes, or latest)")
    cmp.add_argument("old")
    cmp.add_argument("new")
    args = ap.parse_args(argv)
    if args.command == "list":
        table = registry_table(load_records(args.results))
        sys.stdout.write(table.to_string(index=False) + "\n" if len(table) else "no version registered\n")
    else:
        old, new = find_record(args.results, args.old), find_record(args.results, args.new)
        sys.stdout.write(changes_markdown(compare(old, new), new["version"]))


if __name__ == "__main__":
    main()
