"""Find image/label pairs in a folder with exactly Omnipose's naming rules.

Omnipose 1.1.4 (``cellpose_omni.io.get_image_files`` and ``get_label_files``) pairs files like
this, and so does :func:`discover`:

- images are ``<folder>/*<img_filter>.<ext>`` for ext in png, jpg, jpeg, tif, tiff (lower case:
  the match is case-sensitive); with ``look_one_level_down`` also every non-hidden immediate
  subfolder; stems ending in ``_cp_masks``, ``_cp_output``, ``_flows`` or the mask filter are
  not images;
- the base of an image is its stem without the image filter; its label is
  ``<same folder>/<base><mask_filter><ext>``, trying .tif, .tiff, .png, .npy, .npz in that order,
  the first that exists wins;
- links are ``<same folder>/<base>_links.txt``.

Deliberate differences, each of which Omnipose gets wrong for the user:

- an image without a label is an error here (Omnipose logs a warning, then fails later with a
  confusing length mismatch between images and labels);
- the image filter is removed only at the end of the stem (Omnipose's ``getname`` removes every
  occurrence, so ``a_img_b_img.tif`` with filter ``_img`` looks for ``a_b_masks.tif``);
- what Omnipose silently ignores is reported: label files without an image, two images with
  the same base (``a.tif`` and ``a.tiff`` share one label), labels in a lossy format (JPEG),
  upper-case extensions, links files without an image.
"""

from __future__ import annotations

import difflib
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from natsort import natsorted

from .problems import Problem, error, warning

#: Image extensions, in Omnipose's search order.
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "tif", "tiff")
#: Label extensions, in Omnipose's order of preference.
LABEL_EXTENSIONS = (".tif", ".tiff", ".png", ".npy", ".npz")
#: Stems with these endings are never images (outputs of Omnipose itself).
EXCLUDED_SUFFIXES = ("_cp_masks", "_cp_output", "_flows")
LINKS_SUFFIX = "_links.txt"


@dataclass(frozen=True)
class Pair:
    """An image, its label matrix and its optional links file."""

    base: str
    image: Path
    label: Path
    links: Path | None = None

    @property
    def folder(self) -> Path:
        return self.image.parent


