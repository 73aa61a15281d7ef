"""Reading images and label matrices the way Omnipose reads them (cellpose_omni.io.imread)."""

from __future__ import annotations

import contextlib
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile

from .labels import write_links

#: The largest array one image or label file may hold (before any pixel is read); a larger one is
#: refused with the fix (crop or tile it), as is one larger than half the memory free at the time.
MAX_ARRAY_BYTES = 4 * 2**30
#: TIFF compressions that change pixel values (JPEG, JPEG 2000, WebP, JPEG XL): never for labels.
LOSSY_TIFF_COMPRESSIONS = {
    6: "old-style JPEG",
    7: "JPEG",
    34712: "JPEG 2000",
    50001: "WebP",
    50002: "JPEG XL",
}


class ReadError(ValueError):
    """A file could not be read as an array; the message says why."""


class TooLarge(ReadError):
    """The file's header announces an array too large to read."""


@dataclass(frozen=True)
class Header:
    """What a file's header says of its array, before any pixel is read."""

    shape: tuple[int, ...]
    dtype: np.dtype
    compression: str | None = None  # a lossy TIFF compression, by name; None otherwise
    #: The separate images a TIFF holds (pages saved one by one, OME-TIFF series): read as one stack along a
    #: new first axis (``shape`` includes it), so that no page is ever dropped; 1 for every other file.
    images: int = 1

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize


_PIL_MODES = {
    "1": (np.bool_, 1),
    "L": (np.uint8, 1),
    "P": (np.uint8, 1),
    "LA": (np.uint8, 2),
    "RGB": (np.uint8, 3),
}
_PIL_MODES |= {"RGBA": (np.uint8, 4), "I": (np.int32, 1), "F": (np.float32, 1), "CMYK": (np.uint8, 4)}


def _npy_header(fh) -> Header:
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _, dtype = read(fh)
    return Header(tuple(shape), np.dtype(dtype))


@contextlib.contextmanager
def _quiet(logger: str):
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _images(tif: tifffile.TiffFile) -> list:
    """The TIFF's images (tifffile's series) without reduced-resolution ones (thumbnails, previews), which
    some microscope software adds and tifffile lists as series of their own."""
    full = [s for s in tif.series if not getattr(s.keyframe, "is_reduced", False)]
    return full or list(tif.series)


def read_header(path: str | Path) -> Header:
    """Shape and dtype from the header of a .tif/.tiff, .png/.jpg/.jpeg, .npy or .npz file (and a
    TIFF's lossy compression), reading no pixel."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext in (".tif", ".tiff"):
        # tifffile logs each inconsistency of a broken header; the caller reports the file once.
        with _quiet("tifffile"), tifffile.TiffFile(path) as tif:
            series = _images(tif)
            lossy = next(
                (LOSSY_TIFF_COMPRESSIONS[c] for c in (int(s.keyframe.compression) for s in series)
                 if c in LOSSY_TIFF_COMPRESSIONS),
                None,
            )  # fmt: skip
            kinds = sorted({(tuple(s.shape), str(s.dtype)) for s in series})
            if len(kinds) > 1:
                listed = ", ".join(f"{'x'.join(map(str, shape))} {dtype}" for shape, dtype in kinds[:4])
                raise ReadError(
                    f"the TIFF holds {len(series)} separate images of different shapes or types ({listed}):"
                    " a file holds one image (or one stack); save each image as its own file"
                )
            shape = tuple(series[0].shape)
            if len(series) > 1:
                shape = (len(series), *shape)
            return Header(shape, np.dtype(series[0].dtype), lossy, images=len(series))
    if ext == ".npy":
        with open(path, "rb") as fh:
            return _npy_header(fh)
    if ext == ".npz":
        with zipfile.ZipFile(path) as zf:
            if "arr_0.npy" not in zf.namelist():
                names = sorted(n.removesuffix(".npy") for n in zf.namelist())
                raise ReadError(f"the .npz file has no 'arr_0' array (it has {names})")
            with zf.open("arr_0.npy") as fh:
                return _npy_header(fh)
    if ext in (".png", ".jpg", ".jpeg"):
        from PIL import Image

        with Image.open(path) as im:
            width, height = im.size
            mode = im.mode
            if mode == "P":  # imageio expands a palette to its colours
                mode = im.palette.mode if im.palette is not None else "RGB"
        if mode.startswith("I;16"):
            dtype, channels = np.uint16, 1
        else:
            dtype, channels = _PIL_MODES.get(mode, (np.uint8, 4))
        return Header((height, width) if channels == 1 else (height, width, channels), np.dtype(dtype))
    raise ReadError(f"unsupported file type '{path.suffix}'")


def _free_memory() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # free pages (without the page cache): a lower bound
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_size(header: Header) -> None:
    """Refuse an array larger than :data:`MAX_ARRAY_BYTES` or half the free memory, before reading it."""
    limit = min(MAX_ARRAY_BYTES, _free_memory() // 2)
    if header.nbytes > limit:
        shape = "x".join(map(str, header.shape))
        raise TooLarge(
            f"its header announces a {shape} {header.dtype} array ({header.nbytes / 2**30:.1f} GiB),"
            f" more than the {limit / 2**30:.1f} GiB one image may take here (at most"
            f" {MAX_ARRAY_BYTES / 2**30:.0f} GiB, and at most half the free memory)"
        )


def read_array(path: str | Path) -> np.ndarray:
    """The array in an image or label file: .tif/.tiff (tifffile), .png/.jpg/.jpeg, .npy, .npz.

    As in Omnipose, an .npz file's array is its ``arr_0``; colour PNG/JPEG are RGB(A), channel last.
    The header is read first: an array too large for this machine is refused before any pixel is read.
    """
    path = Path(path)
    ext = path.suffix.lower()
    try:
        if path.stat().st_size == 0:
            raise ReadError("the file is empty (0 bytes)")
        check_size(read_header(path))
        if ext in (".tif", ".tiff"):
            with _quiet("tifffile"), tifffile.TiffFile(path) as tif:
                series = _images(tif)
                if len(series) > 1:  # tifffile.imread reads the first only: every page, as one stack
                    return np.stack([s.asarray() for s in series])
                return series[0].asarray()
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
