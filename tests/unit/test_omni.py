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
