"""Validate a dataset against the contract, reporting every problem with the file it is about.

Reads the manifest and every file it names; modifies nothing. Problems found:
- manifest: unreadable, no rows, missing required columns, unknown columns, malformed cells (blur_level,
  split, empty path or patient_id), blur levels outside the database's levels, duplicate rows, paths that are
  absolute or leave the dataset folder;
- patients: one patient in two splits (leakage), one patient with two diagnoses;
- files (images, sharp references, blur maps): missing, empty (0 bytes), unreadable, too many pixels;
- pixels (images and sharp references): smaller than `min_size`, constant, non-finite values, a sharp
  reference whose size differs from its image.
"""

from __future__ import annotations

import difflib
import json
import os
import posixpath
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ifrt.imageio import DEFAULT_MAX_PIXELS, ImageReadError, read_image
from ifrt.train.data.degrade import blur_level_count
from ifrt.train.data.manifest import (
    COLUMNS,
    EXTRA_COLUMNS,
    NO_ROWS,
    REQUIRED_COLUMNS,
    USER_PREFIX,
    ManifestError,
    manifest_path,
    parse_row,
    read_table,
)
from ifrt.train.data.split import patients_in_several_splits


@dataclass
class Problem:
    file: str       # the file the problem is about (the manifest, with ":line", or an image)
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass
class Report:
    manifest: str
    rows: int = 0
    files: int = 0
    blur_levels: list[int] = field(default_factory=list)  # the distinct levels the rows name
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _unknown_column(name: str) -> str:
    known = [*COLUMNS, *EXTRA_COLUMNS]
    close = difflib.get_close_matches(name.lower().replace(" ", "_"), known, n=1, cutoff=0.7)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown column '{name}' ({hint}user columns must start with '{USER_PREFIX}')"


def path_problem(value: str) -> str | None:
    """Why a manifest path cannot name a file of the dataset (absolute, or leaving its folder); None when it can."""
    pure = PurePosixPath(value.replace("\\", "/"))
    if pure.is_absolute() or (len(value) > 1 and value[1] == ":"):
        return f"path '{value}' is absolute; paths are relative to the manifest's folder"
    if posixpath.normpath(pure.as_posix()).split("/")[0] == "..":  # images/../images/x.tif stays inside
        return f"path '{value}' leaves the dataset folder; keep files under the manifest's folder"
    return None


def blur_level_range(root: Path) -> tuple[int, str]:
    """How many blur levels the database's labels may use, and where that number comes from: the degradation
    recorded in synth.json by `ifrt data synth`, else ifrt's default degradation (what training learns)."""
    record = root / "synth.json"
    try:
        sigmas = json.loads(record.read_text())["degrade_config"]["sigmas"]
        return len(sigmas), str(record)
    except (OSError, ValueError, KeyError, TypeError):
        return blur_level_count(), "ifrt's default degradation"


def _check_pixels(image: np.ndarray, min_size: int) -> list[str]:
    problems = []
    height, width = image.shape
    if height < min_size or width < min_size:
        problems.append(f"image is {width}x{height}, smaller than the minimum {min_size}x{min_size} "
                        "(drop it or use a larger crop)")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        bad = int((~np.isfinite(image)).sum())
        problems.append(f"{bad} non-finite pixel(s) (NaN or infinity); fix the export that wrote them")
        return problems
    if image.size and image.min() == image.max():
        problems.append(f"image is constant (every pixel is {image.flat[0]}); it holds no signal")
    return problems


