"""Batch inference over files (`ifrt infer`): one JSON line per image in `results.jsonl`, a CSV summary,
optional deblurred TIFFs (input dtype, metadata kept) and quality-map overlays, an optional patient
report. Robust by construction:

- a bad file is recorded with its reason and the run goes on; the exit code says whether any failed;
- every output file is written atomically; `results.jsonl` grows by whole lines, so an interrupt
  (Ctrl-C, kill) leaves every finished image recorded;
- a rerun skips images already recorded as done (unless `overwrite`), redoes those whose file changed since
  (size or modification time), and retries failed ones; it first cuts a torn last line and removes temporary
  files that a killed run left behind; `results.jsonl` keeps one record per image, the latest;
- one run at a time per folder: a second `ifrt infer` on a folder in use is refused (a lock file);
- `summary.csv` is brought up to date every half minute during a run, and at its end;
- an image is known by its resolved path, so naming it twice (relative and absolute) does not redo it;
- `run.json` records what made the results (model, backend, precision, the options that change
  outputs); a rerun with other settings is refused rather than mixing two models' results in one folder;
- each input gets its own output names, even when two inputs share a folder and file name;
- a write error (a full disk) stops the run with the error: the finished images stay recorded;
- memory does not grow with the batch: a run keeps its records without their quality and certainty maps,
  and reads and compacts `results.jsonl` a line at a time.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ifrt import runlock
from ifrt.filestate import file_state
from ifrt.imageio import (
    atomic_path,
    open_tiff,
    write_bytes_atomic,
    write_image_atomic,
    write_json_atomic,
    write_text_atomic,
)
from ifrt.result import Result

RESULTS = "results.jsonl"
SUMMARY = "summary.csv"
PATIENTS = "patients.json"
RUN = "run.json"
LOCK = ".ifrt-infer.lock"
OWN_FILES = (RESULTS, SUMMARY, PATIENTS, RUN)  # in the folder's top level; deblurred/ and overlays/ are all ours
SUMMARY_SECONDS = 30.0  # how often a run brings summary.csv up to date before its end
MAP_KEYS = ("quality_map", "certainty")  # most of a record's size; a run keeps its records without them
REPAIR_BLOCK = 1 << 16  # bytes read at a time looking back for the end of the last whole line


class InferSetupError(ValueError):
    """The run cannot start: a bad patient source, or an output folder holding results made with another
    model or other options. The message names the problem and the fix."""


@dataclass
class InferReport:
    done: int = 0
    skipped: int = 0
    changed: int = 0  # of `done`, images redone because their file changed since their recorded result
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    interrupted: bool = False
    patients: int = 0  # patients written to patients.json
    analysed: int = 0  # images with a result in the folder, this run's and earlier runs'
    unmatched: int = 0  # of those, images the patient source gave no patient (left out of patients.json)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.failed else 0


def read_records(out_dir: Path, *, maps: bool = True) -> list[dict]:
    """Records of earlier runs, read a line at a time; a torn last line (interrupted write) is ignored.
    `maps=False` leaves out the quality and certainty maps: they are most of a record (a 4096 x 4096 frame's
    are 32,768 numbers), and a run keeps its records for the summary and patients, which do not need them."""
    return [record if maps else without_maps(record) for _, _, record in _result_lines(out_dir / RESULTS)]


def without_maps(record: dict) -> dict:
    return {key: value for key, value in record.items() if key not in MAP_KEYS}


def _result_lines(path: Path) -> Iterator[tuple[int, int, dict]]:
    """(offset, length, record) of each whole JSON line of results.jsonl, one line in memory at a time."""
    if not path.is_file():
        return
    with open(path, "rb") as f:
        offset = 0
        for line in f:
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                record = None
            if isinstance(record, dict):
                yield offset, len(line), record
            offset += len(line)


def repair_results(path: Path) -> None:
    """Cut a torn last line (a write interrupted by a full disk or a kill) so that the next record
    starts on a line of its own instead of being glued to the fragment."""
    if not path.is_file():
        return
    with open(path, "rb+") as f:
        end = f.seek(0, os.SEEK_END)
        f.seek(max(end - 1, 0))
        if f.read(1) in (b"", b"\n"):
            return
        cut = end  # read back in blocks to the last newline: a line can be megabytes, the file gigabytes
        while cut > 0:
            start = max(cut - REPAIR_BLOCK, 0)
            f.seek(start)
            newline = f.read(cut - start).rfind(b"\n")
            if newline >= 0:
                cut = start + newline + 1
                break
            cut = start
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())


def remove_stale_temporaries(out_dir: Path) -> None:
    """Temporary files that a killed run left behind (atomic writes name them `.NAME.*.tmp`): those of this
    module's own files only, so that someone's `.x.tmp` beside them is left alone."""
    for name in OWN_FILES:
        for tmp in out_dir.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
    for folder in (out_dir / "deblurred", out_dir / "overlays"):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


def folder_lock(out_dir: Path):
    """Hold `out_dir` for one run: a second run on it (another process) is refused with InferSetupError, naming
    the holder's pid, instead of the two redoing each other's images, removing each other's temporary files and
    mixing their options (`ifrt.runlock`)."""
    return runlock.folder_lock(out_dir, LOCK, "ifrt infer", "write to another -o folder", error=InferSetupError)


def recorded_state(path: Path) -> dict | None:
    """The input file's state as its result records it (`"file": {"size": ..., "mtime_ns": ...}`): a rerun
    redoes an image whose file has changed since (re-acquired under the same name)."""
    state = file_state(path)
    return state._asdict() if state else None


def compact_results(path: Path, records: list[dict], latest: list[dict]) -> None:
    """Rewrite `results.jsonl` with one record per image when reruns have added later ones (a retried failure
    is recorded again each run); the summary reads the same either way. `records` and `latest` (from
    `read_records` and `latest_records`, maps or not) say whether there is anything to drop; the lines kept
    are copied from the file as they are, each image's latest in the order the images first appear."""
    if len(latest) >= len(records):
        return
    kept: dict[tuple[str, int], tuple[int, int]] = {}
    for offset, length, record in _result_lines(path):
        kept[record_identity(record)] = (offset, length)
    with atomic_path(path) as tmp:
        with open(path, "rb") as source, open(tmp, "wb") as compacted:
            for offset, length in kept.values():
                source.seek(offset)
                line = source.read(length)
                compacted.write(line if line.endswith(b"\n") else line + b"\n")
            compacted.flush()
            os.fsync(compacted.fileno())


