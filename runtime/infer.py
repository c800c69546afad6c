"""Batch inference over files (`ifrt infer`): one JSON line per image in `results.jsonl`, a CSV summary,
optional deblurred TIFFs (input dtype, metadata kept) and quality-map overlays, an optional patient
report. Robust by construction:

- a bad file is recorded with its reason and the run goes on; the exit code says whether any failed;
- every output file is written atomically; `results.jsonl` grows by whole lines, so an interrupt
  (Ctrl-C, kill) leaves every finished image recorded;
- a rerun skips images already recorded as done (unless `overwrite`), and retries failed ones; it first
  cuts a torn last line and removes temporary files that a killed run left behind;
- a write error (a full disk) stops the run with the error: the finished images stay recorded.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ifrt.imageio import atomic_path, write_image_atomic, write_json_atomic, write_text_atomic
from ifrt.result import Result

RESULTS = "results.jsonl"
SUMMARY = "summary.csv"
PATIENTS = "patients.json"


@dataclass
class InferReport:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.failed else 0


def read_records(out_dir: Path) -> list[dict]:
    """Records of earlier runs; a torn last line (interrupted write) is ignored."""
    path = out_dir / RESULTS
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def repair_results(path: Path) -> None:
    """Cut a torn last line (a write interrupted by a full disk or a kill) so that the next record
    starts on a line of its own instead of being glued to the fragment."""
    if not path.is_file():
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)
            f.flush()
            os.fsync(f.fileno())


def remove_stale_temporaries(out_dir: Path) -> None:
    """Temporary files that a killed run left behind (atomic writes name them `.NAME.*.tmp`)."""
    for folder in (out_dir, out_dir / "deblurred", out_dir / "overlays"):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


def output_stem(source: Path) -> str:
    """A file-name-safe stem that stays unique for same-named files in different folders."""
    parent = re.sub(r"[^A-Za-z0-9._-]+", "_", source.parent.name) if source.parent.name else ""
    return f"{parent}__{source.stem}" if parent else source.stem


def write_deblurred_tiff(path: Path, source: Path, image: np.ndarray) -> None:
    """Deblurred image in the input's dtype; a TIFF input's description and resolution are kept."""
    import tifffile

    kwargs: dict = {"photometric": "minisblack"}
    if source.suffix.lower() in (".tif", ".tiff"):
        try:
            with tifffile.TiffFile(source) as tif:
                page = tif.pages[0]
                tags = page.tags
                if "ImageDescription" in tags and len(tif.pages) == 1:
                    kwargs["description"] = tags["ImageDescription"].value
                    kwargs["metadata"] = None
                if "XResolution" in tags and "YResolution" in tags:
                    kwargs["resolution"] = (tags["XResolution"].value, tags["YResolution"].value)
                    if "ResolutionUnit" in tags:
                        kwargs["resolutionunit"] = tags["ResolutionUnit"].value
        except (tifffile.TiffFileError, OSError, ValueError):
            pass  # metadata is a courtesy; the pixels are what matter
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, image, **kwargs)


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
    """One record per source: the last one written (a retry replaces an earlier failure)."""
    latest: dict[str, dict] = {}
    for r in records:
        latest[r["source"]] = r
    return list(latest.values())


def tiff_page_count(path: Path) -> int:
    """Pages of a TIFF (1 for anything else, or for a file that cannot be opened: its error is reported
    when the image is read)."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return 1
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
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
              maps: bool = True, pages: str = "first",
              progress: Callable[[int, int, str], None] | None = None) -> InferReport:
    """Run `session` over `sources` (with pages="all", every page of a multi-page TIFF), writing into
    `out_dir` as described in the module docstring."""
    from ifrt.patients import aggregate

    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / RESULTS
    if overwrite:
        results_path.unlink(missing_ok=True)
    repair_results(results_path)
    remove_stale_temporaries(out_dir)
    previous = read_records(out_dir)
    done = {r["source"] for r in latest_records(previous) if r.get("status") == "ok"}
    pattern = re.compile(patient_pattern) if patient_pattern else None
    manifest = manifest_patients(patient_manifest) if patient_manifest else None
    report = InferReport()
    items = expand_pages(sources, pages)
    try:
        with open(results_path, "a", encoding="utf-8") as log:
            for index, (source, page) in enumerate(items):
                key = item_key(source, page)
                if progress:
                    progress(index, len(items), key)
                if key in done:
                    report.skipped += 1
                    continue
                record = _infer_one(session, source, page, out_dir, deblur=deblur, overlay=overlay, maps=maps,
                                    patient_id=patient_of(source, pattern, manifest))
                log.write(json.dumps(record) + "\n")
                log.flush()
                os.fsync(log.fileno())
                if record["status"] == "ok":
                    report.done += 1
                else:
                    report.failed.append((key, record["error"]))
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        records = latest_records(read_records(out_dir))
        write_summary(out_dir, records)
        ok = [_as_result(r, session.class_prior) for r in records if r.get("status") == "ok" and r.get("patient_id")]
        if ok:
            write_json_atomic(out_dir / PATIENTS, [p.to_dict() for p in aggregate(ok)])
    if progress:
        progress(len(items), len(items), "")
    return report


def _as_result(record: dict, class_prior: list[float] | None) -> Result:
    names = list(record["probabilities"])
    return Result(source=record["source"], shape=tuple(record["shape"]), dtype=record["dtype"], class_names=names,
                  probabilities=np.array([record["probabilities"][c] for c in names]), quality=record["quality"],
                  blur_level=record["blur_level"], blur_probabilities=np.array(record["blur_probabilities"]),
                  quality_map=np.zeros((1, 1)), certainty=np.zeros((1, 1)), reliable=record["reliable"],
                  backend=record["backend"], patient_id=record["patient_id"], class_prior=class_prior)


def _infer_one(session, source: Path, page: int | None, out_dir: Path, *, deblur: bool, overlay: bool,
               maps: bool, patient_id: str | None) -> dict:
    from ifrt.imageio import read_image

    key = item_key(source, page)
    try:
        image = read_image(source, max_pixels=session.max_pixels, page=page or 0)
        result = session.predict(image, deblur=deblur, patient_id=patient_id)
    except (ValueError, RuntimeError, OSError, MemoryError) as exc:
        reason = str(exc)
        if str(source) not in reason:
            reason = f"{key}: {reason}"
        return {"source": key, "status": "failed", "error": reason, "patient_id": patient_id}
    result.source = key
    record = {**result.to_dict(maps=maps), "status": "ok", "path": str(source), "page": page or 0}
    stem = output_stem(source) + (f"_p{page}" if page is not None else "")
    if deblur and result.deblurred is not None:
        path = out_dir / "deblurred" / f"{stem}.tif"
        write_deblurred_tiff(path, source, result.deblurred)
        record["deblurred_path"] = str(path.relative_to(out_dir))
    if overlay:
        path = out_dir / "overlays" / f"{stem}.png"
        write_image_atomic(path, quality_overlay(image, result.quality_map))
        record["overlay_path"] = str(path.relative_to(out_dir))
    return record
