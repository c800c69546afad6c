"""What each nephropathy looks like under each stain: the findings a patient's stain panel shows.

A finding is an intensity grade (0 = negative .. 3 = 3+, as pathologists score IF) and a mix of deposit
patterns (see `stain.py` for how each pattern is drawn):
    mesangial  granular / clumpy deposits in the mesangium
    capillary  fine granular deposits along the capillary walls (subepithelial, "membranous")
    linear     continuous staining of glomerular, capsular and tubular basement membranes
    wireloop   thick, bright, continuous subendothelial deposits outlining whole loops
    tubular    extraglomerular granular deposits on tubular basement membranes and vessels
    insudative smudgy staining of nodules / sclerosed segments (IgM, C3 trapping)
    vascular   arteriolar wall staining (C3 in arterioles: common, not specific)

The table encodes the textbook reading: IgAN is IgA-dominant mesangial; MN is IgG-dominant fine
granular capillary-wall, global and diffuse; DN is linear IgG/albumin along basement membranes with
nodular mesangial expansion; LN is "full house" (IgG, IgA, IgM, C3, C1q) mixing mesangial and
capillary-wall deposits with wire loops and extraglomerular deposits. Which stains light up, and how
strongly, depends on the class, so the diagnosis is read from the whole panel, not from one image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_CLASSES = ("IgAN", "MN", "DN", "LN")
DEFAULT_STAINS = ("IgG", "IgA", "IgM", "C3", "C1q")
PATTERNS = ("mesangial", "capillary", "linear", "wireloop", "tubular", "insudative", "vascular")

# class -> stain -> (probability the stain is positive in a patient, grade range when positive, pattern)
_M, _C, _L, _I = {"mesangial": 1.0}, {"capillary": 1.0}, {"linear": 1.0}, {"insudative": 1.0}
_LUPUS = "lupus"  # resolved per patient from its lupus class (see _lupus_mix)
TABLE: dict[str, dict[str, tuple[float, tuple[float, float], dict | str]]] = {
    "IgAN": {"IgA": (1.0, (1.5, 3.0), _M), "C3": (0.85, (0.5, 2.5), _M), "IgG": (0.35, (0.5, 1.5), _M),
             "IgM": (0.4, (0.5, 1.5), _M), "C1q": (0.05, (0.5, 1.0), _M), "kappa": (0.7, (0.5, 2.0), _M),
             "lambda": (0.95, (1.0, 3.0), _M), "albumin": (0.1, (0.5, 1.0), _L),
             "fibrinogen": (0.5, (0.5, 1.5), _M)},
    "MN": {"IgG": (1.0, (1.5, 3.0), _C), "C3": (0.75, (0.5, 2.0), _C), "IgM": (0.2, (0.5, 1.0), _C),
           "IgA": (0.15, (0.5, 1.0), _C), "C1q": (0.1, (0.5, 1.0), _C), "kappa": (1.0, (1.0, 3.0), _C),
           "lambda": (1.0, (1.0, 3.0), _C), "albumin": (0.1, (0.5, 1.0), _L),
           "fibrinogen": (0.1, (0.5, 1.0), _C)},
    "DN": {"IgG": (0.9, (1.0, 2.5), _L), "albumin": (0.95, (1.0, 3.0), _L), "IgM": (0.6, (0.5, 2.0), _I),
           "C3": (0.45, (0.5, 1.5), {"insudative": 1.0, "vascular": 0.6}), "IgA": (0.3, (0.5, 1.0), _L),
           "C1q": (0.15, (0.5, 1.0), _I), "kappa": (0.8, (0.5, 2.0), _L), "lambda": (0.8, (0.5, 2.0), _L),
           "fibrinogen": (0.3, (0.5, 1.5), _I)},
    "LN": {"IgG": (1.0, (1.5, 3.0), _LUPUS), "IgA": (0.8, (0.5, 2.5), _LUPUS), "IgM": (0.85, (0.5, 2.5), _LUPUS),
           "C3": (0.95, (1.0, 3.0), _LUPUS), "C1q": (0.9, (1.0, 3.0), _LUPUS),
           "kappa": (0.95, (1.0, 3.0), _LUPUS), "lambda": (0.95, (1.0, 3.0), _LUPUS),
           "albumin": (0.1, (0.5, 1.0), _L), "fibrinogen": (0.5, (0.5, 1.5), _LUPUS)},
}


@dataclass
class Finding:
    stain: str
    grade: float                                   # 0 negative .. 3 strongly positive
    patterns: dict[str, float] = field(default_factory=dict)  # pattern -> relative weight
    segmental: float = 1.0                         # fraction of lobules involved (1 = global)
    clumpy: float = 0.0                            # 0 fine granules .. 1 coarse clumps (mesangial)
    trapping: float = 0.0                          # grade of nonspecific staining of sclerosis


@dataclass
class Patient:
    diagnosis: str
    findings: dict[str, Finding]
    sclerosis_p: float        # chance that a glomerulus of this patient shows sclerosis
    nodular: bool             # nodular mesangial expansion in its glomeruli


def check_classes(classes) -> None:
    unknown = [c for c in classes if c not in TABLE]
    if unknown:
        raise ValueError(f"no synthetic pattern for class(es) {', '.join(unknown)} "
                         f"(the generator knows {', '.join(TABLE)})")


def check_stains(stains) -> None:
    known = TABLE["IgAN"].keys()
    unknown = [s for s in stains if s not in known]
    if unknown:
        raise ValueError(f"no synthetic pattern for stain(s) {', '.join(unknown)} (the generator knows "
                         f"{', '.join(known)})")


def _lupus_mix(rng: np.random.Generator) -> dict[str, float]:
    """Deposit mix of one lupus patient, by ISN/RPS class: II mesangial, III/IV proliferative, V membranous."""
    lupus_class = rng.choice(["II", "III/IV", "V"], p=[0.2, 0.55, 0.25])
    if lupus_class == "II":
        return {"mesangial": 1.0, "tubular": rng.uniform(0, 0.4)}
    if lupus_class == "V":
        return {"capillary": 1.0, "mesangial": rng.uniform(0.3, 0.8), "tubular": rng.uniform(0, 0.5)}
    return {"mesangial": rng.uniform(0.5, 1.0), "capillary": rng.uniform(0.3, 0.8),
            "wireloop": rng.uniform(0.4, 1.0), "tubular": rng.uniform(0.2, 0.8)}


def sample_patient(rng: np.random.Generator, diagnosis: str, stains) -> Patient:
    """Draw one patient's findings across the stain panel."""
    check_classes([diagnosis])
    check_stains(stains)
    table = TABLE[diagnosis]
    lupus = _lupus_mix(rng) if diagnosis == "LN" else None
    segmental = 1.0 if diagnosis in ("MN", "DN") or rng.random() < 0.6 else rng.uniform(0.4, 0.9)
    clumpy = rng.uniform(0.3, 1.0) if diagnosis == "IgAN" else rng.uniform(0.0, 0.5)
    # Vascular C3 and sclerosis appear with age and hypertension in every class.
    vascular_c3 = rng.random() < 0.35
    sclerosis_p = {"DN": 0.5, "IgAN": 0.3}.get(diagnosis, 0.15)
    findings = {}
    for stain in stains:
        p_positive, (lo, hi), pattern = table[stain]
        grade = float(rng.uniform(lo, hi)) if rng.random() < p_positive else 0.0
        patterns = dict(lupus if pattern == _LUPUS else pattern)
        if diagnosis == "IgAN" and "mesangial" in patterns and rng.random() < 0.25:
            patterns["capillary"] = rng.uniform(0.15, 0.4)  # paramesangial extension along loops
        if stain == "C3" and vascular_c3:
            patterns["vascular"] = max(patterns.get("vascular", 0.0), 0.8)
            grade = max(grade, float(rng.uniform(0.5, 1.5)))
        # IgM and C3 are trapped nonspecifically in sclerosed segments, whatever the disease.
        trapping = float(rng.uniform(0.5, 1.5)) if stain in ("IgM", "C3") and rng.random() < 0.6 else 0.0
        findings[stain] = Finding(stain=stain, grade=grade, patterns=patterns, segmental=segmental,
                                  clumpy=clumpy, trapping=trapping)
    return Patient(diagnosis=diagnosis, findings=findings, sclerosis_p=sclerosis_p, nodular=diagnosis == "DN")
