"""Hashing, the one module for it: sha256 of files (with a cache), of code, and version ids.

A step's version is a short digest of everything that decides its outputs: the sha256 of the user's
files it reads, the versions of the steps it reads from, its parameters and the digest of its code.
Same inputs give the same id, so Snakemake finds the outputs already there; any change gives a new id,
hence new paths, and the files of earlier versions are never touched.

Code is digested from its syntax tree with docstrings removed (comments are not in the tree), so
reformatting, comments and docstrings never re-version anything; a change of behaviour does. The
tree's text form (``ast.dump``) is stable for one Python minor version: another Python is another
environment, and may give other ids.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import time
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SCRIPTS = PACKAGE.parent / "workflow" / "scripts"
ID_LENGTH = 12
# A file changed less than this long ago may change again within the same mtime tick: hash it, but do
# not cache it (git's "racy clean" problem).
RACY_SECONDS = 2.0


def version_id(*parts) -> str:
    """A short, stable id of JSON-able parts (dict keys sorted, so order of keys does not matter)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class HashCache:
    """sha256 of files, remembered by (absolute path, size, mtime, ctime, inode) in a TSV file.

    The ctime (set by the kernel on every write or metadata change, never by tools that copy
    timestamps, like ``cp -p`` or ``rsync -t``) and the inode catch edits that keep size and mtime.

    A dry run on a big dataset then stats every file but reads none that did not change. The file is
    rewritten atomically (temporary file + rename) only when something new was hashed, so parallel
    readers (cluster jobs parse the workflow too) never see a half-written cache.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, tuple[tuple[int, ...], str]] = {}
        self.changed = False
        self.hashed = 0
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                parts = line.split("\t")
                if len(parts) == 6 and all(x.isdigit() for x in parts[1:5]):
                    self.entries[parts[0]] = (tuple(map(int, parts[1:5])), parts[5])

    def sha256(self, path: str | Path) -> str:
        key = os.path.abspath(path)
        st = os.stat(key)
        stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        known = self.entries.get(key)
        if known is not None and known[0] == stamp:
            return known[1]
        digest = sha256(key)
        self.hashed += 1
        if time.time() - st.st_mtime > RACY_SECONDS:
            self.entries[key] = (stamp, digest)
            self.changed = True
        return digest

    def save(self) -> None:
        if not self.changed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        lines = (f"{k}\t{chr(9).join(map(str, st))}\t{d}\n" for k, (st, d) in sorted(self.entries.items()))
        tmp.write_text("".join(lines))
        os.replace(tmp, self.path)
        self.changed = False


def _imported_modules(path: Path) -> set[str]:
    """The omnitrain modules a file imports (``from omnitrain.x import``, ``from .x import``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1 and path.parent == PACKAGE:
                names.add(module.split(".")[0] if module else "")
                if not module:
                    names.update(a.name for a in node.names)
            elif module == "omnitrain":
                names.update(a.name for a in node.names)
            elif module.startswith("omnitrain."):
                names.add(module.split(".")[1])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("omnitrain."))
    return {n for n in names if (PACKAGE / f"{n}.py").is_file()}


def _without_docstrings(tree: ast.AST) -> ast.AST:
    """The tree with the docstring of the module, of every class and of every function removed."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
                node.body = node.body[1:] or [ast.Pass()]
    return tree


def normalised_code(path: Path) -> str:
    """A Python file's behaviour as text: its syntax tree without docstrings, positions or comments."""
    return _normalised(Path(path).read_text(), str(path))


@cache
def _normalised(source: str, filename: str) -> str:
    tree = ast.parse(source, filename)
    return ast.dump(_without_docstrings(tree), include_attributes=False)


@cache
def code_digest(*scripts: str) -> str:
    """Digest of rule scripts (names in workflow/scripts) and every omnitrain module they import.

    Only the code a step runs counts (fixing the evaluation code gives a new evaluation version but
    keeps the trained model's), and only its behaviour: each file enters as :func:`normalised_code`.
    """
    files = {SCRIPTS / s for s in scripts}
    todo = list(files)
    while todo:
        for name in _imported_modules(todo.pop()):
            module = PACKAGE / f"{name}.py"
            if module not in files:
                files.add(module)
                todo.append(module)
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path.parent.name}/{path.name}\0{normalised_code(path)}\0".encode())
    return h.hexdigest()[:16]
