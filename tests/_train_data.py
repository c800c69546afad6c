"""A tiny synthetic database shared by the training tests (12 patients, 64x64, every split present)."""

from pathlib import Path

from ifrt.train.data.synth import synthesize_database


def make_tiny_database(root: Path) -> Path:
    synthesize_database(root, patients=12, images_per_patient=2, size=64, seed=3, workers=1,
                        split_fractions=(0.34, 0.33, 0.33))
    return root
