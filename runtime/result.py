"""What one prediction returns, and its JSON form (one line per image in `ifrt infer`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

import numpy as np


def quality_text(quality: float) -> str:
    """Quality to 3 decimals, rounded down as the Session's warning rounds it, so that a quality below the
    reliability threshold never reads as the threshold itself (0.4984 is 0.498, not 0.50, beside "unreliable").
    The decimal digits are those Python prints for the float, so 0.29 stays 0.290."""
    return str(Decimal(repr(float(quality))).quantize(Decimal("0.001"), rounding=ROUND_FLOOR))


@dataclass
class Result:
    """One image's analysis from `Session.predict`: the diagnosis (`label`, `probabilities` over `class_names`),
    the focus quality and blur level with their per-tile maps, whether the diagnosis can be trusted
    (`reliable`, and `warnings` saying why not), and the deblurred image when asked for. `to_dict` is the
    JSON line `ifrt infer` writes; `ifrt.aggregate` combines a patient's results."""

    source: str  # file path, or the name of an in-memory image ("array", "array[i]" in a list)
    shape: tuple[int, int]
    dtype: str
    class_names: list[str]
    probabilities: np.ndarray  # [K], sums to 1
    quality: float  # 0..1, 1 = in focus
    blur_level: int  # 0 = sharp .. L-1 = severe
    blur_probabilities: np.ndarray  # [L]
    quality_map: np.ndarray  # [H/32, W/32] (of the padded frame), 1 = in focus
    certainty: np.ndarray  # [H/32, W/32], 1 - normalized entropy of the tile's blur-level estimate
    reliable: bool  # False when a warning says why the diagnosis cannot be trusted (low quality, no structure)
    backend: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    deblurred: np.ndarray | None = None  # [H, W] in the input's dtype and units, when requested
    patient_id: str | None = None
    tiles: int = 1
    class_prior: list[float] | None = None  # the model's training prior (None: equal shares), for `aggregate`

    @property
    def label(self) -> str:
        return self.class_names[int(np.argmax(self.probabilities))]

    def to_dict(self, maps: bool = True) -> dict:
        """JSON-able summary; `maps` adds the quality and certainty maps as nested lists (3 decimals)."""
        d = {
            "source": self.source,
            "patient_id": self.patient_id,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "diagnosis": self.label,
            "reliable": self.reliable,
            "probabilities": {c: round(float(p), 6) for c, p in zip(self.class_names, self.probabilities, strict=True)},
            "quality": round(self.quality, 6),
            "blur_level": self.blur_level,
            "blur_probabilities": [round(float(p), 6) for p in self.blur_probabilities],
            "tiles": self.tiles,
            "backend": self.backend,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "warnings": list(self.warnings),
        }
        if maps:
            d["quality_map"], d["certainty"] = rounded_map(self.quality_map), rounded_map(self.certainty)
        return d


def rounded_map(values: np.ndarray) -> list:
    """A map as nested lists of 3-decimal numbers; rounded in float64, since a float32 0.487 is written out
    as 0.4869999885559082."""
    return np.round(np.asarray(values, np.float64), 3).tolist()


@dataclass
class FocusResult:
    """The live path: learned IQA on a downsampled frame plus classical metrics on the full frame."""

    quality: float
    blur_level: int
    blur_probabilities: np.ndarray
    quality_map: np.ndarray
    certainty: np.ndarray
    metrics: dict[str, float]  # classical focus metrics (var_laplacian, tenengrad, ...)
    timings_ms: dict[str, float] = field(default_factory=dict)
    contrast_to_noise: float = math.inf  # its structure's std over its pixel noise's (ifrt.session.contrast_to_noise)
    warnings: list[str] = field(default_factory=list)  # why the quality score cannot be trusted (no structure)

    def to_dict(self, maps: bool = True) -> dict:
        d = {"quality": round(self.quality, 6), "blur_level": self.blur_level,
             "blur_probabilities": [round(float(p), 6) for p in self.blur_probabilities],
             "certainty_mean": round(float(np.mean(self.certainty)), 6),
             "metrics": {k: float(v) for k, v in self.metrics.items()},
             "contrast_to_noise": round(self.contrast_to_noise, 2) if math.isfinite(self.contrast_to_noise) else None,
             "warnings": list(self.warnings),
             "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()}}
        if maps:
            d["quality_map"], d["certainty"] = rounded_map(self.quality_map), rounded_map(self.certainty)
        return d
