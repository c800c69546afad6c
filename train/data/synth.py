"""Synthetic IFVB-like database: patients with a stain panel of glomerulus images, degraded and labelled.

Layout written under `out_dir`:
    manifest.csv                          one row per observed image (see manifest.py)
    images/<patient>/<name>.tif           observed image: blurred, photobleached, camera noise, quantized
    sharp/<patient>/<name>.tif            its in-focus reference: the same scene, noise-free, quantized
    blur_maps/<patient>/<name>.tif        float32 per-32x32-tile blur severity in level units
    synth.json                            the generator's parameters; "complete" once the manifest is written
A folder that already holds a database is refused unless `replace` is given; then these files and folders
are deleted first, so no image of the old database is left behind without a manifest row. A synth that
stopped part-way (a full disk, Ctrl-C) is finished by the same call again, with the same parameters: the
patients whose images are all written (each records its manifest rows in .synth-patients/ after its images)
are kept, the others written again.
Every random draw comes from seeds derived from (seed, patient, image), so the bytes do not depend on
the number of worker processes or the order they finish in. Same seed, same bytes holds for one platform
and set of library versions; OpenCV's vectorised filters may round differently on another CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ifrt.imageio import write_image_atomic, write_json_atomic, write_text_atomic
from ifrt.runlock import folder_lock
from ifrt.train.data import SYNTH_MAX_SIZE, SYNTH_MIN_SIZE, noise
from ifrt.train.data.anatomy import build_anatomy
from ifrt.train.data.degrade import DegradeConfig, blur_level_count, degrade
from ifrt.train.data.manifest import DATA_LOCK, MANIFEST_NAME, ManifestRow, write_manifest
from ifrt.train.data.pathology import (
    DEFAULT_CLASSES,
    DEFAULT_STAINS,
    Patient,
    check_classes,
    check_stains,
    sample_patient,
)
from ifrt.train.data.split import DEFAULT_FRACTIONS, assign_splits, largest_remainder
from ifrt.train.data.stain import deposits, expose
from ifrt.train.workers import ignore_ctrl_c

_PATIENT_STREAM, _IMAGE_STREAM = 0, 1
# What a synthetic database consists of under its folder (see the module docstring).
# Where a synth records each finished patient's manifest rows until the manifest is written.
PATIENTS_DONE = ".synth-patients"
DATABASE_FOLDERS = ("images", "sharp", "blur_maps", PATIENTS_DONE)
DATABASE_FILES = (MANIFEST_NAME, "synth.json")


def render_image(rng: np.random.Generator, patient: Patient, stain: str, size: int = 512) -> np.ndarray:
    """One glomerulus of `patient` under `stain`: float32 size x size in [0, 1], in focus, noise-free."""
    anatomy = build_anatomy(rng, size, sclerosis_p=patient.sclerosis_p, nodular=patient.nodular)
    return expose(rng, anatomy, deposits(rng, anatomy, patient.findings[stain]))


def render_glomerulus(rng: np.random.Generator, diagnosis: str, stain: str, size: int = 512) -> np.ndarray:
    """A sharp image of a new patient's glomerulus (in-memory generation, e.g. for training)."""
    return render_image(rng, sample_patient(rng, diagnosis, (stain,)), stain, size)


def patient_rng(seed: int, patient: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _PATIENT_STREAM, patient]))


