"""A tiny synthetic database shared by the training tests (12 patients, 64x64, every split present), and a
copy of a database whose training rows lack their in-focus reference."""

import shutil
from pathlib import Path

from ifrt.train.data.manifest import read_manifest, write_manifest
from ifrt.train.data.synth import synthesize_database


def make_tiny_database(root: Path) -> Path:
    synthesize_database(root, patients=12, images_per_patient=2, size=64, seed=3, workers=1,
                        split_fractions=(0.34, 0.33, 0.33))
    return root


def without_references(database, destination, keep: int = 0):
    """A copy of `database` whose training rows, all but the first `keep`, have no in-focus reference, as a
    manifest from `ifrt data index` has none."""
    shutil.copytree(database, destination)
    rows, kept = [], 0
    for row in read_manifest(destination / "manifest.csv"):
        if row.split == "train":
            kept += 1
            if kept > keep:
                row.sharp_path = None
        rows.append(row)
    write_manifest(destination / "manifest.csv", rows)
    return destination
