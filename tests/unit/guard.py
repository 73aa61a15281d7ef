"""What tests/unit/conftest.py refuses: a command line that starts snakemake."""

from __future__ import annotations

import os
import shlex


def starts_snakemake(args) -> bool:
    """Whether a command line (a list, or a string run by a shell) starts snakemake."""
    if isinstance(args, str | bytes | os.PathLike):
        args = [args]
    # each word split again: a shell's command string (["bash", "-c", "snakemake -n"]) is one word
    words = [part for a in args for part in _split(os.fsdecode(a))]
    named = any(os.path.basename(w) == "snakemake" for w in words)
    as_module = any(
        a == "-m" and b in ("snakemake", "snakemake.cli") for a, b in zip(words, words[1:], strict=False)
    )
    return named or as_module


def _split(word: str) -> list[str]:
    try:
        return shlex.split(word)
    except ValueError:  # not shell syntax (Python code given to -c, say): words between blanks
        return word.split()
