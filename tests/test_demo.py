"""The README's first command ends in `ifrt demo`: the bundled default model on the bundled samples."""

import json

import ifrt
from ifrt.infer import read_records
from ifrt.model_package import DEFAULT_MODEL_DIR, open_model


def test_default_model_is_bundled_verified_and_carries_its_metadata():
    package = open_model()
    assert package.root == DEFAULT_MODEL_DIR
    assert set(package.graphs) == {"full", "focus", "full.fp16", "focus.fp16"}
    assert sorted(package.class_names) == ["DN", "IgAN", "LN", "MN"]
    assert package.blur_levels == 5 and package.weights is not None
    assert (DEFAULT_MODEL_DIR / "MODEL_CARD.md").read_text().lower().count("not for clinical use") >= 1


def test_session_without_arguments_uses_the_default_model_and_reads_quality_of_a_sample(tmp_path):
    session = ifrt.Session(backend="ort")
    from ifrt.commands.demo import SAMPLES

    sharp = session.predict(SAMPLES / "images/P00001/P00001_01_IgA.tif")  # blur level 0
    blurred = session.predict(SAMPLES / "images/P00001/P00001_00_IgG.tif")  # blur level 3
    assert sharp.quality > blurred.quality
    assert sharp.blur_level < blurred.blur_level


def test_demo_writes_a_report_for_every_sample(ifrt_cli, tmp_path):
    proc = ifrt_cli("demo", "-o", str(tmp_path / "demo"), "--backend", "ort")
    assert proc.returncode == 0, proc.stderr
    records = read_records(tmp_path / "demo")
    assert len(records) == 8 and all(r["status"] == "ok" for r in records)
    page = (tmp_path / "demo/report.html").read_text()
    assert page.count("data:image/png;base64,") == 8 * 3
    patients = json.loads((tmp_path / "demo/patients.json").read_text())
    assert len(patients) == 4
    assert "report:" in proc.stdout
