"""A self-contained HTML report of an `ifrt infer` output folder: the patient-level diagnoses first, then per
image the input, its quality-map overlay and the deblurred image side by side, with the diagnosis, quality
and blur level. Pictures are embedded (base64 PNG), so the file can be mailed or archived."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import cv2
import numpy as np

from ifrt.imageio import read_image, write_text_atomic
from ifrt.infer import PATIENTS, latest_records, read_records
from ifrt.normalize import normalize_percentile, percentile_range
from ifrt.result import quality_text

THUMB = 256


def _png_data_uri(image: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("could not encode a thumbnail")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode()


def _thumbnail(image: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """8-bit thumbnail; `lo`/`hi` fix the display range so an image and its deblurred version compare."""
    gray = image if image.ndim == 2 else image[..., 0]
    if lo is None or hi is None:
        scaled = normalize_percentile(gray)
    else:
        scaled = (gray.astype(np.float32) - lo) / max(hi - lo, 1e-6)
    picture = np.clip(scaled * 255, 0, 255).astype(np.uint8)
    return _fit(picture)


def _fit(picture: np.ndarray) -> np.ndarray:
    h, w = picture.shape[:2]
    scale = THUMB / max(h, w)
    if scale < 1:
        picture = cv2.resize(picture, (max(int(w * scale), 1), max(int(h * scale), 1)), interpolation=cv2.INTER_AREA)
    return picture


def _figure(uri: str, caption: str) -> str:
    return f'<figure><img src="{uri}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _image_section(out_dir: Path, record: dict) -> str:
    source = Path(record.get("path", record["source"]))
    title = html.escape(Path(record["source"]).name)
    if record.get("status") != "ok":
        return f'<section class="failed"><h3>{title}</h3><p>failed: {html.escape(record.get("error", ""))}</p></section>'
    figures = []
    absent = []  # files the run read or wrote, deleted or damaged since
    try:
        image = read_image(source, page=record.get("page", 0))
        lo, hi = percentile_range(image if image.ndim == 2 else image[..., 0])
        figures.append(_figure(_png_data_uri(_thumbnail(image, lo, hi)), "input"))
    except (OSError, ValueError) as exc:
        image, lo, hi = None, None, None
        reason = str(exc) if str(source) in str(exc) else f"{source}: {exc}"
        absent.append(f'<p class="warn">input image not shown: {html.escape(reason)}</p>')
    if record.get("overlay_path"):
        overlay_path = out_dir / record["overlay_path"]
        overlay = cv2.imread(str(overlay_path), cv2.IMREAD_COLOR)
        if overlay is not None:
            figures.append(_figure(_png_data_uri(_fit(overlay)), "quality map (green: in focus, red: blurred)"))
        else:
            absent.append(_absent_file("quality-map overlay", record["overlay_path"], overlay_path))
    if record.get("deblurred_path"):
        deblurred_path = out_dir / record["deblurred_path"]
        try:
            deblurred = read_image(deblurred_path)
            # the input's display range when it could be read, so the two compare; its own otherwise
            caption = "deblurred (same display range)" if image is not None else "deblurred (own display range)"
            figures.append(_figure(_png_data_uri(_thumbnail(deblurred, lo, hi)), caption))
        except (OSError, ValueError):
            absent.append(_absent_file("deblurred image", record["deblurred_path"], deblurred_path))
    probs = ", ".join(f"{c} {p:.0%}" for c, p in sorted(record["probabilities"].items(), key=lambda kv: -kv[1]))
    reasons = "; ".join(record.get("warnings") or []) or "re-acquire in focus"
    flag = "" if record["reliable"] else f' <span class="warn">unreliable: {html.escape(reasons)}</span>'
    patient = f" · patient {html.escape(record['patient_id'])}" if record.get("patient_id") else ""
    return (f'<section><h3>{title}{patient}</h3><p><b>{html.escape(record["diagnosis"])}</b> ({html.escape(probs)})'
            f' · quality {quality_text(record["quality"])} · blur level {record["blur_level"]}{flag}</p>'
            f'<div class="row">{"".join(figures)}</div>{"".join(absent)}</section>')


def _absent_file(what: str, recorded: str, path: Path) -> str:
    """A line in place of a picture the run recorded and the folder no longer holds (or holds unreadable)."""
    state = "cannot be read" if path.exists() else "is missing"
    return f'<p class="warn">{what} {html.escape(recorded)} {state} (deleted or changed since the run)</p>'


def _patient_row(patient: dict) -> str:
    """A patient's row: its failed images counted and named beside the analysed ones, and for a patient whose
    images all failed, no diagnosis and why."""
    failed = str(patient.get("failed_images", 0))
    if patient.get("failed_sources"):
        failed += f" ({', '.join(Path(source).name for source in patient['failed_sources'])})"
    if patient["diagnosis"] is None:
        reason = patient.get("no_diagnosis", "no image analysed")
        diagnosis = f'<td class="warn">no diagnosis: {html.escape(reason)}</td><td>-</td>'
        quality = "-"
    else:
        probability = patient["probabilities"][patient["diagnosis"]]
        diagnosis = f"<td><b>{html.escape(patient['diagnosis'])}</b></td><td>{probability:.0%}</td>"
        quality = quality_text(patient["mean_quality"])
    return (f"<tr><td>{html.escape(patient['patient_id'])}</td>{diagnosis}<td>{patient['images']}</td>"
            f"<td>{html.escape(failed)}</td><td>{quality}</td><td>{patient['unreliable_images']}</td></tr>")


def write_html_report(out_dir: str | Path, title: str = "ifrt report") -> Path:
    """Write OUT/report.html from OUT/results.jsonl (and OUT/patients.json when present)."""
    out_dir = Path(out_dir)
    records = latest_records(read_records(out_dir, maps=False))
    sections = [_image_section(out_dir, r) for r in records]
    patients_html = ""
    if (out_dir / PATIENTS).is_file():
        rows = "".join(_patient_row(p) for p in json.loads((out_dir / PATIENTS).read_text()))
        patients_html = ("<h2>Patients (images combined as independent evidence)</h2><table><tr><th>patient</th><th>diagnosis</th>"
                         "<th>probability</th><th>images analysed</th><th>images failed</th><th>mean quality</th>"
                         f"<th>unreliable</th></tr>{rows}</table>")
    ok = sum(r.get("status") == "ok" for r in records)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
.row {{ display: flex; gap: 1em; flex-wrap: wrap; }}
figure {{ margin: 0; }} figcaption {{ font-size: 0.85em; color: #555; }}
section {{ border-top: 1px solid #ddd; padding: 0.5em 0; }}
.warn {{ color: #b00; font-weight: bold; }} .failed {{ color: #b00; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 0.3em 0.6em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{ok} of {len(records)} images analysed. Research software on a synthetic-data model: not for clinical use.</p>
{patients_html}
<h2>Images</h2>
{"".join(sections)}
</body></html>
"""
    return write_text_atomic(out_dir / "report.html", page)