def output_stem(source: Path) -> str:
    """A readable, file-name-safe stem: the file's folder and stem, each run of characters other than
    letters, digits, `.`, `_` and `-` (spaces included) replaced by `_`, so that the names need no quoting
    in a shell. Not unique on its own (see `output_stems`)."""
    folder, stem = (re.sub(r"[^A-Za-z0-9._-]+", "_", part) for part in (source.parent.name, source.stem))
    return f"{folder}__{stem}" if folder else stem


def output_stems(items: list[tuple[Path, int | None]], taken: dict[str, tuple[str, int]]) -> dict[tuple[str, int], str]:
    """{identity: stem} for the deblurred and overlay files of `items`. A stem is the readable
    `output_stem` unless another input of the run, or an earlier result in the folder (`taken`: lower-case
    stem -> identity), would share it, case-insensitively (x.TIF and x.tiff, a/x/img and b/x/img, good.tif
    and good.png); then each such input gets a short hash of its resolved path, the same on every rerun."""
    readable = {}
    for source, page in items:
        readable[identity_of(source, page)] = output_stem(source) + (f"_p{page}" if page is not None else "")
    claims: dict[str, set[tuple[str, int]]] = {}
    for identity, stem in readable.items():
        claims.setdefault(stem.casefold(), set()).add(identity)
    for stem, identity in taken.items():
        claims.setdefault(stem, set()).add(identity)
    stems = {}
    for identity, stem in readable.items():
        if len(claims[stem.casefold()]) > 1:
            digest = hashlib.sha256(f"{identity[0]}#page={identity[1]}".encode()).hexdigest()[:8]
            stem = f"{stem}_{digest}"
        stems[identity] = stem
    return stems


def identity_of(source: Path, page: int | None) -> tuple[str, int]:
    """What makes two work items the same image: the resolved file and the page."""
    return str(source.resolve()), page or 0


