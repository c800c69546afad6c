"""Patient-level, class-stratified splits."""

from collections import Counter

import pytest

from ifrt.train.data.manifest import ManifestError, ManifestRow
from ifrt.train.data.split import empty_splits, largest_remainder, split_rows


def _rows(per_class=20, images=3):
    return [ManifestRow(path=f"{c}/{p}/{k}.tif", patient_id=f"{c}{p}", diagnosis=c)
            for c in ("IgAN", "MN", "DN", "LN") for p in range(per_class) for k in range(images)]


def test_no_patient_is_in_two_splits():
    rows = split_rows(_rows())
    splits = {}
    for row in rows:
        assert splits.setdefault(row.patient_id, row.split) == row.split


def test_every_class_is_split_by_the_fractions():
    rows = split_rows(_rows(per_class=20), (0.7, 0.15, 0.15))
    per_class = Counter((r.diagnosis, r.split) for r in rows if r.path.endswith("/0.tif"))
    for c in ("IgAN", "MN", "DN", "LN"):
        assert (per_class[(c, "train")], per_class[(c, "val")], per_class[(c, "test")]) == (14, 3, 3)


def test_same_seed_same_split_and_another_seed_another():
    first = [r.split for r in split_rows(_rows(), seed=1)]
    assert [r.split for r in split_rows(_rows(), seed=1)] == first
    assert [r.split for r in split_rows(_rows(), seed=2)] != first


def test_patients_of_unknown_diagnosis_are_split_too():
    rows = split_rows([ManifestRow(path=f"{p}.tif", patient_id=str(p)) for p in range(10)], (0.6, 0.2, 0.2))
    assert Counter(r.split for r in rows) == {"train": 6, "val": 2, "test": 2}


def test_patient_with_two_diagnoses_is_refused():
    rows = [ManifestRow(path="a.tif", patient_id="p", diagnosis="MN"),
            ManifestRow(path="b.tif", patient_id="p", diagnosis="LN")]
    with pytest.raises(ManifestError, match="patient p has images labelled LN, MN"):
        split_rows(rows)


def test_largest_remainder_keeps_the_total():
    assert largest_remainder(7, (0.7, 0.15, 0.15)) == [5, 1, 1]
    assert sum(largest_remainder(101, (1, 1, 1))) == 101


def test_eight_patients_of_four_classes_leave_no_split_empty():
    rows = split_rows(_rows(per_class=2, images=1))
    patients = Counter(split for _, split in {(r.patient_id, r.split) for r in rows})
    assert patients == {"train": 6, "val": 1, "test": 1}  # per class 2, 0, 0; then one train patient each


def test_twelve_patients_of_four_classes_get_a_test_patient():
    rows = split_rows(_rows(per_class=3, images=1))
    patients = Counter(split for _, split in {(r.patient_id, r.split) for r in rows})
    assert patients == {"train": 7, "val": 4, "test": 1}  # per class 2, 1, 0; then one train patient to test


def test_a_split_with_fraction_zero_stays_empty():
    rows = split_rows(_rows(per_class=2, images=1), (1.0, 0.0, 0.0))
    assert {r.split for r in rows} == {"train"}


def test_two_patients_cannot_fill_three_splits_and_say_which_is_empty():
    rows = split_rows(_rows(per_class=1, images=1)[:2])
    assert empty_splits(rows) == ["test"]
