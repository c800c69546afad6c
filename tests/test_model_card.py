"""The bundled model's published numbers agree: the test metrics recorded in model.json (`card.test_metrics`,
taken from `ifrt eval`'s report) are the ones the model card's and the README's tables print."""

import json
from pathlib import Path

import pytest

from ifrt.model_package import DEFAULT_MODEL_DIR

ROOT = Path(__file__).resolve().parents[1]
METRICS = json.loads((DEFAULT_MODEL_DIR / "model.json").read_text())["card"]["test_metrics"]
CARD = (DEFAULT_MODEL_DIR / "MODEL_CARD.md").read_text()
README = (ROOT / "README.md").read_text()


def table_row(text: str, label: str) -> list[str]:
    """The cells after the label of the one table row that starts with `label` ('' for an empty cell)."""
    rows = [line for line in text.splitlines() if line.startswith(f"| {label} |")]
    assert len(rows) == 1, f"{len(rows)} rows labelled {label!r}"
    return [cell.strip() for cell in rows[0].strip().strip("|").split("|")[1:]]


def printed(per_level: dict, levels, decimals: int) -> list[str]:
    return [f"{per_level[str(level)]:.{decimals}f}" if str(level) in per_level else "" for level in levels]


def blurred_mean(per_level: dict) -> float:
    return sum(per_level[str(level)] for level in range(1, 5)) / 4


@pytest.mark.parametrize(("label", "metric", "decimals"), [
    ("diagnosis accuracy, image", "diagnosis_accuracy_per_level", 3),
    ("diagnosis accuracy, stain-positive images (369 of 600)", "stain_positive_accuracy_per_level", 3),
    ("diagnosis accuracy, patient (5 stains, `ifrt.aggregate`)", "patient_accuracy_per_level", 3),
    ("deblurring PSNR gain over the input (dB, Gaussian blur, 48 images)", "deblur_psnr_gain_db_per_level", 2),
    ("the same for a Wiener filter told the level (its PSF, best constant noise-to-signal ratio)",
     "deblur_wiener_level_psf_gain_db_per_level", 2),
    ("the same for a Wiener filter given the true PSF, spectrum and noise (a bound)",
     "deblur_wiener_bound_gain_db_per_level", 2),
    ("deblurring PSNR gain, widefield defocus blur (same 48 images)", "deblur_defocus_psnr_gain_db_per_level", 2),
    ("the same for Richardson-Lucy with the defocus PSF", "deblur_defocus_richardson_lucy_gain_db_per_level", 2),
    ("the same for a Wiener filter told the kind and level (the level's defocus PSF)",
     "deblur_defocus_wiener_level_psf_gain_db_per_level", 2),
    ("the same for the Wiener bound with the defocus PSF", "deblur_defocus_wiener_bound_gain_db_per_level", 2),
])
def test_the_model_cards_table_prints_the_recorded_test_metrics(label, metric, decimals):
    assert table_row(CARD, label) == printed(METRICS[metric], range(5), decimals)


@pytest.mark.parametrize(("label", "metric", "decimals", "mean"), [
    ("`hier` (the default model)", "diagnosis_accuracy_per_level", 3, True),
    ("`hier`, per patient over the 5 stains", "patient_accuracy_per_level", 3, True),
    ("`hier` (the default model), Gaussian blur", "deblur_psnr_gain_db_per_level", 2, False),
    ("Wiener filter told the blur level (its PSF, best constant noise-to-signal ratio)",
     "deblur_wiener_level_psf_gain_db_per_level", 2, False),
    ("Wiener filter given the true PSF, spectrum and noise power (a linear bound)",
     "deblur_wiener_bound_gain_db_per_level", 2, False),
    ("`hier`, widefield defocus blur of the same severity", "deblur_defocus_psnr_gain_db_per_level", 2, False),
    ("Richardson-Lucy with the defocus PSF", "deblur_defocus_richardson_lucy_gain_db_per_level", 2, False),
    ("Wiener filter told the kind and level (defocus PSF of the level)",
     "deblur_defocus_wiener_level_psf_gain_db_per_level", 2, False),
    ("Wiener bound with the defocus PSF", "deblur_defocus_wiener_bound_gain_db_per_level", 2, False),
])
def test_the_readmes_tables_print_the_recorded_test_metrics(label, metric, decimals, mean):
    expected = printed(METRICS[metric], range(5), decimals)
    if mean:
        expected.append(f"{blurred_mean(METRICS[metric]):.{decimals}f}")
    assert table_row(README, label) == expected


def test_the_recorded_blurred_mean_is_the_mean_of_the_blurred_levels():
    assert METRICS["diagnosis_accuracy_blurred_mean"] == pytest.approx(
        blurred_mean(METRICS["diagnosis_accuracy_per_level"]), abs=1e-12)


@pytest.mark.parametrize("text", [CARD, README], ids=["card", "readme"])
def test_the_quality_figures_in_the_prose_are_the_recorded_ones(text):
    prose = " ".join(text.split())
    for metric in ("blur_level_accuracy", "quality_srocc", "natural_pictures_quality_srocc",
                   "natural_pictures_variance_of_laplacian_srocc"):
        assert f"{METRICS[metric]:.3f}" in prose, metric


def test_the_single_image_ceiling_in_the_card_is_the_generators():
    # The card's limit, recomputed from what `ifrt data synth --patients 800 --seed 2026` draws for the test
    # split (each patient's stain findings, without rendering a pixel): a reader right on every stain-positive
    # image and on every nodular diabetic glomerulus, naming the commonest class for the other stain-negative
    # images, and the same reader also told each image's stain, naming the commonest class per stain.
    from collections import Counter, defaultdict

    from ifrt.train.data.pathology import DEFAULT_CLASSES, DEFAULT_STAINS, sample_patient
    from ifrt.train.data.split import DEFAULT_FRACTIONS, assign_splits
    from ifrt.train.data.synth import patient_diagnoses, patient_rng

    seed, patients = 2026, 800
    diagnoses = patient_diagnoses(patients, DEFAULT_CLASSES, None, seed)
    splits = assign_splits({f"P{p:05d}": diagnoses[p] for p in range(patients)}, DEFAULT_FRACTIONS, seed)
    images = positive = readable = 0
    unreadable, unreadable_by_stain = Counter(), defaultdict(Counter)
    for p in (p for p in range(patients) if splits[f"P{p:05d}"] == "test"):
        patient = sample_patient(patient_rng(seed, p), diagnoses[p], DEFAULT_STAINS)
        for stain in DEFAULT_STAINS:
            images += 1
            if patient.findings[stain].grade > 0:
                positive += 1
            elif diagnoses[p] == "DN" and patient.nodular:
                readable += 1
            else:
                unreadable[diagnoses[p]] += 1
                unreadable_by_stain[stain][diagnoses[p]] += 1
    assert (images, positive) == (600, 369)
    ceiling = (positive + readable + max(unreadable.values())) / images
    told_the_stain = (positive + readable + sum(max(c.values()) for c in unreadable_by_stain.values())) / images
    assert (round(ceiling, 3), round(told_the_stain, 3)) == (0.868, 0.908)
    prose = " ".join(CARD.split())
    assert f"reaches {ceiling:.3f} on these test images" in prose
    assert f"naming the commonest class for each stain, it would reach {told_the_stain:.3f}" in prose
    assert f"{int(100 * (1 - positive / images))}% of the synthetic images show a stain that is negative" in prose
