"""Contact sheet of a dataset for a person to look at: one row per class, one column per blur level (classes
in alphabetical order).

Each cell shows one image of that class and level, chosen deterministically among the first few
candidates: a positive stain when the manifest has ifrt's `grade` column, then the one with the most
contrast (so deposits, not a negative stain's autofluorescence, are what one sees),
scaled by its own percentiles (1, 99.8) and shown in green as an FITC image would be. The stain and
patient are written in the cell's lower corner and, for a blurred image whose manifest row records it, the
blur kind in the upper one (a spatially varying blur is labelled by its mean severity, so parts of such a
frame can look sharper than its level); an empty cell says "none".
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ifrt.imageio import ImageReadError, read_image, write_bytes_atomic
from ifrt.train.data.check import path_problem
from ifrt.train.data.manifest import NO_ROWS, ManifestRow, manifest_path, read_manifest, resolve

_CANDIDATES = 6
_LABEL_W, _HEADER_H = 110, 28
_MAX_LABEL_W = 480
_FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_THUMB = 16  # smaller cells hold no legible image or caption
MAX_THUMB = 1024  # larger cells make a sheet of gigabytes for a few classes and levels


def _display(image: np.ndarray, thumb: int) -> np.ndarray:
    image = image.astype(np.float32)
    lo, hi = np.percentile(image, (1, 99.8))
    scaled = np.clip((image - lo) / max(float(hi - lo), 1e-6), 0, 1)
    return cv2.resize((scaled * 255).astype(np.uint8), (thumb, thumb), interpolation=cv2.INTER_AREA)


def _contrast(image: np.ndarray) -> float:
    """High when a few structures are much brighter than most of the tissue (deposits, not autofluorescence)."""
    p1, p90, p999 = np.percentile(image[::2, ::2], (1, 90, 99.9)).astype(np.float64)
    return (p999 - p90) / (p90 - p1 + 1e-6 * (p999 + 1))


def _pick(manifest: Path, rows: list[ManifestRow]) -> tuple[ManifestRow, np.ndarray] | None:
    best = None
    for row in rows[:_CANDIDATES]:
        if path_problem(row.path):  # what `ifrt data check` refuses is not read either
            continue
        try:
            image = read_image(resolve(manifest, row.path))
        except ImageReadError:
            continue
        # ifrt's own databases record each image's stain grade: show a positive stain when there is one.
        try:
            grade = float(row.extra.get("grade") or 0.0)
        except ValueError:
            grade = 0.0
        score = (grade > 0, _contrast(image))
        if best is None or score > best[0]:
            best = (score, row, image)
    return None if best is None else (best[1], best[2])


def _text(canvas, text, org, scale=0.45, colour=(255, 255, 255)):
    cv2.putText(canvas, text, org, _FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, text, org, _FONT, scale, colour, 1, cv2.LINE_AA)


def captions(row: ManifestRow) -> tuple[str, str | None]:
    """What a cell says of its image: stain and patient; the blur kind when the image is blurred and its row
    records the kind (ifrt's own databases do), else None."""
    kind = row.extra.get("blur_kind")
    return f"{row.stain or '?'}  {row.patient_id}", (kind if kind and row.blur_level != 0 else None)


def preview_sheet(dataset: str | os.PathLike, out: str | os.PathLike, *, thumb: int = 192) -> Path:
    """Write the contact sheet of `dataset` (folder or manifest) to `out` (.png, or .jpg/.jpeg: the sheet is
    colour, which ifrt's TIFF writer does not take); returns its path."""
    suffix = Path(out).suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"{out}: a contact sheet is a colour image; name it .png or .jpg")
    if not MIN_THUMB <= thumb <= MAX_THUMB:
        raise ValueError(f"thumb {thumb} is out of range ({MIN_THUMB} to {MAX_THUMB} pixels)")
    manifest = manifest_path(dataset)
    rows = read_manifest(manifest)
    if not rows:
        raise ValueError(f"{manifest}: {NO_ROWS}")
    classes: list[str | None] = sorted({r.diagnosis for r in rows if r.diagnosis is not None})
    if any(r.diagnosis is None for r in rows):
        classes.append(None)
    levels = sorted({r.blur_level for r in rows if r.blur_level is not None})
    if any(r.blur_level is None for r in rows):
        levels.append(None)

    gap = 4
    # The class column is as wide as its longest name (up to _MAX_LABEL_W), so no name runs into the cells.
    names = ["unknown" if c is None else c for c in classes]
    label_w = min(_MAX_LABEL_W, max(_LABEL_W, *(cv2.getTextSize(n, _FONT, 0.6, 3)[0][0] + 16 for n in names)))
    width = label_w + len(levels) * (thumb + gap)
    height = _HEADER_H + len(classes) * (thumb + gap)
    sheet = np.full((height, width, 3), 32, np.uint8)
    for j, level in enumerate(levels):
        _text(sheet, "level ?" if level is None else f"blur level {level}",
              (label_w + j * (thumb + gap) + 6, _HEADER_H - 9), 0.5)
    for i, diagnosis in enumerate(classes):
        y = _HEADER_H + i * (thumb + gap)
        _text(sheet, "unknown" if diagnosis is None else diagnosis, (8, y + thumb // 2), 0.6)
        for j, level in enumerate(levels):
            x = label_w + j * (thumb + gap)
            cell = [r for r in rows if r.diagnosis == diagnosis and r.blur_level == level]
            picked = _pick(manifest, cell)
            if picked is None:
                _text(sheet, "none", (x + thumb // 2 - 18, y + thumb // 2), 0.5, (160, 160, 160))
                continue
            row, image = picked
            sheet[y:y + thumb, x:x + thumb] = 0
            sheet[y:y + thumb, x:x + thumb, 1] = _display(image, thumb)
            below, above = captions(row)
            _text(sheet, below, (x + 4, y + thumb - 6), 0.4)
            if above:
                _text(sheet, above, (x + 4, y + 14), 0.4)
    ok, encoded = cv2.imencode(suffix, sheet)
    if not ok:
        raise ValueError(f"{out}: OpenCV could not encode the sheet")
    return write_bytes_atomic(out, encoded.tobytes())
