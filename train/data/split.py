"""Patient-level, class-stratified train/val/test splits: one patient never appears in two splits.

Patients are grouped by diagnosis (unknown diagnosis is a group of its own), shuffled with the seed,
and each group is cut by the fractions with largest-remainder rounding, so every class is represented in
each split in proportion, as far as whole patients allow. Rounding per class can leave a split empty when
classes have few patients (12 patients in 4 classes: 3 per class, none for test); then a patient moves to it
from the largest split, so that every split with a positive fraction holds a patient whenever there are at
least as many patients as such splits.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ifrt.train.data.manifest import SPLITS, ManifestError, ManifestRow

DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)  # train, val, test


def patient_diagnoses(rows: list[ManifestRow]) -> dict[str, str | None]:
    """Each patient's diagnosis; a patient whose images disagree is an error."""
    seen: dict[str, set] = defaultdict(set)
    for row in rows:
        seen[row.patient_id].add(row.diagnosis)
    conflicts = {p: d for p, d in seen.items() if len(d - {None}) > 1}
    if conflicts:
        patient, labels = next(iter(conflicts.items()))
        raise ManifestError(f"patient {patient} has images labelled {', '.join(sorted(map(str, labels - {None})))}"
                            f" ({len(conflicts)} patient(s) like this); one patient has one diagnosis")
    return {p: next(iter(d - {None}), None) for p, d in seen.items()}


def patients_in_several_splits(rows: list[ManifestRow]) -> dict[str, list[str]]:
    """The patients whose images are in more than one split, with those splits (sorted): leakage."""
    splits: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row.split:
            splits[row.patient_id].add(row.split)
    return {patient: sorted(found) for patient, found in sorted(splits.items()) if len(found) > 1}


def largest_remainder(count: int, fractions: tuple[float, ...]) -> list[int]:
    """Split `count` items by `fractions` with largest-remainder rounding."""
    exact = np.asarray(fractions) / sum(fractions) * count
    sizes = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - sizes), kind="stable")[: count - sizes.sum()]:
        sizes[i] += 1
    return sizes.tolist()


def assign_splits(patients: dict[str, str | None], fractions=DEFAULT_FRACTIONS, seed: int = 0) -> dict[str, str]:
    """patient_id -> split name, stratified by diagnosis."""
    if len(fractions) != len(SPLITS) or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative numbers for {', '.join(SPLITS)}, got {fractions}")
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = defaultdict(list)
    for patient, diagnosis in sorted(patients.items()):
        groups["" if diagnosis is None else diagnosis].append(patient)
    assignment = {}
    for key in sorted(groups):
        members = groups[key]
        order = rng.permutation(len(members))
        start = 0
        for split, size in zip(SPLITS, largest_remainder(len(members), tuple(fractions)), strict=True):
            for i in order[start:start + size]:
                assignment[members[i]] = split
            start += size
    return _fill_empty_splits(assignment, patients, fractions)


def _fill_empty_splits(assignment: dict[str, str], patients: dict[str, str | None],
                       fractions) -> dict[str, str]:
    """Move one patient into each empty split that should have some, taken from the largest split and, within
    it, from the diagnosis with the most patients there (so no class leaves a split it was in alone)."""
    wanted = [split for split, fraction in zip(SPLITS, fractions, strict=True) if fraction > 0]
    for split in wanted:
        members = defaultdict(list)
        for patient, assigned in sorted(assignment.items()):
            members[assigned].append(patient)
        if members[split]:
            continue
        donor = max(wanted, key=lambda s: len(members[s]))
        if len(members[donor]) < 2:
            break  # too few patients: some split stays empty (see empty_splits)
        by_class = defaultdict(list)
        for patient in members[donor]:
            by_class[patients[patient] or ""].append(patient)
        largest = max(sorted(by_class), key=lambda key: len(by_class[key]))
        assignment[by_class[largest][-1]] = split
    return assignment


def empty_splits(rows: list[ManifestRow], fractions=DEFAULT_FRACTIONS) -> list[str]:
    """The splits with a positive fraction that no row is in (too few patients to fill them all)."""
    present = {row.split for row in rows}
    return [split for split, fraction in zip(SPLITS, fractions, strict=True) if fraction > 0 and split not in present]


def split_rows(rows: list[ManifestRow], fractions=DEFAULT_FRACTIONS, seed: int = 0) -> list[ManifestRow]:
    """Rows with `split` filled in by patient (existing splits are replaced)."""
    assignment = assign_splits(patient_diagnoses(rows), fractions, seed)
    for row in rows:
        row.split = assignment[row.patient_id]
    return rows
