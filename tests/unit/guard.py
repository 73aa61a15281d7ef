"""What tests/unit/conftest.py refuses: a command line that starts snakemake."""

from __future__ import annotations

import os


def starts_snakemake(args) -> bool:
    """Whether a command line (a list, or a string run by a shell) starts snakemake."""
    words = args.split() if isinstance(args, str | bytes) else [os.fsdecode(a) for a in args]
    words = [w.decode() if isinstance(w, bytes) else w for w in words]
    named = any(os.path.basename(w) == "snakemake" for w in words)
    as_module = any(
        a == "-m" and b in ("snakemake", "snakemake.cli") for a, b in zip(words, words[1:], strict=False)
    )
    return named or as_module
