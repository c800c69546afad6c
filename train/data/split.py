"""Patient-level, class-stratified train/val/test splits: one patient never appears in two splits.

Patients are grouped by diagnosis (unknown diagnosis is a group of its own), shuffled with the seed,
and each group is cut by the fractions with largest-remainder rounding, so every class is represented in
each split in proportion, as far as whole patients allow.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ifrt.train.data.manifest import SPLITS, ManifestError, ManifestRow


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


def largest_remainder(count: int, fractions: tuple[float, ...]) -> list[int]:
    """Split `count` items by `fractions` with largest-remainder rounding."""
    exact = np.asarray(fractions) / sum(fractions) * count
    sizes = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - sizes), kind="stable")[: count - sizes.sum()]:
        sizes[i] += 1
    return sizes.tolist()


def assign_splits(patients: dict[str, str | None], fractions=(0.7, 0.15, 0.15), seed: int = 0) -> dict[str, str]:
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
    return assignment


def split_rows(rows: list[ManifestRow], fractions=(0.7, 0.15, 0.15), seed: int = 0) -> list[ManifestRow]:
    """Rows with `split` filled in by patient (existing splits are replaced)."""
    assignment = assign_splits(patient_diagnoses(rows), fractions, seed)
    for row in rows:
        row.split = assignment[row.patient_id]
    return rows