def check_dataset(dataset: str | os.PathLike, *, min_size: int = 64,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> Report:
    """Check the dataset folder (or manifest CSV) `dataset`; see the module docstring for what is checked."""
    manifest = manifest_path(dataset)
    root = manifest.parent
    report = Report(manifest=str(manifest))
    add = report.problems.append
    bad_rows: list[tuple[str, str]] = []
    try:
        header, table = read_table(manifest, bad_rows)
    except ManifestError as exc:
        add(Problem(str(manifest), str(exc).removeprefix(f"{manifest}: ")))  # rows are in bad_rows, by line
        return report
    report.problems += [Problem(where, message) for where, message in bad_rows]
    report.rows = len(table) + len(bad_rows)
    if not table and not bad_rows:
        add(Problem(str(manifest), NO_ROWS))

    for name in REQUIRED_COLUMNS:
        if name not in header:
            add(Problem(str(manifest), f"missing required column '{name}'"))
    for name in sorted({n for n in header if header.count(n) > 1}):
        add(Problem(str(manifest), f"column '{name}' appears {header.count(name)} times"))
    for name in header:
        if name not in COLUMNS and name not in EXTRA_COLUMNS and not name.startswith(USER_PREFIX):
            add(Problem(str(manifest), _unknown_column(name)))
    if any(name not in header for name in REQUIRED_COLUMNS):
        return report

    parsed = []                               # the rows that parse, for the checks across patients
    diagnoses_of: dict[str, set[str]] = defaultdict(set)
    seen_paths: dict[str, str] = {}
    images: dict[str, tuple[str, str]] = {}   # relative path -> (kind, where it was named)
    level_count, level_source = blur_level_range(root)
    levels_seen: set[int] = set()
    pairs = []                                # (image, sharp reference) relative paths
    for cells in table:
        where = f"{manifest}:{cells['#line']}"
        try:
            row = parse_row(cells)
        except ManifestError as exc:
            add(Problem(where, str(exc)))
            continue
        if row.path in seen_paths:
            add(Problem(where, f"path '{row.path}' is listed again (first at line {seen_paths[row.path]})"))
        seen_paths.setdefault(row.path, cells["#line"])
        if row.blur_level is not None:
            levels_seen.add(row.blur_level)
        if row.blur_level is not None and row.blur_level >= level_count:
            add(Problem(where, f"blur_level {row.blur_level} is outside the levels 0..{level_count - 1} "
                               f"({level_source})"))
        parsed.append(row)
        if row.diagnosis:
            diagnoses_of[row.patient_id].add(row.diagnosis)
        named = [("image", row.path), ("sharp reference", row.sharp_path), ("blur map", row.extra.get("blur_map"))]
        for kind, value in named:
            if not value:
                continue
            problem = path_problem(value)
            if problem:
                add(Problem(where, problem))
            else:
                images.setdefault(value, (kind, where))
        if row.sharp_path and row.sharp_path != row.path and not path_problem(row.sharp_path):
            pairs.append((row.path, row.sharp_path))

    report.blur_levels = sorted(levels_seen)
    for patient, splits in patients_in_several_splits(parsed).items():
        add(Problem(str(manifest), f"patient {patient} is in splits {', '.join(splits)}: one patient "
                                   "must stay in one split (rerun `ifrt data split`)"))
    for patient, labels in sorted(diagnoses_of.items()):
        if len(labels) > 1:
            add(Problem(str(manifest), f"patient {patient} has diagnoses {', '.join(sorted(labels))}; "
                                       "a patient has one diagnosis"))

    shapes = {}
    for relative, (kind, where) in images.items():
        file = root / relative
        report.files += 1
        if not file.exists():
            windows = " (its separators are backslashes: write the path with /)" if "\\" in relative else ""
            add(Problem(str(file), f"{kind} is missing (named at {where}){windows}"))
            continue
        try:
            pixels = read_image(file, max_pixels=max_pixels)
        except ImageReadError as exc:
            add(Problem(str(file), exc.problem))
            continue
        shapes[relative] = pixels.shape
        if kind != "blur map":
            for message in _check_pixels(pixels, min_size):
                add(Problem(str(file), message))
    for image, sharp in pairs:
        if image in shapes and sharp in shapes and shapes[image] != shapes[sharp]:
            (h, w), (sh, sw) = shapes[image], shapes[sharp]
            add(Problem(str(root / sharp), f"sharp reference is {sw}x{sh} but its image {image} is {w}x{h}"))
    return report
