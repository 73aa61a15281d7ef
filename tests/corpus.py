"""The corpus of bad inputs: each case writes one bad input into a folder of valid pairs and names the file
to blame and the expected problem code. tests/unit/test_validation.py refuses each through the validator,
tests/workflow/test_workflow_reliability.py through snakemake."""

from __future__ import annotations

import numpy as np
import tifffile
from helpers import cells, image_for, save, write_pair


def background(folder, n=2):
    """Valid pairs next to the bad input, so that only the bad input is refused."""
    for i in range(n):
        write_pair(folder, f"ok{i}", lab=cells(n=5))


def _blobs(value_of=lambda i: 1, n=6, dtype=np.uint8):
    lab = cells(n=n).astype(np.int64)
    out = np.zeros(lab.shape, dtype=dtype)
    for i in range(1, n + 1):
        out[lab == i] = value_of(i)
    return out


# Each case builds a bad input in `folder` and returns (name of the file blamed, expected code,
# config overrides).
def case_image_without_label(f):
    save(f / "lonely.tif", image_for(cells()))
    return "lonely.tif", "image-without-label", {}


def case_label_without_image(f):
    save(f / "orphan_masks.tif", cells())
    return "orphan_masks.tif", "label-without-image", {}


def case_duplicate_base(f):
    write_pair(f, "twin")
    save(f / "twin.tiff", image_for(cells()))
    return "twin.tif", "duplicate-base", {}


def case_jpeg_label(f):
    save(f / "lossy.tif", image_for(cells()))
    save(f / "lossy_masks.jpg", cells().astype(np.uint8))
    return "lossy_masks.jpg", "lossy-label-format", {}


def case_too_few_pairs(f):
    for p in f.iterdir():
        if "ok1" in p.name:  # the second valid pair, whatever its prefix
            p.unlink()
    return str(f), "too-few-pairs", {}


def case_unreadable_image(f):
    _, lab = write_pair(f, "broken")
    (f / "broken.tif").write_bytes(b"this is not a tiff file at all")
    return "broken.tif", "unreadable", {}


def case_empty_label_file(f):
    write_pair(f, "zero")
    (f / "zero_masks.tif").write_bytes(b"")
    return "zero_masks.tif", "unreadable", {}


def case_colour_labels(f):
    lab = cells()
    rgb = np.stack([lab * 40 % 255, lab * 80 % 255, lab * 20 % 255], axis=-1).astype(np.uint8)
    write_pair(f, "colour", lab=lab, label_ext=None)
    save(f / "colour_masks.png", rgb)
    return "colour_masks.png", "colour-labels", {}


def case_label_stack(f):
    lab = cells()
    write_pair(f, "stack", lab=lab, img=image_for(lab))
    save(f / "stack_masks.tif", np.stack([lab, lab]))
    return "stack_masks.tif", "label-dimensions", {}


def case_boolean_mask(f):
    lab = cells()
    write_pair(f, "boolean", lab=lab)
    np.save(f / "boolean_masks.npy", lab > 0)
    (f / "boolean_masks.tif").unlink()
    return "boolean_masks.npy", "binary-mask", {}


def case_binary_255_mask(f):
    write_pair(f, "binary", lab=_blobs(lambda i: 255))
    return "binary_masks.tif", "binary-mask", {}


def case_semantic_mask(f):
    lab = np.concatenate([_blobs(lambda i: 1 + i % 2, n=8), _blobs(lambda i: 1 + i % 2, n=8)], axis=0)
    write_pair(f, "semantic", lab=lab)
    return "semantic_masks.tif", "semantic-mask", {}


def case_float_labels(f):
    lab = cells().astype(np.float32)
    lab[lab > 0] += 0.5
    write_pair(f, "probability", lab=lab, img=image_for(cells()))
    return "probability_masks.tif", "float-labels", {}


def case_negative_labels(f):
    lab = cells().astype(np.int32)
    lab[0, 0] = -1
    write_pair(f, "negative", lab=lab)
    return "negative_masks.tif", "negative-labels", {}


def case_empty_labels(f):
    write_pair(f, "blank", lab=np.zeros((64, 64), np.uint16), img=image_for(cells()))
    return "blank_masks.tif", "empty-labels", {}


def case_png_overflow(f):
    lab = cells(shape=(64, 64), n=4).astype(np.uint16)
    lab[lab == 4] = 65535
    write_pair(f, "overflow", lab=lab, label_ext=".png")
    return "overflow_masks.png", "png-label-overflow", {}


def case_shape_mismatch(f):
    lab = cells()
    write_pair(f, "mismatch", lab=lab, img=image_for(lab)[:60])
    return "mismatch.tif", "shape-mismatch", {}


def case_image_4d(f):
    lab = cells()
    write_pair(f, "hyper", lab=lab, img=np.stack([np.stack([image_for(lab)] * 2)] * 2))
    return "hyper.tif", "image-axes", {}


