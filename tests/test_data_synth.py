"""The synthetic database: determinism, layout and labels, class patterns, and a task that is not trivial."""

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ifrt.imageio import read_image
from ifrt.train.data.anatomy import build_anatomy
from ifrt.train.data.manifest import read_manifest
from ifrt.train.data.pathology import DEFAULT_STAINS, sample_patient
from ifrt.train.data.stain import deposits
from ifrt.train.data.synth import (
    image_rngs,
    patient_rng,
    render_glomerulus,
    render_image,
    synthesize_database,
)

CLASSES = ("IgAN", "MN", "DN", "LN")


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    out = tmp_path_factory.mktemp("db")
    manifest = synthesize_database(out, patients=8, size=96, seed=3, workers=1)
    return out, manifest


def test_same_seed_writes_identical_files(small_db, tmp_path):
    out, _ = small_db
    synthesize_database(tmp_path, patients=8, size=96, seed=3, workers=1)
    assert _digest(tmp_path) == _digest(out)


def test_files_do_not_depend_on_the_number_of_workers(small_db, tmp_path):
    out, _ = small_db
    synthesize_database(tmp_path, patients=8, size=96, seed=3, workers=2)
    assert _digest(tmp_path) == _digest(out)


def test_another_seed_gives_other_images(small_db, tmp_path):
    out, _ = small_db
    synthesize_database(tmp_path, patients=8, size=96, seed=4, workers=1)
    first = read_image(out / "sharp/P00000/P00000_00_IgG.tif")
    assert not np.array_equal(read_image(tmp_path / "sharp/P00000/P00000_00_IgG.tif"), first)


def test_manifest_has_one_row_per_stain_per_patient_with_every_label(small_db):
    out, manifest = small_db
    rows = read_manifest(manifest)
    assert len(rows) == 8 * len(DEFAULT_STAINS)
    assert Counter(r.stain for r in rows) == {s: 8 for s in DEFAULT_STAINS}
    for row in rows:
        assert row.diagnosis in CLASSES and 0 <= row.blur_level < 5 and row.split in ("train", "val", "test")
        assert (out / row.path).is_file() and (out / row.sharp_path).is_file()
        assert row.extra["blur_kind"] in ("gaussian", "defocus", "spatial")
        assert read_image(out / row.extra["blur_map"]).shape == (3, 3)


def test_images_are_16_bit_and_the_size_asked_for(small_db):
    out, manifest = small_db
    row = read_manifest(manifest)[0]
    for path in (row.path, row.sharp_path):
        image = read_image(out / path)
        assert image.dtype == np.uint16 and image.shape == (96, 96)


def test_patients_never_share_a_split(small_db):
    _, manifest = small_db
    splits = {}
    for row in read_manifest(manifest):
        assert splits.setdefault(row.patient_id, row.split) == row.split


def test_class_proportions_set_the_patient_counts(tmp_path):
    manifest = synthesize_database(tmp_path, patients=8, images_per_patient=1, size=64, classes=("IgAN", "MN", "LN"),
                                   proportions=(0.5, 0.25, 0.25), stains=("IgG",), workers=1)
    assert Counter(r.diagnosis for r in read_manifest(manifest)) == {"IgAN": 4, "MN": 2, "LN": 2}


def test_eight_bit_database_is_written_as_uint8(tmp_path):
    manifest = synthesize_database(tmp_path, patients=1, images_per_patient=1, size=64, bit_depth=8, workers=1)
    assert read_image(tmp_path / read_manifest(manifest)[0].path).dtype == np.uint8


def test_without_degradation_images_are_their_own_sharp_reference(tmp_path):
    manifest = synthesize_database(tmp_path, patients=2, size=64, degrade=False, workers=1)
    rows = read_manifest(manifest)
    assert all(r.blur_level == 0 and r.path == r.sharp_path for r in rows)
    assert not (tmp_path / "images").exists()


def test_blur_levels_option_restricts_the_levels_drawn(tmp_path):
    manifest = synthesize_database(tmp_path, patients=4, size=64, blur_levels=(0, 4), workers=1)
    assert {r.blur_level for r in read_manifest(manifest)} == {0, 4}