def image_rngs(seed: int, patient: int, image: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(scene, degradation) generators of one image; independent, so a scene does not depend on its blur."""
    scene, camera = np.random.SeedSequence([seed, _IMAGE_STREAM, patient, image]).spawn(2)
    return np.random.default_rng(scene), np.random.default_rng(camera)


def patient_diagnoses(patients: int, classes, proportions, seed: int) -> list[str]:
    """Diagnosis of each patient: class counts by proportion (largest remainder), order shuffled by seed."""
    proportions = proportions or [1.0] * len(classes)
    if len(proportions) != len(classes) or min(proportions) < 0 or sum(proportions) <= 0:
        raise ValueError(f"proportions {list(proportions)} must be one non-negative number per class "
                         f"({', '.join(classes)})")
    labels = [c for c, n in zip(classes, largest_remainder(patients, tuple(proportions)), strict=True) for _ in range(n)]
    order = np.random.default_rng(np.random.SeedSequence([seed, 2])).permutation(len(labels))
    return [labels[i] for i in order]


@dataclasses.dataclass(frozen=True)
class _Job:
    out_dir: str
    seed: int
    patient: int
    diagnosis: str
    images_per_patient: int
    size: int
    stains: tuple[str, ...]
    blur_levels: tuple[int, ...]
    degrade: bool
    cfg: DegradeConfig


def _patient_id(index: int) -> str:
    return f"P{index:05d}"


def _make_patient(job: _Job) -> list[ManifestRow]:
    out = Path(job.out_dir)
    pid = _patient_id(job.patient)
    patient = sample_patient(patient_rng(job.seed, job.patient), job.diagnosis, job.stains)
    rows = []
    for k in range(job.images_per_patient):
        stain = job.stains[k % len(job.stains)]
        scene_rng, camera_rng = image_rngs(job.seed, job.patient, k)
        sharp = render_image(scene_rng, patient, stain, job.size)
        name = f"{pid}_{k:02d}_{stain}.tif"
        sharp_rel = f"sharp/{pid}/{name}"
        write_image_atomic(out / sharp_rel, noise.signal_to_adu(sharp, offset=job.cfg.offset,
                                                                 bit_depth=job.cfg.bit_depth))
        extra = {"grade": f"{patient.findings[stain].grade:.2f}"}
        if job.degrade:
            level = int(job.blur_levels[camera_rng.integers(len(job.blur_levels))])
            observed = degrade(sharp, camera_rng, job.cfg, level=level)
            path = f"images/{pid}/{name}"
            map_rel = f"blur_maps/{pid}/{name}"
            write_image_atomic(out / path, observed.adu)
            write_image_atomic(out / map_rel, observed.blur_map)
            extra |= {"blur_kind": observed.kind, "severity": f"{observed.severity:.4f}", "blur_map": map_rel}
        else:
            path, level = sharp_rel, 0
        rows.append(ManifestRow(path=path, patient_id=pid, stain=stain, diagnosis=job.diagnosis, blur_level=level,
                                sharp_path=sharp_rel, extra=extra))
    # Last: a patient whose rows are recorded has all its images written (each atomically). Keys in their order,
    # which is the order of the manifest's columns.
    write_text_atomic(out / PATIENTS_DONE / f"{pid}.json", json.dumps([dataclasses.asdict(row) for row in rows]))
    return rows


def _patient_index(rows: list[ManifestRow]) -> int:
    return int(rows[0].patient_id[1:])


def _patients_done(out: Path) -> dict[str, list[ManifestRow]]:
    """The manifest rows of the patients an interrupted synth finished, by patient id."""
    done = {}
    for record in sorted((out / PATIENTS_DONE).glob("P*.json")):
        done[record.stem] = [ManifestRow(**row) for row in json.loads(record.read_text())]
    return done


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # parallelism comes from the processes
    ignore_ctrl_c()


def _clear_database(out: Path, replace: bool, record: dict) -> bool:
    """Refuse, or with `replace` delete, a database already in `out`: writing over one would leave the old
    images that the new manifest does not name. True when `out` holds an interrupted synth of `record`'s
    parameters, which is finished instead."""
    state = _check_replaceable(out, replace, record)
    if state == "replace":
        # synth.json is written first, so an interrupted synth is replaced like a finished one.
        for name in DATABASE_FOLDERS:
            if (out / name).is_dir():
                shutil.rmtree(out / name)
        for name in DATABASE_FILES:
            (out / name).unlink(missing_ok=True)
    return state == "resume"


def _interrupted_record(out: Path) -> dict | None:
    """The parameters in the synth.json of an interrupted synth in `out` (no manifest yet), else None."""
    if not (out / "synth.json").is_file() or (out / MANIFEST_NAME).exists():
        return None
    try:
        record = json.loads((out / "synth.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.pop("complete", None) is False else None


def _check_replaceable(out: Path, replace: bool, record: dict) -> str | None:
    """What to do with `out` before a synth of `record`'s parameters: None (nothing there), "replace" (a
    database that `replace` allows to delete) or "resume" (an interrupted synth of the same parameters, without
    `replace`); raises FileExistsError when it holds one that may not be replaced (no `replace`, or not written
    by `ifrt data synth`)."""
    found = [name for name in (*DATABASE_FILES, *DATABASE_FOLDERS) if (out / name).exists()]
    if not found:
        return None
    if not replace:
        interrupted = _interrupted_record(out)
        if interrupted == json.loads(json.dumps(record)):
            return "resume"
        if interrupted is not None:
            raise FileExistsError(f"{out}: holds an interrupted ifrt data synth with other settings (no "
                                  f"{MANIFEST_NAME}); finish it with the settings in its synth.json, replace it "
                                  "(ifrt data synth --force) or choose an empty folder")
        raise FileExistsError(f"{out}: already holds a database ({', '.join(found)}); choose an empty folder "
                              "or replace it (ifrt data synth --force)")
    if not (out / "synth.json").is_file():  # someone's own images: never deleted, not even with --force
        raise FileExistsError(f"{out}: holds {', '.join(found)} but no synth.json, so this data was not written "
                              "by ifrt data synth and is not replaced; choose another folder")
    return "replace"


def synthesize_database(out_dir: str | os.PathLike, *, patients: int = 100, images_per_patient: int | None = None,
                        size: int = 512, bit_depth: int = 16, seed: int = 0, classes=DEFAULT_CLASSES,
                        proportions=None, stains=DEFAULT_STAINS, blur_levels=None, degrade: bool = True,
                        degrade_config: DegradeConfig | None = None, split_fractions=DEFAULT_FRACTIONS,
                        workers: int | None = None, replace: bool = False,
                        progress: Callable[[int, int], None] | None = None) -> Path:
    """Write a synthetic database (see the module docstring) and return its manifest path.

    images_per_patient defaults to one image per stain; blur_levels (default: every level of the
    degradation config) is the set each observed image's level is drawn from, uniformly. `replace` deletes a
    database already in `out_dir` first; without it such a folder is refused (FileExistsError), unless it holds
    a synth with these parameters that stopped part-way, which is finished: its finished patients are kept. A
    write the file system refuses raises OSError naming the file and saying so.
    `progress(patients_written, patients)` is called as patients are written.
    """
    classes, stains = tuple(classes), tuple(stains)
    check_classes(classes)
    check_stains(stains)
    if patients < 1:
        raise ValueError(f"patients must be at least 1, got {patients}")
    if not SYNTH_MIN_SIZE <= size <= SYNTH_MAX_SIZE:
        raise ValueError(f"size {size} is out of range ({SYNTH_MIN_SIZE} to {SYNTH_MAX_SIZE} pixels)")
    if images_per_patient is not None and images_per_patient < 1:
        raise ValueError(f"images per patient must be at least 1, got {images_per_patient}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    cfg = dataclasses.replace(degrade_config or DegradeConfig(), bit_depth=bit_depth)
    levels = tuple(range(blur_level_count(cfg))) if blur_levels is None else tuple(int(v) for v in blur_levels)
    if not levels or not all(0 <= v < blur_level_count(cfg) for v in levels):
        raise ValueError(f"blur levels {list(levels)} must lie in 0..{blur_level_count(cfg) - 1}")
    images_per_patient = images_per_patient or len(stains)
    record = {"patients": patients, "images_per_patient": images_per_patient, "size": size, "bit_depth": bit_depth,
              "seed": seed, "classes": list(classes), "proportions": list(proportions) if proportions else None,
              "stains": list(stains), "blur_levels": list(levels), "degrade": degrade,
              "degrade_config": dataclasses.asdict(cfg), "split_fractions": list(split_fractions)}
    out = Path(out_dir)
    _check_replaceable(out, replace, record)  # a folder refused is left as it was, without a lock file
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, DATA_LOCK, "ifrt data synth", "choose another folder"):
        try:
            return _synthesize(out, record, patients, images_per_patient, size, seed, classes, proportions, stains,
                               levels, degrade, cfg, split_fractions, workers, replace, progress)
        except OSError as exc:
            if exc.filename is None or not exc.strerror or isinstance(exc, FileExistsError):
                raise
            raise OSError(f"{exc.filename}: {exc.strerror}; rerun the same command to finish (the patients "
                          "already written are kept)") from exc


def _synthesize(out: Path, record: dict, patients: int, images_per_patient: int, size: int, seed: int, classes,
                proportions, stains, levels, degrade: bool, cfg: DegradeConfig, split_fractions, workers: int | None,
                replace: bool, progress: Callable[[int, int], None] | None) -> Path:
    """`synthesize_database` once it holds the folder: clear it (or find the patients an interrupted synth of
    these parameters finished), then write the database."""
    done = _patients_done(out) if _clear_database(out, replace, record) else {}
    if not done:
        # First, marked unfinished: a folder left by an interrupted run is known as this command's to finish.
        write_json_atomic(out / "synth.json", {**record, "complete": False})

    diagnoses = patient_diagnoses(patients, classes, proportions, seed)
    jobs = [_Job(str(out), seed, p, diagnoses[p], images_per_patient, size, stains, levels, degrade, cfg)
            for p in range(patients) if _patient_id(p) not in done]
    workers = max(1, min(workers or os.cpu_count() or 1, max(len(jobs), 1)))
    per_patient = list(done.values())
    if progress:
        progress(len(per_patient), patients)
    # Small chunks, and a pool that Ctrl-C terminates (leaving the context ends the workers at once): an
    # interrupt stops the run in about a second instead of after every started chunk.
    with contextlib.ExitStack() as stack:
        if workers == 1:
            written = map(_make_patient, jobs)
        else:
            pool = stack.enter_context(get_context("spawn").Pool(workers, initializer=_init_worker))
            written = pool.imap(_make_patient, jobs, chunksize=max(1, min(4, len(jobs) // (8 * workers))))
        for patient_rows in written:
            per_patient.append(patient_rows)
            if progress:
                progress(len(per_patient), patients)

    splits = assign_splits({_patient_id(p): diagnoses[p] for p in range(patients)}, split_fractions, seed)
    rows = [row for patient_rows in sorted(per_patient, key=_patient_index) for row in patient_rows]
    for row in rows:
        row.split = splits[row.patient_id]
    manifest = write_manifest(out / MANIFEST_NAME, rows)
    write_json_atomic(out / "synth.json", {**record, "complete": True})
    shutil.rmtree(out / PATIENTS_DONE, ignore_errors=True)
    return manifest
