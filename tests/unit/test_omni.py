"""omnitrain.omni: numba's on-disk cache for Omnipose's compiled functions, and nothing else changed."""

from __future__ import annotations

import numba

from omnitrain.omni import numba_cache


def twice(x):
    return 2 * x


def test_numba_functions_are_cached_inside_and_numba_is_itself_again_outside():
    originals = numba.njit, numba.jit
    with numba_cache():
        bare, typed = numba.njit(twice), numba.njit("int64(int64)")(twice)
        explicit = numba.njit(twice, cache=False)  # an explicit choice is kept
        assert (numba.njit, numba.jit) != originals
    assert (numba.njit, numba.jit) == originals
    assert type(bare._cache).__name__ == type(typed._cache).__name__ == "FunctionCache"
    assert type(explicit._cache).__name__ == "NullCache"
    assert type(numba.njit(twice)._cache).__name__ == "NullCache"
    assert typed(21) == 42


def test_omniposes_deprecation_warnings_stay_out_of_the_terminal():
    import subprocess
    import sys

    from helpers import ROOT

    code = (
        "from omnitrain.omni import omnipose_models; import numpy as np; omnipose_models();"
        " import omnipose.core as c;"
        " c.fill_holes_and_remove_small_masks(np.pad(np.ones((9, 9), np.int32), 4), min_size=3)"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "jit.script" not in run.stderr and "area_threshold" not in run.stderr, run.stderr[-2000:]
