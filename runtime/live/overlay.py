"""`--show`: the frame with its quality map and scores in an OpenCV window (needs OpenCV with HighGUI)."""

from __future__ import annotations

import re

import numpy as np

from ifrt.live.sources import Frame
from ifrt.result import quality_text


def render_overlay(image: np.ndarray, result, status: str = "", *, size: int = 512, display: int = 1024) -> np.ndarray:
    """The frame (contrast-stretched to 8 bits, longer side `display`) with the per-tile quality map blended
    over it (red = blurred, green = in focus) and the scores as text. BGR uint8, for `cv2.imshow`."""
    import cv2

    height, width = image.shape[:2]
    scale = min(1.0, display / max(height, width))
    shown = cv2.resize(image, (max(round(width * scale), 1), max(round(height * scale), 1)),
                       interpolation=cv2.INTER_AREA) if scale < 1.0 else image
    lo, hi = np.percentile(shown, [1.0, 99.8])
    gray = np.clip((shown.astype(np.float32) - lo) * (255.0 / max(float(hi - lo), 1e-6)), 0, 255).astype(np.uint8)
    canvas = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)

    # The map has one cell per 32 pixels of the downsampled (then padded) frame the focus graph saw.
    model_scale = min(1.0, size / max(height, width))
    seen_h, seen_w = max(round(height * model_scale), 1), max(round(width * model_scale), 1)
    quality = np.clip(np.asarray(result.quality_map, np.float32), 0, 1)
    cells = cv2.resize(quality, (quality.shape[1] * 32, quality.shape[0] * 32), interpolation=cv2.INTER_NEAREST)
    cells = cv2.resize(cells[:seen_h, :seen_w], (canvas.shape[1], canvas.shape[0]), interpolation=cv2.INTER_NEAREST)
    colour = np.zeros_like(canvas)
    colour[..., 1] = (cells * 255).astype(np.uint8)
    colour[..., 2] = ((1 - cells) * 255).astype(np.uint8)
    canvas = cv2.addWeighted(canvas, 0.7, colour, 0.3, 0)

    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, 0.6
    lines = _wrap_text(cv2, [f"quality {quality_text(result.quality)}  blur level {result.blur_level}  "
                             f"certainty {float(np.mean(result.certainty)):.2f}", status],
                       canvas.shape[1] - 20, font, font_scale)
    for i, text in enumerate(lines):
        origin = (10, 28 + 26 * i)
        cv2.putText(canvas, text, origin, font, font_scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(canvas, text, origin, font, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def _wrap_text(cv2, texts: list[str], width: int, font: int, font_scale: float) -> list[str]:
    """Non-empty `texts` broken after ", " or ": " so that each line fits `width` pixels where it can."""
    lines = []
    for text in filter(None, texts):
        pieces = re.split(r"(?<=[,:]) ", text)
        line = pieces[0]
        for piece in pieces[1:]:
            if cv2.getTextSize(f"{line} {piece}", font, font_scale, 3)[0][0] <= width:
                line = f"{line} {piece}"
            else:
                lines.append(line)
                line = piece
        lines.append(line)
    return lines


class OverlayWindow:
    """`--show`: an OpenCV window with `render_overlay`; q or Esc (or closing the window) stops."""

    def __init__(self, title: str, *, size: int = 512):
        import cv2

        self.title, self.size, self.sized = title, size, False
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise RuntimeError("--show needs OpenCV with GUI support, and this OpenCV has none (the headless "
                               "build): pip install opencv-python, or run without --show for JSON lines") from None

    def __call__(self, frame: Frame, result, status: str) -> bool:
        import cv2

        canvas = render_overlay(frame.image, result, f"{frame.label}: {status}", size=self.size)
        if not self.sized:  # open at the overlay's size; the user may resize the window afterwards
            cv2.resizeWindow(self.title, canvas.shape[1], canvas.shape[0])
            self.sized = True
        cv2.imshow(self.title, canvas)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return False
        return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        import cv2

        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass
