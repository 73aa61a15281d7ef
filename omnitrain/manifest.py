"""Manifests: what a step read, what it wrote, with which parameters and which code.

Manifests hold no clock times, so that the same inputs give byte-identical outputs; timings go to
the rules' logs. They name no code version either: the folder's version id covers the step's code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .hashing import PACKAGE, sha256


def files_of(paths) -> dict[str, str]:
    """{path: sha256} of files, and of every file inside folders (sorted, recursive)."""
    out = {}
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith(".")):
                out[str(f)] = sha256(f)
        elif p.is_file():
            out[str(p)] = sha256(p)
    return out


def digest(files: dict[str, str]) -> str:
    """One digest of a set of files by their names (not folders) and sha256: the data's identity."""
    h = hashlib.sha256()
    for name, value in sorted((Path(k).name, v) for k, v in files.items()):
        h.update(f"{name}\0{value}\n".encode())
    return h.hexdigest()


def write_json(path: str | Path, data) -> None:
    """Write ``data`` as JSON in one step: a job killed mid-write leaves the old file or none, never a cut-off
    one (the registry reads every record)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=_plain) + "\n")
        os.replace(tmp, path)
    finally:  # (a full disk leaves no temporary file either)
        tmp.unlink(missing_ok=True)


def _plain(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def manifest(step: str, inputs, outputs, params: dict, **extra) -> dict:
    return {
        "step": step,
        "params": params,
        "inputs": files_of(inputs),
        "outputs": files_of(outputs),
        **extra,
    }


PACKAGES = (
    "omnipose",
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "scikit-image",
    "tifffile",
    "pandas",
    "rectpack",
    "numba",
    "ncolor",
    "snakemake",
)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide the results (None when absent)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def code_commit(root: str | Path = PACKAGE.parent) -> dict:
    """The git commit of the pipeline's code, and whether tracked files differ from it ("dirty")."""
    import subprocess

    def git(*args):
        res = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        return res.stdout.strip() if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if commit else None}


def run_info() -> dict:
    """Where and with what a step ran: code commit, packages, Python, host (goes to version manifests)."""
    import platform

    return {
        **code_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "host": platform.node(),
        "platform": platform.platform(),
    }
