"""PNG plots for the evaluation report, drawn with OpenCV (a core dependency; no plotting library needed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

COLORS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140)]  # BGR
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _canvas(width: int = 640, height: int = 420) -> np.ndarray:
    return np.full((height, width, 3), 255, np.uint8)


def _text(img, text, org, scale=0.45, color=(0, 0, 0)):
    cv2.putText(img, text, org, FONT, scale, color, 1, cv2.LINE_AA)


def line_chart(series: dict[str, list[float]], x_labels: list[str], title: str, y_label: str,
               y_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """One polyline per series over categorical x positions, with a legend."""
    img = _canvas()
    left, right, top, bottom = 60, 620, 40, 360
    cv2.rectangle(img, (left, top), (right, bottom), (0, 0, 0), 1)
    lo, hi = y_range
    for k in range(6):
        v = lo + (hi - lo) * k / 5
        y = int(bottom - (bottom - top) * k / 5)
        cv2.line(img, (left, y), (right, y), (220, 220, 220), 1)
        _text(img, f"{v:.2f}", (10, y + 4))
    xs = [int(left + (right - left) * (i + 0.5) / len(x_labels)) for i in range(len(x_labels))]
    for x, label in zip(xs, x_labels, strict=True):
        _text(img, label, (x - 20, bottom + 20))
    for i, (name, values) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        points = [(x, int(bottom - (bottom - top) * (np.clip(v, lo, hi) - lo) / (hi - lo)))
                  for x, v in zip(xs, values, strict=True) if v == v]
        for a, b in zip(points, points[1:], strict=False):
            cv2.line(img, a, b, color, 2, cv2.LINE_AA)
        for p in points:
            cv2.circle(img, p, 4, color, -1, cv2.LINE_AA)
        _text(img, name, (left + 10, top + 18 + 18 * i), color=color)
    _text(img, title, (left, 25), 0.55)
    _text(img, y_label, (left, bottom + 45))
    return img


def confusion_image(confusion: list[list[int]], class_names: list[str], title: str) -> np.ndarray:
    """Row-normalized confusion matrix (true rows, predicted columns) with counts in the cells."""
    m = np.asarray(confusion, float)
    share = m / np.maximum(m.sum(1, keepdims=True), 1)
    k, cell, left, top = len(class_names), 70, 90, 60
    img = _canvas(left + k * cell + 20, top + k * cell + 40)
    for i in range(k):
        _text(img, class_names[i], (10, top + i * cell + cell // 2 + 5))
        _text(img, class_names[i], (left + i * cell + 8, top - 10))
        for j in range(k):
            shade = int(255 - 200 * share[i, j])
            p0, p1 = (left + j * cell, top + i * cell), (left + (j + 1) * cell, top + (i + 1) * cell)
            cv2.rectangle(img, p0, p1, (255, shade, shade), -1)
            cv2.rectangle(img, p0, p1, (0, 0, 0), 1)
            _text(img, str(int(m[i, j])), (p0[0] + 8, p0[1] + cell // 2 + 5),
                  color=(255, 255, 255) if share[i, j] > 0.6 else (0, 0, 0))
    _text(img, title + " (rows: true, columns: predicted)", (10, 25), 0.5)
    return img


def reliability_image(bins: list[dict], title: str) -> np.ndarray:
    """Accuracy against confidence per bin; the diagonal is perfect calibration."""
    img = _canvas(420, 420)
    left, top, size = 50, 40, 330
    cv2.rectangle(img, (left, top), (left + size, top + size), (0, 0, 0), 1)
    cv2.line(img, (left, top + size), (left + size, top), (160, 160, 160), 1, cv2.LINE_AA)
    for b in bins:
        x0 = int(left + size * b["low"])
        x1 = int(left + size * b["high"])
        y = int(top + size * (1 - b["accuracy"]))
        cv2.rectangle(img, (x0, y), (x1, top + size), COLORS[0], -1)
        cv2.rectangle(img, (x0, y), (x1, top + size), (0, 0, 0), 1)
    _text(img, title, (left, 25), 0.5)
    _text(img, "confidence", (left + size // 2 - 40, top + size + 25))
    _text(img, "accuracy", (2, top - 5))
    return img


# Every file name `write_all` writes: what `remove_earlier` removes once a report is written again.
PLOT_PATTERNS = ("accuracy_per_level.png", "quality_per_level.png", "confusion_*.png", "reliability_*.png")


def remove_earlier(out_dir: Path, keep: set[str]) -> None:
    """Remove the plots of an earlier report in `out_dir` other than those named in `keep` (the new report's), so
    that none of a model no longer compared stays."""
    for pattern in PLOT_PATTERNS:
        for path in out_dir.glob(pattern):
            if path.name not in keep and (path.is_file() or path.is_symlink()):
                path.unlink()


def file_stems(model_names: list[str]) -> dict[str, str]:
    """A file-name stem per model: its name with characters other than letters, digits, - and _ as _, and
    -2, -3, ... where two names come to the same stem (compared without case, for case-blind file systems)."""
    stems: dict[str, str] = {}
    used: set[str] = set()
    for name in model_names:
        base = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        stem, k = base, 2
        while stem.lower() in used:
            stem, k = f"{base}-{k}", k + 1
        used.add(stem.lower())
        stems[name] = stem
    return stems


def write_all(report: dict, out_dir: Path, write_into: Path | None = None) -> list[dict]:
    """accuracy_per_level.png, confusion_<model>.png, reliability_<model>.png; quality_per_level.png, for the
    report folder `out_dir`, written into `write_into` (default `out_dir`; a staging folder from which the report
    is moved into place). Returns one {file, shows, model} per plot (model None for a plot of every model); a
    plot that cannot be written raises OSError naming its file in `out_dir`."""
    from ifrt.imageio import write_image_atomic

    write_into = out_dir if write_into is None else write_into
    written = []
    levels = [str(lv) for lv in report["levels"]]

    def save(name, img, shows, model=None):
        try:
            write_image_atomic(write_into / name, img)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise OSError(f"{out_dir / name}: could not write the plot ({reason})") from None
        written.append({"file": name, "shows": shows, "model": model})

    models = report["models"]
    save("accuracy_per_level.png", line_chart(
        {n: [m["diagnosis"]["accuracy_per_level"][lv] for lv in levels] for n, m in models.items()},
        [f"level {lv}" for lv in levels], "Diagnosis accuracy per blur level", "accuracy"),
        "diagnosis accuracy per blur level, every model")
    iqa = {n: m["iqa"] for n, m in models.items() if "iqa" in m}
    if iqa:
        save("quality_per_level.png", line_chart(
            {n: [q["mean_quality_per_level"].get(lv, float("nan")) for lv in levels] for n, q in iqa.items()},
            [f"level {lv}" for lv in levels], "Mean quality score per blur level", "quality"),
            "mean quality score per blur level, every model with a quality head")
    for name, stem in file_stems(list(models)).items():
        m = models[name]
        save(f"confusion_{stem}.png", confusion_image(m["diagnosis"]["confusion"], report["class_names"], name),
             f"confusion matrix of {name}", name)
        save(f"reliability_{stem}.png", reliability_image(m["diagnosis"]["reliability"], f"{name}: reliability"),
             f"reliability diagram of {name}", name)
    return written