def record_identity(record: dict) -> tuple[str, int]:
    """`identity_of` as recorded (records written before paths were resolved fall back to the source)."""
    return record.get("path") or record["source"], record.get("page") or 0


def write_deblurred_tiff(path: Path, source: Path, image: np.ndarray) -> None:
    """Deblurred image in the input's dtype; a TIFF input's resolution is kept, and its description when
    it is still true: a shaped (tifffile), ImageJ or OME description of a page of another shape (three
    samples per pixel, where the output has one) would make readers expect data the file does not hold."""
    import tifffile

    kwargs: dict = {"photometric": "minisblack"}
    if source.suffix.lower() in (".tif", ".tiff"):
        try:
            with open_tiff(source) as tif:
                page = tif.pages[0]
                tags = page.tags
                describes_shape = page.is_shaped or page.is_imagej or page.is_ome
                same_shape = tuple(page.shape) == image.shape
                if "ImageDescription" in tags and len(tif.pages) == 1 and (same_shape or not describes_shape):
                    kwargs["description"] = tags["ImageDescription"].value
                    kwargs["metadata"] = None
                if "XResolution" in tags and "YResolution" in tags:
                    kwargs["resolution"] = (tags["XResolution"].value, tags["YResolution"].value)
                    if "ResolutionUnit" in tags:
                        kwargs["resolutionunit"] = tags["ResolutionUnit"].value
        except (tifffile.TiffFileError, OSError, ValueError):
            pass  # metadata is a courtesy; the pixels are what matter
    # Encoded in memory, then written as every output is: synced, and a full disk is an ENOSPC. tifffile writing
    # to the file itself loses the errno ("65536 requested and 59264 written") and does not sync.
    encoded = io.BytesIO()
    tifffile.imwrite(encoded, image, **kwargs)
    write_bytes_atomic(path, encoded.getbuffer())


def quality_overlay(image: np.ndarray, quality_map: np.ndarray) -> np.ndarray:
    """8-bit BGR picture: the image (1..99.8 percentile stretch) tinted by the quality map, red where
    blurred and green where in focus."""
    from ifrt.normalize import normalize_percentile
    from ifrt.postprocess import upsample_quality_map

    gray = image if image.ndim == 2 else image[..., 0]
    base = np.clip(normalize_percentile(gray) * 255, 0, 255).astype(np.uint8)
    h, w = base.shape
    frame_h, frame_w = quality_map.shape[0] * 32, quality_map.shape[1] * 32
    quality = upsample_quality_map(np.ascontiguousarray(quality_map, np.float32), (frame_h, frame_w))[:h, :w]
    tint = np.zeros((h, w, 3), np.float32)
    tint[..., 2] = (1 - np.clip(quality, 0, 1)) * 255  # red: out of focus
    tint[..., 1] = np.clip(quality, 0, 1) * 255  # green: in focus
    picture = 0.65 * cv2.cvtColor(base, cv2.COLOR_GRAY2BGR).astype(np.float32) + 0.35 * tint
    return np.clip(picture, 0, 255).astype(np.uint8)


def patient_of(source: Path, pattern: re.Pattern | None, manifest: dict[str, str] | None) -> str | None:
    if manifest is not None:
        return manifest.get(str(source.resolve()))
    if pattern is not None:
        match = pattern.search(str(source))
        if match:
            return match.group("patient") if "patient" in match.groupdict() else match.group(1 if match.groups() else 0)
    return None


def manifest_patients(path: Path) -> dict[str, str]:
    """{absolute image path: patient_id} from a dataset manifest."""
    from ifrt.train.data.manifest import read_manifest

    return {str((path.parent / row.path).resolve()): row.patient_id for row in read_manifest(path)}


def patient_sources(pattern: str | None, manifest: Path | None) -> tuple[re.Pattern | None, dict[str, str] | None]:
    """The compiled patient pattern and the manifest's patients, checked before anything is written."""
    from ifrt.train.data.manifest import ManifestError

    try:
        compiled = re.compile(pattern) if pattern else None
    except re.error as exc:
        raise InferSetupError(f"patient pattern '{pattern}' is not a valid regular expression ({exc})") from None
    try:
        patients = manifest_patients(manifest) if manifest else None
    except ManifestError as exc:
        raise InferSetupError(f"patient manifest {exc}") from None
    except OSError as exc:
        raise InferSetupError(f"patient manifest {manifest}: cannot read it ({exc.strerror or exc})") from None
    return compiled, patients