@dataclass
class Discovery:
    """Everything found in a training folder, paired or not."""

    root: Path
    pairs: list[Pair] = field(default_factory=list)
    unlabeled: list[Path] = field(default_factory=list)
    orphan_labels: list[Path] = field(default_factory=list)
    alternate_labels: dict[Path, list[Path]] = field(default_factory=dict)
    duplicate_bases: list[list[Path]] = field(default_factory=list)
    lossy_labels: list[Path] = field(default_factory=list)
    orphan_links: list[Path] = field(default_factory=list)
    ignored_case: list[Path] = field(default_factory=list)
    dangling_links: list[Path] = field(default_factory=list)
    img_filter: str = ""
    mask_filter: str = "_masks"

    def files(self) -> list[Path]:
        """Every file whose content or presence matters to validation, sorted."""
        found: set[Path] = set(self.unlabeled) | set(self.orphan_labels) | set(self.lossy_labels)
        found |= set(self.orphan_links)
        for pair in self.pairs:
            found.update(p for p in (pair.image, pair.label, pair.links) if p is not None)
        for alternates in self.alternate_labels.values():
            found.update(alternates)
        return natsorted(found, key=str)

    def problems(self, min_pairs: int = 2) -> list[Problem]:
        """Naming problems: the ones that need no pixel to be read."""
        out = self._unlabeled_problems() + self._dangling_link_problems() + self._label_file_problems()
        out += self._other_file_warnings()
        if len(self.pairs) < min_pairs:
            out.append(
                error(
                    self.root,
                    "too-few-pairs",
                    f"{len(self.pairs)} image/label pair(s) found; training needs at least {min_pairs}",
                    f"check dir, img_filter ('{self.img_filter}'), mask_filter ('{self.mask_filter}') and"
                    " look_one_level_down against the file names in the folder",
                )
            )
        return out

    def _unlabeled_problems(self) -> list[Problem]:
        """Images without a label file, each with the likely misnamed label file to rename."""
        mf = self.mask_filter
        hints = {}
        for image in self.unlabeled:
            base = _base_of(image, self.img_filter)
            hints[image] = _closest_file(image.parent, f"{base}{mf}", exclude=image)
        # A misnamed label (b_mask.tif for b.tif) is itself taken for an image: its own problem
        # is the rename hint of the image it belongs to, so it is not listed twice.
        hinted = {image.parent / h for h in hints.values() if h}
        dangling = set(self.dangling_links)
        out = []
        for image in self.unlabeled:
            base = _base_of(image, self.img_filter)
            wanted = [image.parent / f"{base}{mf}{ext}" for ext in LABEL_EXTENSIONS]
            if image in hinted or dangling.intersection(wanted):  # its own problem says it all
                continue
            tried = ", ".join(p.name for p in wanted)
            fix = f"add its label matrix as one of {tried} in {image.parent}"
            if hints[image]:
                fix += f" ({_label_name_hint(hints[image], f'{base}{mf}')})"
            fix += ", or move the image out of the training folder"
            out.append(error(image, "image-without-label", "image has no label file", fix))
        return out

    def _label_file_problems(self) -> list[Problem]:
        """Labels without an image, several labels for one image, shared base names, JPEG labels."""
        out = []
        for label in self.orphan_labels:
            out.append(
                error(
                    label,
                    "label-without-image",
                    f"label file has no image: no <base>{self.img_filter}.<png|jpg|jpeg|tif|tiff>"
                    f" whose base gives this name with mask_filter '{self.mask_filter}'",
                    "rename it to match its image, add the image, or move the label out of the folder",
                )
            )
        for image, alternates in self.alternate_labels.items():
            chosen = next(p.label for p in self.pairs if p.image == image)
            out.append(
                warning(
                    image,
                    "several-labels",
                    f"several label files: {', '.join(a.name for a in [chosen, *alternates])};"
                    f" Omnipose uses {chosen.name}",
                    "delete the label files that are out of date",
                )
            )
        for group in self.duplicate_bases:
            out.append(
                error(
                    group[0],
                    "duplicate-base",
                    f"{len(group)} images share the base name and so one label file: "
                    + ", ".join(str(p) for p in group),
                    "keep one of them or rename the others (each image needs its own base name)",
                )
            )
        for label in self.lossy_labels:
            out.append(
                error(
                    label,
                    "lossy-label-format",
                    "label saved as JPEG: lossy compression changes label values at object edges,"
                    " and Omnipose does not read JPEG labels",
                    "export the label matrix again as .tif or .png (lossless)",
                )
            )
        return out

    def _dangling_link_problems(self) -> list[Problem]:
        out = []
        for link in self.dangling_links:
            target = os.readlink(link)
            out.append(
                error(
                    link,
                    "dangling-link",
                    f"symbolic link to {target}, which does not exist (moved, deleted or on a drive that"
                    " is not mounted)",
                    f"restore {target}, or replace the link with the file itself",
                )
            )
        return out

    def _other_file_warnings(self) -> list[Problem]:
        """Files that Omnipose will not use: stray links files, upper-case extensions."""
        out = [
            warning(
                links,
                "links-without-image",
                "links file has no image with this base; it is not used",
                "rename it to <base>_links.txt of its image, or remove it",
            )
            for links in self.orphan_links
        ]
        out += [
            warning(
                path,
                "upper-case-extension",
                "ignored: Omnipose matches file extensions in lower case only",
                f"rename it to end in {path.suffix.lower()}",
            )
            for path in self.ignored_case
        ]
        return out


def _base_of(image: Path, img_filter: str) -> str:
    stem = image.name[: -len(image.suffix)] if image.suffix else image.name
    if img_filter and stem.endswith(img_filter):
        return stem[: -len(img_filter)]
    return stem


def _label_name_hint(name: str, wanted_stem: str) -> str:
    """What to do with ``name``, a file that looks like the label ``<wanted_stem>.<ext>`` misnamed."""
    suffix = Path(name).suffix
    if suffix.lower() in (".jpg", ".jpeg"):
        return (
            f"{name} is a JPEG, which changes label values at object edges: export the label matrix"
            f" again as {wanted_stem}.tif"
        )
    target = wanted_stem + (suffix.lower() if suffix.lower() in LABEL_EXTENSIONS else ".tif")
    if suffix.lower() not in LABEL_EXTENSIONS:
        return f"is {name} its label matrix? save it as {target}"
    if name[: -len(suffix)] == wanted_stem:  # only the extension's case is wrong
        return f"rename {name} to {target}: Omnipose matches file extensions in lower case only"
    return f"is {name} meant to be {target}? rename it"


