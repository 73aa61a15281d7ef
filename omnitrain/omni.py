"""Importing Omnipose: once per process, with numba's on-disk cache for its compiled functions.

Omnipose 1.1.4 decorates its numba functions without ``cache=True``: one of them (in omnipose.core, with
an explicit signature) is compiled while the module is imported, the others at their first call (mask
reconstruction, flows), again in every job. numba has no switch to cache functions that did not ask for
it, so while Omnipose is imported :func:`numba_cache` hands it a ``njit``/``jit`` whose ``cache``
defaults to True; the functions themselves are unchanged. numba keys each cached function by its source
file's timestamp and the CPU, writes to ``NUMBA_CACHE_DIR`` when set, else next to the source
(``__pycache__``) or, where that is read-only (a shared conda env), in the user's cache folder, and compiles
again when the source or the CPU differs, so a stale or foreign cache is never used.

The first import of Omnipose in a process decides: every script that needs Omnipose calls
:func:`omnipose_models` before anything else imports it (the library's functions then import its modules
directly).
"""

from __future__ import annotations

import contextlib
import functools
import warnings


@contextlib.contextmanager
def numba_cache():
    """While active, numba functions decorated without ``cache=`` are cached on disk."""
    import numba

    originals = numba.njit, numba.jit

    def cached(decorator):
        @functools.wraps(decorator)
        def with_cache(*args, **kwargs):
            kwargs.setdefault("cache", True)
            return decorator(*args, **kwargs)

        return with_cache

    numba.njit, numba.jit = cached(numba.njit), cached(numba.jit)
    try:
        yield
    finally:
        numba.njit, numba.jit = originals


def omnipose_models():
    """``cellpose_omni.models`` (with ``omnipose.core`` and ``cellpose_omni.io`` imported), numba-cached.

    The first call in a process imports them; later calls return the imported module."""
    import sys

    if "cellpose_omni.models" not in sys.modules:
        from numba.core.errors import NumbaWarning

        # A function numba cannot cache (one that reads a global array, say) is compiled as before;
        # its warning says so at every first call and is not the user's business.
        warnings.filterwarnings("ignore", message="Cannot cache compiled function", category=NumbaWarning)
        # Omnipose 1.1.4 decorates functions with torch.jit.script, which torch 2.x deprecates with a
        # FutureWarning per decorated function in every job (144 of a demo's 740 lines); nothing to act on.
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
        )
        # Its mask reconstruction calls scikit-image's remove_small_holes with a parameter scikit-image 0.26
        # deprecates: a FutureWarning per call (1446 lines in one monitored training's log).
        warnings.filterwarnings(
            "ignore", message=r"Parameter `area_threshold` is deprecated", category=FutureWarning
        )
        with numba_cache():
            import cellpose_omni.models  # noqa: F401
            import omnipose.core  # noqa: F401
    return sys.modules["cellpose_omni.models"]