def used_graphs(session) -> list[str]:
    """The package's graphs that a run's results come from: `predict` runs the full graph only, in the session's
    precision (the trt backend builds from the fp32 graph when the package has no graph of that precision);
    none for the torch backend, which runs the weights."""
    from ifrt.backends import trt_onnx_precision

    package, precision = session.package, session.precision
    if session.backend_name == "torch":
        return []
    if session.backend_name == "trt":
        precision = trt_onnx_precision(package, "full", precision)
    return ["full" if precision == "fp32" else f"full.{precision}"]


def _graph_sha256(package, name: str) -> str | None:
    """A graph's sha256 as its sidecar records it (verified against the file when the package was opened)."""
    graph = package.graphs[name]
    return json.loads(graph.with_name(graph.name + ".json").read_text()).get("sha256")


def model_identity(session) -> dict:
    """The model folder and one sha256 over what the run's results depend on: the graphs it runs (`used_graphs`,
    by their sidecars' sha256), the model's metadata (class names, prior, normalization) and training record
    (model.json without its card), and for the torch backend the weights. A graph of another precision added to
    the folder later (an int8 export) leaves it as it was."""
    from ifrt.model_package import ModelPackageError, config_hash, read_model_record, sha256_file

    package = session.package
    graphs = used_graphs(session)
    digest = hashlib.sha256()
    for name in graphs:
        digest.update(f"{name}={_graph_sha256(package, name)}\n".encode())
    digest.update(f"metadata={json.dumps(package.metadata, sort_keys=True)}\n".encode())
    if (package.root / "model.json").is_file():
        try:
            record = config_hash(read_model_record(package.root))
        except ModelPackageError:  # not a training record the runtime reads: its bytes, then
            record = sha256_file(package.root / "model.json")
        digest.update(f"model.json={record}\n".encode())
    if session.backend_name == "torch" and package.weights is not None:
        digest.update(f"weights={sha256_file(package.weights)}\n".encode())
    return {"folder": str(package.root.resolve()), "sha256": digest.hexdigest(), "graphs": graphs}


def matches_earlier_identity(session, recorded: str | None) -> bool:
    """Whether `recorded`, a run.json model sha256 written before `model_identity` covered only the graphs a run
    uses (it hashed every graph then in the folder, model.json's bytes and for torch the weights), still holds for
    the graphs this run uses. The folder's graph set may have grown or shrunk since, so every subset of today's
    graphs that holds the used ones is tried (at most six graphs): a match means those graphs, the used ones
    among them, are byte for byte those of the earlier run."""
    from itertools import combinations

    from ifrt.model_package import sha256_file

    package = session.package
    used = set(used_graphs(session))
    others = sorted(set(package.graphs) - used)
    tail = ""
    if (package.root / "model.json").is_file():
        tail += f"model.json={sha256_file(package.root / 'model.json')}\n"
    if session.backend_name == "torch" and package.weights is not None:
        tail += f"weights={sha256_file(package.weights)}\n"
    shas = {name: _graph_sha256(package, name) for name in package.graphs}
    for count in range(len(others) + 1):
        for extra in combinations(others, count):
            digest = hashlib.sha256()
            for name in sorted(used | set(extra)):
                digest.update(f"{name}={shas[name]}\n".encode())
            digest.update(tail.encode())
            if digest.hexdigest() == recorded:
                return True
    return False


def run_settings(session, *, deblur: bool, overlay: bool, maps: bool, pages: str, patient_pattern: str | None,
                 patient_manifest: Path | None) -> dict:
    """What made a folder's results: the model, backend and precision, and every option that changes an
    image's record or output files."""
    return {"model": model_identity(session), "backend": session.backend_name,
            "precision": session.precision,
            "options": {"deblur": deblur, "overlay": overlay, "maps": maps, "pages": pages, "tile": session.tile,
                        "overlap": session.overlap, "max_untiled": session.max_untiled,
                        "quality_threshold": session.quality_threshold,
                        "patient_from": str(patient_manifest.resolve()) if patient_manifest else patient_pattern}}