def case_missing_channel(f):
    lab = cells()
    for p in f.iterdir():
        p.unlink()
    for i in range(2):
        write_pair(f, f"green{i}", lab=lab, img=np.stack([image_for(lab, s) for s in range(2)], axis=-1))
    write_pair(f, "grey", lab=lab)
    return "grey.tif", "channels", {"chan": 2}


def case_all_channels_count(f):
    lab = cells()
    rgb = np.stack([image_for(lab)] * 3, axis=-1)
    for p in f.iterdir():
        p.unlink()
    for i in range(2):
        write_pair(f, f"two{i}", lab=lab, img=rgb[..., :2])
    write_pair(f, "three", lab=lab, img=rgb)
    return "three.tif", "channels", {"all_channels": True, "nchan": 2}


def case_nan_image(f):
    lab = cells()
    img = image_for(lab).astype(np.float32)
    img[3, 3] = np.nan
    write_pair(f, "nan", lab=lab, img=img)
    return "nan.tif", "non-finite-image", {}


def case_constant_image(f):
    lab = cells()
    write_pair(f, "flat", lab=lab, img=np.zeros(lab.shape, np.uint16))
    return "flat.tif", "constant-image", {}


def case_complex_image(f):
    lab = cells()
    write_pair(f, "complex", lab=lab, img=image_for(lab).astype(np.complex64))
    return "complex.tif", "image-dtype", {}


def case_links_syntax(f):
    write_pair(f, "linked")
    (f / "linked_links.txt").write_text("1,2\n3;4\n")
    return "linked_links.txt", "links-syntax", {}


def case_links_unknown(f):
    write_pair(f, "linked")
    (f / "linked_links.txt").write_text("1,2\n3,99\n")
    return "linked_links.txt", "links-unknown-label", {}


def case_npz_without_arr0(f):
    lab = cells()
    write_pair(f, "archive", lab=lab, label_ext=None)
    np.savez(f / "archive_masks.npz", labels=lab)
    return "archive_masks.npz", "unreadable", {}


def case_label_dtype(f):
    lab = cells()
    write_pair(f, "strings", lab=lab, label_ext=None)
    np.save(f / "strings_masks.npy", lab.astype(str))
    return "strings_masks.npy", "label-dtype", {}


def case_lying_tiff_header(f):
    """A TIFF whose header claims 150000 x 150000 pixels (21 GiB): refused before any pixel is read."""
    write_pair(f, "huge")
    path = f / "huge.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint16))
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(150000)
        tif.pages[0].tags["ImageLength"].overwrite(150000)
    return "huge.tif", "too-large", {}


def case_jpeg_compressed_tiff_label(f):
    lab = cells()
    write_pair(f, "lossy", lab=lab, label_ext=None)
    tifffile.imwrite(f / "lossy_masks.tif", (lab * 20).astype(np.uint8), compression="jpeg")
    return "lossy_masks.tif", "lossy-compressed-labels", {}


def case_dangling_label_link(f):
    write_pair(f, "linked_away", label_ext=None)
    (f / "linked_away_masks.tif").symlink_to(f / "gone" / "linked_away_masks.tif")
    return "linked_away_masks.tif", "dangling-link", {}


def case_upper_case_label_extension(f):
    lab = cells()
    write_pair(f, "shouty", lab=lab, label_ext=None)
    save(f / "shouty_masks.TIF", lab)
    return "shouty.tif", "image-without-label", {}


def case_grey_labels_saved_as_rgb(f):
    lab = cells()
    write_pair(f, "greyrgb", lab=lab, label_ext=None)
    save(f / "greyrgb_masks.png", np.repeat(lab.astype(np.uint8)[..., None], 3, axis=-1))
    return "greyrgb_masks.png", "colour-labels", {}


def _pages(path, *planes):
    """A TIFF of pages saved one by one (tifffile reads only the first of them as the file's image)."""
    tifffile.imwrite(path, planes[0])
    for plane in planes[1:]:
        tifffile.imwrite(path, plane, append=True)


def case_label_of_two_pages(f):
    lab = cells()
    write_pair(f, "paged", lab=lab, label_ext=None)
    _pages(f / "paged_masks.tif", lab, cells(n=3))
    return "paged_masks.tif", "several-pages", {}


def case_image_of_two_pages(f):
    lab = cells()
    write_pair(f, "paged", lab=lab)
    _pages(f / "paged.tif", image_for(lab), image_for(lab, 1))
    return "paged.tif", "several-pages", {}


def case_tiff_of_two_different_images(f):
    lab = cells()
    write_pair(f, "mixed", lab=lab, label_ext=None)
    _pages(f / "mixed_masks.tif", lab, lab[:32, :32])
    return "mixed_masks.tif", "unreadable", {}


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]
