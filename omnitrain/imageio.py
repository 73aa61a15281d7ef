"""Reading images and label matrices the way Omnipose reads them (cellpose_omni.io.imread)."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile

from .labels import write_links


class ReadError(ValueError):
    """A file could not be read as an array; the message says why."""


def read_array(path: str | Path) -> np.ndarray:
    """The array in an image or label file: .tif/.tiff (tifffile), .png/.jpg/.jpeg, .npy, .npz.

    As in Omnipose, an .npz file's array is its ``arr_0``; colour PNG/JPEG are RGB(A), channel last.
    """
    path = Path(path)
    ext = path.suffix.lower()
    try:
        if path.stat().st_size == 0:
            raise ReadError("the file is empty (0 bytes)")
        if ext in (".tif", ".tiff"):
            return tifffile.imread(path)
        if ext == ".npy":
            return np.load(path, allow_pickle=False)
        if ext == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if "arr_0" not in data:
                    raise ReadError(f"the .npz file has no 'arr_0' array (it has {sorted(data.files)})")
                return data["arr_0"]
        if ext in (".png", ".jpg", ".jpeg"):
            return np.asarray(iio.imread(path))
    except ReadError:
        raise
    except Exception as exc:  # every reader raises its own types; the reason is what matters
        raise ReadError(f"{type(exc).__name__}: {exc}") from None
    raise ReadError(f"unsupported file type '{path.suffix}'")


def write_tiff(path: str | Path, arr: np.ndarray) -> None:
    """Write an array as a zlib-compressed TIFF; the same array always gives the same bytes."""
    tifffile.imwrite(path, np.ascontiguousarray(arr), compression="zlib")


def write_training_pair(
    folder: str | Path, name: str, image: np.ndarray, labels: np.ndarray, links=None
) -> list[Path]:
    """``<name>.tif``, ``<name>_masks.tif`` and, when ``links`` is given, ``<name>_links.txt``, in
    Omnipose's naming; returns the paths written."""
    folder = Path(folder)
    files = [folder / f"{name}.tif", folder / f"{name}_masks.tif"]
    write_tiff(files[0], image)
    write_tiff(files[1], labels)
    if links is not None:
        files.append(folder / f"{name}_links.txt")
        write_links(files[2], links)
    return files