def _settings_differences(earlier: dict, now: dict) -> list[str]:
    """'name: earlier -> now' for each setting that differs (the model by its sha256, not its folder)."""
    flat_earlier = {"model": earlier.get("model", {}).get("sha256"), "backend": earlier.get("backend"),
                    "precision": earlier.get("precision"), **earlier.get("options", {})}
    flat_now = {"model": now["model"]["sha256"], "backend": now["backend"], "precision": now["precision"],
                **now["options"]}
    differences = []
    for name, value in flat_now.items():
        if flat_earlier.get(name) != value:
            if name == "model":
                before = f"{earlier.get('model', {}).get('folder')} ({str(flat_earlier.get(name))[:12]})"
                value = f"{now['model']['folder']} ({value[:12]})"
            else:
                before = flat_earlier.get(name)
            differences.append(f"{name}: {before} -> {value}")
    return differences


def check_settings(session, out_dir: Path, records: list[dict], settings: dict) -> None:
    """Refuse to add results to a folder whose finished results were made with other settings: its
    summary and patient report would mix two models or two sets of options."""
    if not any(r.get("status") == "ok" for r in records):
        return
    fix = "pass --overwrite to redo them, or write to another -o folder"
    try:
        earlier = json.loads((out_dir / RUN).read_text())
    except (OSError, json.JSONDecodeError):
        raise InferSetupError(f"{out_dir} holds results that do not record the model and options that made "
                              f"them; {fix}") from None
    model = earlier.get("model") if isinstance(earlier.get("model"), dict) else {}
    if "graphs" not in model and matches_earlier_identity(session, model.get("sha256")):
        earlier = {**earlier, "model": settings["model"]}  # written before the identity covered the used graphs only
    differences = _settings_differences(earlier, settings)
    if differences:
        raise InferSetupError(f"{out_dir} holds results made with other settings ({'; '.join(differences)}); "
                              f"{fix}")


def write_summary(out_dir: Path, records: list[dict]) -> None:
    buffer = io.StringIO()
    fields = ["source", "status", "patient_id", "diagnosis", "reliable", "quality", "blur_level", "error"]
    class_names = next((list(r["probabilities"]) for r in records if r.get("status") == "ok"), [])
    writer = csv.writer(buffer)
    writer.writerow(fields + [f"p_{c}" for c in class_names])
    for r in records:
        probs = r.get("probabilities", {})
        writer.writerow([r.get(f, "") for f in fields] + [probs.get(c, "") for c in class_names])
    write_text_atomic(out_dir / SUMMARY, buffer.getvalue())


def latest_records(records: list[dict]) -> list[dict]:
    """One record per image (its resolved path and page): the last one written (a retry replaces an
    earlier failure, and a rerun naming the image by another path does not add a second row)."""
    latest: dict[tuple[str, int], dict] = {}
    for r in records:
        latest[record_identity(r)] = r
    return list(latest.values())


