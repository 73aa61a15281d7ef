"""What a job pays before any work: importing Omnipose, as Omnipose 1.1.4 ships it and as the pipeline's
scripts do it (omnitrain.omni: numba's on-disk cache for Omnipose's compiled functions).

Each import runs in a fresh interpreter, alternating the two ways, ``--repeats`` times; the cache is warm
after the first cached import (the first one, which writes it, is reported apart).

Usage: python benchmarks/bench_job_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAIN = "import cellpose_omni.models, omnipose.core"
CACHED = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import omnitrain.omni as o; o.omnipose_models()"


def seconds(code: str, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import os

    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}  # a cache of its own: the first run writes it
        first = seconds(CACHED, env)
        plain, cached = [], []
        for _ in range(args.repeats):
            plain.append(seconds(PLAIN, env))
            cached.append(seconds(CACHED, env))
    print(f"import of cellpose_omni.models and omnipose.core, {args.repeats} fresh interpreters each:")
    print(f"  as shipped (numba compiles at import): median {statistics.median(plain):.1f} s {sorted(plain)}")
    print(
        f"  omnitrain.omni, numba cache warm:      median {statistics.median(cached):.1f} s {sorted(cached)}"
    )
    print(f"  omnitrain.omni, first run (writes it): {first:.1f} s")
    print(f"  ratio cached / shipped: {statistics.median(cached) / statistics.median(plain):.2f}")


if __name__ == "__main__":
    main()
