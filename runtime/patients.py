"""Patient-level diagnosis over a stain panel: each patient's images vote with their class
probabilities, weighted by image quality, so a blurred image counts less than a sharp one."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ifrt.result import Result

MIN_WEIGHT = 1e-3  # an image of quality 0 still counts a little, so a patient never has zero weight


@dataclass
class PatientReport:
    patient_id: str
    class_names: list[str]
    probabilities: np.ndarray
    images: int
    unreliable_images: int
    mean_quality: float

    @property
    def label(self) -> str:
        return self.class_names[int(np.argmax(self.probabilities))]

    @property
    def reliable(self) -> bool:
        return self.unreliable_images < self.images

    def to_dict(self) -> dict:
        return {"patient_id": self.patient_id, "diagnosis": self.label, "reliable": self.reliable,
                "probabilities": {c: round(float(p), 6) for c, p in zip(self.class_names, self.probabilities, strict=True)},
                "images": self.images, "unreliable_images": self.unreliable_images,
                "mean_quality": round(self.mean_quality, 6)}


def aggregate(results: Iterable[Result], by: str = "patient") -> list[PatientReport]:
    """One report per patient (sorted by id): probabilities = sum(q_i * p_i) / sum(q_i) over its images,
    q_i the image quality (at least MIN_WEIGHT). Results without a patient_id are skipped."""
    if by != "patient":
        raise ValueError(f"aggregate by {by!r} is not supported (only 'patient')")
    groups: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        if r.patient_id is not None:
            groups[r.patient_id].append(r)
    reports = []
    for patient, items in sorted(groups.items()):
        names = items[0].class_names
        if any(r.class_names != names for r in items):
            raise ValueError(f"patient {patient}: results come from models with different class names")
        weights = np.array([max(r.quality, MIN_WEIGHT) for r in items])
        probs = np.stack([r.probabilities for r in items])
        reports.append(PatientReport(patient_id=patient, class_names=list(names),
                                     probabilities=(probs * weights[:, None]).sum(0) / weights.sum(),
                                     images=len(items), unreliable_images=sum(not r.reliable for r in items),
                                     mean_quality=float(np.mean([r.quality for r in items]))))
    return reports