def tiff_page_count(path: Path) -> int:
    """Pages of a TIFF (1 for anything else, or for a file that cannot be opened: its error is reported
    when the image is read)."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return 1
    import tifffile

    try:
        with open_tiff(path) as tif:
            return max(len(tif.pages), 1)
    except (tifffile.TiffFileError, OSError, ValueError):
        return 1


def expand_pages(sources: list[Path], pages: str) -> list[tuple[Path, int | None]]:
    """(path, page) work items: page None means the first page of a file analysed as one image;
    with pages="all" every page of a multi-page TIFF is its own item."""
    if pages not in ("first", "all"):
        raise ValueError(f"pages={pages!r}: expected 'first' or 'all'")
    items: list[tuple[Path, int | None]] = []
    for source in sources:
        count = tiff_page_count(source) if pages == "all" else 1
        items += [(source, None)] if count == 1 else [(source, page) for page in range(count)]
    return items


def item_key(source: Path, page: int | None) -> str:
    return str(source) if page is None else f"{source}#page={page}"


def run_infer(session, sources: list[Path], out_dir: Path, *, deblur: bool = False, overlay: bool = False,
              overwrite: bool = False, patient_pattern: str | None = None, patient_manifest: Path | None = None,
              maps: bool = True, pages: str = "first", missing: list[tuple[str, str]] = (),
              progress: Callable[[int, int, str], None] | None = None, folder_locked: bool = False) -> InferReport:
    """Run `session` over `sources` (with pages="all", every page of a multi-page TIFF), writing into
    `out_dir` as described in the module docstring. `missing` (source as given, reason) are inputs that
    named no file: each is recorded as failed. `progress(finished, to_do, source)` is called before each
    image to analyse (those already done are not counted) and once at the end. Raises InferSetupError
    before writing anything when the patient source is bad, another run holds `out_dir`, or `out_dir` holds
    results made with other settings (unless `overwrite`). `folder_locked`: the caller holds `folder_lock(out_dir)`
    already (`ifrt infer` takes it before loading the model, so that a busy folder is refused at once)."""
    pattern, manifest = patient_sources(patient_pattern, patient_manifest)
    settings = run_settings(session, deblur=deblur, overlay=overlay, maps=maps, pages=pages,
                            patient_pattern=patient_pattern, patient_manifest=patient_manifest)
    items = expand_pages(sources, pages)
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext() if folder_locked else folder_lock(out_dir):
        return _run_locked(session, items, out_dir, settings, pattern, manifest, deblur=deblur, overlay=overlay,
                           overwrite=overwrite, maps=maps, missing=missing, progress=progress)


def _run_locked(session, items: list[tuple[Path, int | None]], out_dir: Path, settings: dict, pattern, manifest, *,
                deblur: bool, overlay: bool, overwrite: bool, maps: bool, missing, progress) -> InferReport:
    from ifrt.patients import aggregate

    results_path = out_dir / RESULTS
    if overwrite:
        results_path.unlink(missing_ok=True)
    repair_results(results_path)
    earlier = read_records(out_dir, maps=False)
    previous = latest_records(earlier)
    check_settings(session, out_dir, previous, settings)
    remove_stale_temporaries(out_dir)
    compact_results(results_path, earlier, previous)
    write_json_atomic(out_dir / RUN, settings)
    done = {record_identity(r): r.get("file") for r in previous if r.get("status") == "ok"}
    taken = {Path(r[k]).stem.casefold(): record_identity(r)
             for r in previous for k in ("deblurred_path", "overlay_path") if r.get(k)}
    stems = output_stems(items, taken)
    report = InferReport()
    todo = []  # (source, page, identity, whether its file changed since its recorded result)
    for source, page in items:
        identity = identity_of(source, page)
        if identity not in done:
            todo.append((source, page, identity, False))
        elif done[identity] is not None and done[identity] != recorded_state(source):
            todo.append((source, page, identity, True))  # re-acquired under the same name since its result
        else:
            report.skipped += 1
    latest = {record_identity(r): r for r in previous}
    finished = 0
    summarized = time.monotonic()
    try:
        with open(results_path, "a", encoding="utf-8") as log:
            for text, reason in missing:
                record = {"source": text, "status": "failed", "error": f"{text}: {reason}", "patient_id": None,
                          "path": str(Path(text).absolute()), "page": 0}
                _append(log, record)
                latest[record_identity(record)] = record
                report.failed.append((text, f"{text}: {reason}"))
            for source, page, identity, changed in todo:
                key = item_key(source, page)
                if progress:
                    progress(finished, len(todo), key)
                state = recorded_state(source)  # before reading: a change while it is read shows on the next run
                record = _infer_one(session, source, page, out_dir, stems[identity], deblur=deblur, overlay=overlay,
                                    maps=maps, patient_id=patient_of(source, pattern, manifest))
                record["model"] = settings["model"]
                record["file"] = state
                _append(log, record)
                latest[identity] = without_maps(record)
                finished += 1
                if record["status"] == "ok":
                    report.done += 1
                    report.changed += changed
                else:
                    report.failed.append((key, record["error"]))
                if time.monotonic() - summarized > SUMMARY_SECONDS:
                    write_summary(out_dir, list(latest.values()))
                    summarized = time.monotonic()
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        written = read_records(out_dir, maps=False)
        records = latest_records(written)
        compact_results(results_path, written, records)
        write_summary(out_dir, records)
        analysed = [r for r in records if r.get("status") == "ok"]
        report.analysed = len(analysed)
        if pattern is not None or manifest is not None:
            report.unmatched = sum(not r.get("patient_id") for r in analysed)
        ok = [_as_result(r, session.class_prior) for r in analysed if r.get("patient_id")]
        entries = patient_entries(aggregate(ok) if ok else [], records)
        if entries:
            write_json_atomic(out_dir / PATIENTS, entries)
            report.patients = len(entries)
        else:  # no image has a patient any more: an earlier run's file would give diagnoses nothing backs
            (out_dir / PATIENTS).unlink(missing_ok=True)
    if progress:
        progress(finished, len(todo), "")
    return report


def patient_entries(patients: list, records: list[dict]) -> list[dict]:
    """The entries of patients.json, sorted by patient id: each aggregated patient (`PatientReport`), and each
    patient whose images all failed, as `no_diagnosis_entry`; a lab must see that patient was in the batch.
    A patient with images that failed gets `failed_images` (how many) and `failed_sources` (which): a panel of
    three with two unreadable must not read as a one-image patient. The diagnosis is the analysed images' alone."""
    failed: dict[str, list[str]] = {}
    for r in records:
        if r.get("status") != "ok" and r.get("patient_id"):
            failed.setdefault(r["patient_id"], []).append(r["source"])
    entries = {p.patient_id: p.to_dict() for p in patients}
    for patient_id in failed.keys() - entries.keys():
        entries[patient_id] = no_diagnosis_entry(patient_id)
    for patient_id, sources in failed.items():
        entries[patient_id].update(failed_images=len(sources), failed_sources=sources)
    return [entries[patient_id] for patient_id in sorted(entries)]