def test_unknown_class_is_refused_naming_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"no synthetic pattern for class\(es\) FSGS \(the generator knows IgAN, MN, DN, LN\)"):
        synthesize_database(tmp_path, patients=1, classes=("FSGS",))


def test_rendered_glomerulus_is_float32_in_the_unit_range():
    image = render_glomerulus(np.random.default_rng(0), "LN", "C1q", 128)
    assert image.dtype == np.float32 and image.shape == (128, 128)
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.01


def _overlap(mask, signal):
    return float((mask * signal).sum() / (signal.sum() * mask.mean()))  # > 1: signal concentrates on the mask


def _pattern_overlaps(diagnosis, stain, seeds=range(6)):
    wall, mesangium = [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        patient = sample_patient(rng, diagnosis, (stain,))
        anatomy = build_anatomy(rng, 256, sclerosis_p=0.0, nodular=False)
        signal = deposits(rng, anatomy, patient.findings[stain])
        wall.append(_overlap(anatomy.wall, signal))
        mesangium.append(_overlap(anatomy.mesangium, signal))
    return np.mean(wall), np.mean(mesangium)


def test_igan_iga_deposits_sit_in_the_mesangium():
    wall, mesangium = _pattern_overlaps("IgAN", "IgA")
    assert mesangium > 1.5 * wall


def test_mn_igg_deposits_sit_along_the_capillary_walls():
    wall, mesangium = _pattern_overlaps("MN", "IgG")
    assert wall > 1.5 * mesangium


def test_dn_igg_is_linear_along_basement_membranes_outside_the_glomerulus_too():
    rng = np.random.default_rng(1)
    patient = sample_patient(rng, "DN", ("albumin",))
    anatomy = build_anatomy(rng, 256, nodular=True)
    signal = deposits(rng, anatomy, patient.findings["albumin"])
    assert _overlap(anatomy.tbm + anatomy.capsule, signal) > 2.0


@pytest.mark.parametrize(("diagnosis", "positive"), [("LN", {"IgG", "IgA", "IgM", "C3", "C1q"}),
                                                      ("IgAN", {"IgA", "C3"}), ("MN", {"IgG", "C3"}),
                                                      ("DN", {"IgG"})])
def test_stains_that_light_up_follow_the_class(diagnosis, positive):
    rates = Counter()
    for seed in range(200):
        for stain, finding in sample_patient(np.random.default_rng(seed), diagnosis, DEFAULT_STAINS).findings.items():
            rates[stain] += finding.grade > 0
    assert {stain for stain, n in rates.items() if n >= 0.75 * 200} == positive


def _intensity_features(image):
    histogram = np.histogram(image, bins=64, range=(0.0, 1.0))[0] / image.size
    stats = [image.mean(), image.std(), *np.percentile(image, (1, 5, 25, 50, 75, 95, 99, 99.9))]
    return np.concatenate([histogram, stats])


def test_intensity_statistics_alone_classify_at_most_60_percent_of_sharp_images():
    features, labels, patients = [], [], []
    for p in range(96):
        diagnosis = CLASSES[p % 4]
        patient = sample_patient(patient_rng(11, p), diagnosis, DEFAULT_STAINS)
        for k, stain in enumerate(DEFAULT_STAINS):
            features.append(_intensity_features(render_image(image_rngs(11, p, k)[0], patient, stain, 256)))
            labels.append(p % 4)
            patients.append(p)
    features, labels, patients = np.array(features), np.array(labels), np.array(patients)
    test = patients % 4 == patients // 4 % 4  # a quarter of the patients, every class among them
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    model.fit(features[~test], labels[~test])
    accuracy = model.score(features[test], labels[test])
    assert accuracy <= 0.60


def test_a_synth_pool_worker_ignores_ctrl_c_and_leaves_stopping_to_the_main_process():
    import signal
    from multiprocessing import get_context

    from ifrt.train.data.synth import _init_worker

    with get_context("spawn").Pool(1, initializer=_init_worker) as pool:
        assert pool.apply(signal.getsignal, (signal.SIGINT,)) == signal.SIG_IGN