def _closest_file(folder: Path, wanted_stem: str, exclude: Path) -> str | None:
    names = [
        p.name
        for p in folder.iterdir()
        if p.is_file() and p != exclude and not p.name.startswith(".") and p.suffix
    ]
    stems = {n[: -len(Path(n).suffix)]: n for n in names}
    match = difflib.get_close_matches(wanted_stem, list(stems), n=1, cutoff=0.8)
    return stems[match[0]] if match else None


def search_folders(root: str | Path, look_one_level_down: bool) -> list[Path]:
    """The folders Omnipose searches: the non-hidden immediate subfolders (natural order), then root."""
    root = Path(root)
    folders: list[Path] = []
    if look_one_level_down:
        subs = glob.glob(os.path.join(glob.escape(str(root)), "*", ""))
        folders = [Path(s) for s in natsorted(subs)]
    folders.append(root)
    return folders


def _is_pair_file(name: str, img_filter: str, mask_filter: str) -> bool:
    """A name Omnipose would take as an image, a label or a links file (other files do not matter)."""
    stem = name.rpartition(".")[0]
    is_label = stem.endswith(mask_filter) and any(name.endswith(ext) for ext in LABEL_EXTENSIONS)
    return is_label or name.endswith(LINKS_SUFFIX) or _is_image_name(name, img_filter, mask_filter)


def _is_image_name(name: str, img_filter: str, mask_filter: str) -> bool:
    stem, dot, ext = name.rpartition(".")
    if not dot or ext not in IMAGE_EXTENSIONS or not stem.endswith(img_filter):
        return False
    return not any(stem.endswith(s) for s in (*EXCLUDED_SUFFIXES, mask_filter))


def discover(
    root: str | Path,
    img_filter: str = "",
    mask_filter: str = "_masks",
    look_one_level_down: bool = False,
) -> Discovery:
    """Pair images and labels below ``root`` the way Omnipose does (see the module docstring)."""
    root = Path(root)
    found = Discovery(root=root, img_filter=img_filter, mask_filter=mask_filter)
    claimed: set[Path] = set()
    for folder in search_folders(root, look_one_level_down):
        entries = [e for e in os.scandir(folder) if not e.name.startswith(".")]
        names = sorted(e.name for e in entries if e.is_file())
        found.dangling_links += sorted(
            folder / e.name
            for e in entries
            if e.is_symlink()
            and not os.path.exists(e.path)
            and _is_pair_file(e.name, img_filter, mask_filter)
        )
        images = natsorted((folder / n for n in names if _is_image_name(n, img_filter, mask_filter)), key=str)
        by_base: dict[str, list[Path]] = {}
        for image in images:
            by_base.setdefault(_base_of(image, img_filter), []).append(image)
        present = set(names)
        for base, group in by_base.items():
            if len(group) > 1:
                found.duplicate_bases.append(group)
            labels = [folder / f"{base}{mask_filter}{ext}" for ext in LABEL_EXTENSIONS]
            labels = [p for p in labels if p.name in present]
            claimed.update(labels)
            links = folder / f"{base}{LINKS_SUFFIX}"
            links = links if links.name in present else None
            if links is not None:
                claimed.add(links)
            for image in group:
                if not labels:
                    found.unlabeled.append(image)
                    continue
                found.pairs.append(Pair(base, image, labels[0], links))
                if len(labels) > 1:
                    found.alternate_labels[image] = labels[1:]
        for name in names:
            path = folder / name
            stem, dot, ext = name.rpartition(".")
            if path in claimed or not dot:
                continue
            if ext in ("jpg", "jpeg") and stem.endswith(mask_filter):
                found.lossy_labels.append(path)
            elif "." + ext in LABEL_EXTENSIONS and stem.endswith(mask_filter):
                found.orphan_labels.append(path)
            elif name.endswith(LINKS_SUFFIX):
                found.orphan_links.append(path)
            elif ext != ext.lower() and ext.lower() in IMAGE_EXTENSIONS + ("npy", "npz"):
                found.ignored_case.append(path)
    found.pairs = natsorted(found.pairs, key=lambda p: str(p.image))
    return found