def no_diagnosis_entry(patient_id: str) -> dict:
    """A patient with no analysed image: the keys of `PatientReport.to_dict`, with no diagnosis, no
    probabilities and no quality rather than any guess (reliable is False, as 0 unreliable of 0 images gives)."""
    return {"patient_id": patient_id, "diagnosis": None, "reliable": False, "probabilities": None, "images": 0,
            "unreliable_images": 0, "mean_quality": None, "no_diagnosis": "every image failed"}


def _append(log, record: dict) -> None:
    """One whole line per record, on disk before the next image starts."""
    log.write(json.dumps(record) + "\n")
    log.flush()
    os.fsync(log.fileno())


def _as_result(record: dict, class_prior: list[float] | None) -> Result:
    names = list(record["probabilities"])
    return Result(source=record["source"], shape=tuple(record["shape"]), dtype=record["dtype"], class_names=names,
                  probabilities=np.array([record["probabilities"][c] for c in names]), quality=record["quality"],
                  blur_level=record["blur_level"], blur_probabilities=np.array(record["blur_probabilities"]),
                  quality_map=np.zeros((1, 1)), certainty=np.zeros((1, 1)), reliable=record["reliable"],
                  backend=record["backend"], patient_id=record["patient_id"], class_prior=class_prior)


def _infer_one(session, source: Path, page: int | None, out_dir: Path, stem: str, *, deblur: bool, overlay: bool,
               maps: bool, patient_id: str | None) -> dict:
    from ifrt.imageio import read_image

    key = item_key(source, page)
    path, page_index = identity_of(source, page)
    try:
        image = read_image(source, max_pixels=session.max_pixels, page=page_index)
        result = session.predict(image, deblur=deblur, patient_id=patient_id, name=key)
    except (ValueError, RuntimeError, OSError, MemoryError) as exc:
        reason = str(exc)
        if str(source) not in reason:
            reason = f"{key}: {reason}"
        return {"source": key, "status": "failed", "error": reason, "patient_id": patient_id, "path": path,
                "page": page_index}
    record = {**result.to_dict(maps=maps), "status": "ok", "path": path, "page": page_index}
    if deblur and result.deblurred is not None:
        deblurred_path = out_dir / "deblurred" / f"{stem}.tif"
        write_deblurred_tiff(deblurred_path, source, result.deblurred)
        record["deblurred_path"] = str(deblurred_path.relative_to(out_dir))
    if overlay:
        overlay_path = out_dir / "overlays" / f"{stem}.png"
        write_image_atomic(overlay_path, quality_overlay(image, result.quality_map))
        record["overlay_path"] = str(overlay_path.relative_to(out_dir))
    return record
