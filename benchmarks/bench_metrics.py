"""Benchmark: AP/tp/fp/fn at 10 IoU thresholds for 100 image pairs of 512 x 512 with ~100 objects each,
the pipeline's omnitrain.metrics vs cellpose_omni.metrics.average_precision. Prints both times, the speed
ratio (goal >= 5x) and whether every number is identical. Both are warmed up first (numba compiles on
first use), and each is timed as the fastest of --repeats passes over all pairs.
Usage: python benchmarks/bench_metrics.py [--pairs 100] [--repeats 7]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omnitrain import metrics  # noqa: E402
from omnitrain.demo import grow_colony, scatter_cells  # noqa: E402
from omnitrain.labels import relabel  # noqa: E402


def pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True labels: ~100 rods (two micro-colonies and scattered cells); prediction: shifted, some cells
    missed, some merged, some false ones added."""
    rng = np.random.default_rng(seed)
    true = np.zeros((512, 512), np.uint16)
    nxt = grow_colony(true, rng, (150.0, 160.0), 40, 1)
    nxt = grow_colony(true, rng, (360.0, 340.0), 40, nxt)
    nxt = scatter_cells(true, rng, 20, nxt)
    pred = np.roll(true, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), axis=(0, 1)).astype(np.int32)
    ids = np.unique(pred[pred > 0])
    pred[np.isin(pred, rng.choice(ids, len(ids) // 20, replace=False))] = 0
    for a, b in rng.choice(ids, (len(ids) // 20, 2), replace=False):
        pred[pred == b] = a
    extra = np.zeros_like(true)
    scatter_cells(extra, rng, 5, 1)
    pred[(extra > 0) & (pred == 0)] = extra[(extra > 0) & (pred == 0)].astype(np.int32) + 10_000
    return true, relabel(pred)[0].astype(np.uint16)  # as both are read back from the TIFFs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7, help="timed passes; the fastest counts")
    args = parser.parse_args()
    from cellpose_omni.metrics import average_precision

    pairs = [pair(i) for i in range(args.pairs)]
    th = list(metrics.THRESHOLDS)
    average_precision(pairs[0][0], pairs[0][1], threshold=th)  # warm-up (numba)
    metrics.match(*pairs[0])

    def best_of(repeats, fn):
        """The fastest of several timed passes over all pairs (as timeit does): the least disturbed."""
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = [fn(t, p) for t, p in pairs]
            times.append(time.perf_counter() - t0)
        return min(times), out

    t_omni, theirs = best_of(args.repeats, lambda t, p: average_precision(t, p, threshold=th))
    t_ours, ours = best_of(args.repeats, metrics.match)

    same = True
    for (ap, tp, fp, fn), rows in zip(theirs, ours, strict=True):
        same &= np.array_equal(tp, [r["tp"] for r in rows]) and np.array_equal(fp, [r["fp"] for r in rows])
        same &= np.array_equal(fn, [r["fn"] for r in rows])
        same &= np.allclose(ap, [r["ap"] for r in rows], rtol=0, atol=1e-6)
    objects = np.mean([int(t.max()) for t, _ in pairs])
    print(f"{args.pairs} pairs of 512x512, {objects:.0f} true objects on average, 10 IoU thresholds")
    print(
        f"cellpose_omni.metrics.average_precision: {t_omni:6.3f} s ({t_omni / args.pairs * 1e3:.2f} ms/pair)"
    )
    print(
        f"omnitrain.metrics.match:                 {t_ours:6.3f} s ({t_ours / args.pairs * 1e3:.2f} ms/pair)"
    )
    print(f"speed ratio: {t_omni / t_ours:.1f}x (goal >= 5x); identical tp/fp/fn/AP: {same}")


if __name__ == "__main__":
    main()
