"""Held-out split of SOURCE images, stable when the dataset grows."""

from __future__ import annotations

import hashlib
import re


def group_of(name: str, group_regex: str | None) -> str:
    """The group an image belongs to: the regex's first group (or whole match) in its name, else the name."""
    if not group_regex:
        return name
    match = re.search(group_regex, name)
    if not match:
        return name
    return match.group(1) if match.groups() and match.group(1) is not None else match.group(0)


def hash_unit(key: str, seed: int) -> float:
    """A number in [0, 1) that depends only on ``key`` and ``seed`` (SHA-256, not Python's salted hash)."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(
    names: list[str], test_fraction: float, seed: int = 0, group_regex: str | None = None, min_test: int = 1
) -> dict[str, str]:
    """``{name: "train" | "test"}`` for source images named by their path relative to the data folder.

    A group is held out when the hash of its key falls below ``test_fraction``: the decision for an
    image depends on its own name and the seed only, so adding images never moves existing ones.
    When fewer than ``min_test`` groups fall below the threshold, the groups with the smallest
    hashes are held out as well (the one case where growth can move an image back: once enough
    new groups fall below the threshold, these return to training). At least one group always
    stays in training.
    """
    groups = {n: group_of(n, group_regex) for n in names}
    keys = sorted(set(groups.values()))
    u = {k: hash_unit(k, seed) for k in keys}
    test = {k for k in keys if u[k] < test_fraction}
    wanted = min(min_test, max(len(keys) - 1, 0))
    for k in sorted(keys, key=lambda k: (u[k], k)):
        if len(test) >= wanted:
            break
        test.add(k)
    if keys and len(test) == len(keys):  # everything below the threshold: keep one for training
        test.discard(max(keys, key=lambda k: (u[k], k)))
    return {n: ("test" if groups[n] in test else "train") for n in names}


def assign_validation(
    names: list[str], fraction: float, seed: int = 0, group_regex: str | None = None, min_train: int = 8
) -> set[str]:
    """The training source images set aside to monitor training (never trained on).

    A group is taken when the hash of its key (salted differently from the test split) falls below
    ``fraction``, at least one when ``fraction`` > 0; none at all unless ``min_train`` groups remain for
    training. Like the test split, the decision depends on an image's own name, so adding images never
    moves existing ones (except through the at-least-one and ``min_train`` rules).
    """
    groups = {n: group_of(n, group_regex) for n in names}
    keys = sorted(set(groups.values()))
    if fraction <= 0 or len(keys) < min_train + 1:
        return set()
    u = {k: hash_unit(f"validation\0{k}", seed) for k in keys}
    chosen = {k for k in keys if u[k] < fraction} or {min(keys, key=lambda k: (u[k], k))}
    while len(keys) - len(chosen) < min_train:
        chosen.discard(max(chosen, key=lambda k: (u[k], k)))
    return {n for n in names if groups[n] in chosen}


def assign_folds(
    names: list[str], folds: int, seed: int = 0, group_regex: str | None = None
) -> dict[str, int]:
    """``{name: fold}`` (1..folds) for k-fold cross-validation of the training source images, by group.

    A group's fold is ``1 + floor(u * folds)`` for the hash ``u`` of its key (salted differently from the
    test and validation splits): it depends on the group's own name and the seed only, so adding images
    never moves existing ones. The one exception: a fold that would be empty takes the group whose hash is
    nearest to its range from a fold that has more than one group (so every fold validates something).
    """
    groups = {n: group_of(n, group_regex) for n in names}
    keys = sorted(set(groups.values()))
    if len(keys) < folds:
        raise ValueError(
            f"cross_validation.folds is {folds} but there are only {len(keys)} training source image(s) (or"
            f" groups of split.group_regex): use at most {len(keys)} folds, or add images"
        )
    u = {k: hash_unit(f"fold\0{k}", seed) for k in keys}
    fold = {k: 1 + min(int(u[k] * folds), folds - 1) for k in keys}
    for empty in range(1, folds + 1):
        if empty in fold.values():
            continue
        sizes = {f: list(fold.values()).count(f) for f in set(fold.values())}
        centre = (empty - 0.5) / folds
        donor = min((k for k in keys if sizes[fold[k]] > 1), key=lambda k: (abs(u[k] - centre), k))
        fold[donor] = empty
    return {n: fold[groups[n]] for n in names}
