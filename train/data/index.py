"""Build a manifest from the common layout of a lab's own data: ROOT/<diagnosis>/<patient>/<image>.

Images may sit in subfolders of the patient folder (e.g. one per stain); every TIFF, PNG and JPEG is
listed, in sorted order. A diagnosis folder named "unknown" (any case) gives an empty diagnosis. Stain,
blur level, sharp reference and split are left empty: unknown, never guessed from names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ifrt.imageio import IMAGE_SUFFIXES
from ifrt.train.data.manifest import ManifestError, ManifestRow

UNKNOWN_DIAGNOSIS = "unknown"


@dataclass
class Index:
    rows: list[ManifestRow]
    skipped: list[str] = field(default_factory=list)  # images outside a patient folder, relative to ROOT
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (path, path of the same file listed first)
    ignored: int = 0  # files in patient folders that are not TIFF, PNG or JPEG


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def index_folder(root: str | os.PathLike, *, manifest_dir: str | os.PathLike | None = None,
                 prefix_patients: bool = False) -> Index:
    """Rows for every image under ROOT/<diagnosis>/<patient>/; paths relative to `manifest_dir` (ROOT).

    A patient folder name must be unique across diagnoses (a patient has one diagnosis); with
    `prefix_patients` the patient id becomes "<diagnosis>/<patient>" instead.
    """
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: not a folder (expected ROOT/<diagnosis>/<patient>/<image>.tif)")
    base = Path(manifest_dir) if manifest_dir is not None else root
    if base.resolve() not in (root.resolve(), *root.resolve().parents):
        raise ManifestError(f"{base}: the manifest must sit in {root} or a folder above it (a dataset is a folder "
                            "with its manifest; image paths are relative to the manifest and stay inside)")
    rows, skipped = [], []
    owner: dict[str, str] = {}
    skipped += [p.name for p in sorted(root.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    index = Index(rows=rows, skipped=skipped)
    first_path: dict[Path, str] = {}  # real file -> the path it was listed under
    ignored: set[Path] = set()
    for diagnosis_dir in sorted(p for p in root.iterdir() if p.is_dir() and _visible(p)):
        # Names as the manifest reader sees them (it strips cells): "P0003 " and "P0003" are one patient.
        label = diagnosis_dir.name.strip()
        diagnosis = None if label.lower() == UNKNOWN_DIAGNOSIS else label
        for loose in sorted(p for p in diagnosis_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            skipped.append(loose.relative_to(root).as_posix())
        for patient_dir in sorted(p for p in diagnosis_dir.iterdir() if p.is_dir() and _visible(p)):
            patient = f"{label}/{patient_dir.name.strip()}" if prefix_patients else patient_dir.name.strip()
            if patient in owner and owner[patient] != label:
                raise ManifestError(f"{patient_dir}: patient folder '{patient}' also appears under "
                                    f"'{owner[patient]}'; a patient has one diagnosis. Rename one of them, or "
                                    "use --prefix-patients if they are different patients")
            owner[patient] = label
            for file in _files(patient_dir):
                real = file.resolve()
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    ignored.add(real)
                    continue
                relative = Path(os.path.relpath(file, base)).as_posix()
                if real in first_path:  # a linked folder or file: the same image under a second name
                    index.duplicates.append((relative, first_path[real]))
                    continue
                first_path[real] = relative
                rows.append(ManifestRow(path=relative, patient_id=patient, diagnosis=diagnosis))
    if not rows:
        raise ManifestError(f"{root}: no images found in ROOT/<diagnosis>/<patient>/ folders "
                            f"(looked for {', '.join(IMAGE_SUFFIXES)})")
    index.ignored = len(ignored)
    return index
