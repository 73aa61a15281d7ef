"""Content-addressed folders made whole or not at all, by any number of runs at once.

A per-image folder (``<results>/images/<source>/<version>/``, a segmentation's
``<results>/segmentations/<model>/images/<source>/<key>/``) is named by everything that decides its
files, so a folder that exists is complete and is reused. It is written under a temporary name and
renamed when complete: a job killed half-way (kill -9, a full disk) leaves only a temporary folder,
which the next run removes.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# A temporary folder made on another host and older than this was left by a killed job (one image
# never takes this long); on this host, a temporary folder whose process is gone is removed at once.
STALE_SECONDS = 24 * 3600
HOST = socket.gethostname().replace("-", "_")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def left_by_a_dead_job(tmp: Path) -> bool:
    """A temporary folder whose job is gone: made on this host by a process that no longer runs
    (a killed job; its name holds host and process id), or older than a day (made anywhere, which also
    covers a process id reused since). Hosts must have distinct names: containers that share one
    name and a results folder, in separate process namespaces, would see each other's jobs as dead."""
    age = time.time() - tmp.stat().st_mtime
    if age > STALE_SECONDS:
        return True
    host, _, rest = tmp.name.rpartition(".tmp-")[2].partition("-")
    pid = rest.partition("-")[0]
    if host != HOST or not pid.isdigit():  # made on another host: only its age tells
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def make_folder(folder: Path, fill: Callable[[Path], None]) -> bool:
    """``fill(tmp)`` writes the folder's files into a fresh temporary folder, then it is renamed ``folder``.

    The temporary name is unique (several runs, or cluster nodes, may make the same version at once):
    only complete folders are ever renamed into place, and a run deletes no temporary folder but its
    own, and those left by killed jobs. Returns False when another run made the same folder first (its
    folder is complete, and is reused).
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{folder.name}.tmp-*"):
        if left_by_a_dead_job(stale):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-{HOST}-{os.getpid()}-", dir=folder.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the folder is as shared as any other output
    try:
        fill(tmp)
        os.rename(tmp, folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if folder.is_dir():
            return False
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True
