"""`manifest.csv`: the dataset contract. One row per image; paths relative to the manifest's folder.

Columns: path, patient_id, stain, diagnosis, blur_level, sharp_path, split, then extra columns. An empty
cell means unknown (None): losses for unknown targets are masked, never guessed. Extra columns are the
ones ifrt itself writes (EXTRA_COLUMNS; `grade` and `severity` hold numbers) and any user column whose
name starts with "x_".
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ifrt.imageio import write_text_atomic

COLUMNS = ("path", "patient_id", "stain", "diagnosis", "blur_level", "sharp_path", "split")
REQUIRED_COLUMNS = ("path", "patient_id")
# Written by `ifrt data synth`: blur kind, Gaussian-equivalent sigma (px), per-tile blur map (float32
# TIFF, level units), stain intensity grade (0..3).
EXTRA_COLUMNS = ("blur_kind", "severity", "blur_map", "grade")
# The extra columns ifrt reads as numbers, with what they hold (for the message when one is not a number).
NUMERIC_EXTRAS = {"grade": "the stain intensity grade, 0 = negative to 3 = 3+",
                  "severity": "the Gaussian-equivalent blur sigma in pixels"}
USER_PREFIX = "x_"
SPLITS = ("train", "val", "test")
MANIFEST_NAME = "manifest.csv"
# A dataset folder's run lock (`ifrt.runlock`), shared by `ifrt data synth`, `index` and `split`: each writes
# its manifest, and one would replace or delete what another is writing.
DATA_LOCK = ".ifrt-data.lock"
NO_ROWS = "no rows: the manifest names no image"  # a manifest with a header only: nothing to split, show or check


class ManifestError(ValueError):
    """A manifest that does not follow the contract; the message names the file, the line and the fix."""


@dataclass
class ManifestRow:
    path: str
    patient_id: str
    stain: str | None = None
    diagnosis: str | None = None
    blur_level: int | None = None
    sharp_path: str | None = None
    split: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def manifest_path(dataset: str | os.PathLike) -> Path:
    """The manifest of a dataset given as its folder or as the CSV itself."""
    dataset = Path(dataset)
    return dataset / MANIFEST_NAME if dataset.is_dir() else dataset


def missing_manifest(path: str | os.PathLike) -> ManifestError:
    return ManifestError(f"{path}: manifest not found (create one with `ifrt data index` or `ifrt data synth`)")


def read_table(path: str | os.PathLike, bad_rows: list[tuple[str, str]] | None = None,
               ) -> tuple[list[str], list[dict[str, str]]]:
    """The raw header and rows (cells as text), for tools that report every problem, not just the first.
    A row with another number of cells than the header is an error, or, given `bad_rows`, left out and
    recorded there as ("PATH:LINE", what is wrong)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise missing_manifest(path) from None
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text ({exc.reason}); save the CSV as UTF-8") from None
    reader = csv.reader(io.StringIO(text))
    rows = list(reader)
    if not rows:
        raise ManifestError(f"{path}: empty file; the first line must name the columns ({', '.join(COLUMNS)})")
    header = [name.strip() for name in rows[0]]
    table = []
    for line, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            problem = f"{len(cells)} cells but the header has {len(header)} columns"
            if bad_rows is None:
                raise ManifestError(f"{path}:{line}: {problem}")
            bad_rows.append((f"{path}:{line}", problem))
            continue
        table.append({name: cell.strip() for name, cell in zip(header, cells, strict=True)} | {"#line": str(line)})
    return header, table


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def parse_row(cells: dict[str, str], where: str = "") -> ManifestRow:
    """One row of text cells as a ManifestRow; raises ManifestError for a malformed cell."""
    def cell(name):
        value = cells.get(name, "")
        return value if value != "" else None

    level = cell("blur_level")
    if level is not None:
        try:
            level = int(level)
        except ValueError:
            raise ManifestError(f"{where}blur_level {level!r} is not an integer (leave it empty if unknown)") from None
        if level < 0:
            raise ManifestError(f"{where}blur_level {level} is negative (levels count up from 0 = in focus)")
    split = cell("split")
    if split is not None and split not in SPLITS:
        raise ManifestError(f"{where}split {split!r} is not one of {', '.join(SPLITS)} (or empty)")
    if cell("path") is None:
        raise ManifestError(f"{where}path is empty")
    if cell("patient_id") is None:
        raise ManifestError(f"{where}patient_id is empty (every image needs its patient, for leak-free splits)")
    extra = {k: v for k, v in cells.items() if k not in COLUMNS and not k.startswith("#")}
    for name, meaning in NUMERIC_EXTRAS.items():
        value = extra.get(name, "")
        if value != "" and not _is_number(value):
            raise ManifestError(f"{where}column {name}: {value!r} is not a number ({meaning}; leave it empty "
                                "if unknown)")
    return ManifestRow(path=cells["path"], patient_id=cells["patient_id"], stain=cell("stain"),
                       diagnosis=cell("diagnosis"), blur_level=level, sharp_path=cell("sharp_path"),
                       split=split, extra=extra)


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """All rows of a manifest (a CSV file or a dataset folder holding manifest.csv)."""
    path = manifest_path(path)
    header, table = read_table(path)
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {', '.join(missing)} (the header is {', '.join(header)})")
    return [parse_row(cells, where=f"{path}:{cells['#line']}: ") for cells in table]


def format_manifest(rows: list[ManifestRow]) -> str:
    extras = []
    for row in rows:
        extras.extend(k for k in row.extra if k not in extras)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*COLUMNS, *extras])
    for row in rows:
        values = [row.path, row.patient_id, row.stain, row.diagnosis, row.blur_level, row.sharp_path, row.split]
        writer.writerow(["" if v is None else str(v) for v in values] + [row.extra.get(k, "") for k in extras])
    return buffer.getvalue()


def write_manifest(path: str | os.PathLike, rows: list[ManifestRow]) -> Path:
    """Write rows atomically (standard columns first, then extras in first-seen order)."""
    return write_text_atomic(path, format_manifest(rows))


def resolve(manifest: str | os.PathLike, relative: str) -> Path:
    """The file a manifest cell points to (paths are relative to the manifest's folder)."""
    return Path(manifest).parent / relative
