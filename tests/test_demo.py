"""The README's first command ends in `ifrt demo`: the bundled default model on the bundled samples."""

import json
from pathlib import Path

import pytest

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


def test_every_bundled_graph_was_exported_from_the_bundled_model_json():
    """A model.json retrained or edited without exporting again would leave graphs of another model."""
    pytest.importorskip("onnx")
    from ifrt.export.metadata import config_hash

    expected = config_hash(json.loads((DEFAULT_MODEL_DIR / "model.json").read_text()))
    for graph in ("full", "focus", "full.fp16", "focus.fp16"):
        sidecar = json.loads((DEFAULT_MODEL_DIR / f"{graph}.onnx.json").read_text())
        assert sidecar["metadata"]["training_config_sha256"] == expected, graph


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


def test_default_model_backends_agree_on_every_sample():
    from ifrt.commands.demo import SAMPLES

    ort_session, torch_session = ifrt.Session(backend="ort"), ifrt.Session(backend="torch")
    for path in sorted(SAMPLES.glob("images/*/*.tif")):
        a, b = ort_session.predict(path), torch_session.predict(path)
        assert abs(a.probabilities - b.probabilities).max() <= 1e-4, path
        assert a.label == b.label and a.blur_level == b.blur_level, path
        assert abs(a.quality - b.quality) <= 1e-4, path


def test_default_model_export_report_meets_the_fp32_and_fp16_contract():
    report = json.loads((DEFAULT_MODEL_DIR / "export_report.json").read_text())
    assert report["problems"] == []
    for graph in ("full", "focus"):
        entry = report["graphs"][graph]
        assert max(entry["fp32_vs_torch"]["max_abs_diff"].values()) <= 1e-4
        assert entry["unsupported_by_tensorrt"] == []
        assert all(v == 1.0 for v in entry["fp32_vs_torch"]["argmax_agreement"].values())
    full16 = report["graphs"]["full"]["fp16_vs_torch"]
    assert full16["argmax_agreement"]["diagnosis_logits"] >= 0.995
    assert full16["deblurred_psnr"]["drift_db"] <= 0.1
    for graph, checks in (("full", 5), ("focus", 3)):  # every fp16 check the export makes, within its limit
        fp16_checks = report["graphs"][graph]["fp16_checks"]
        assert len(fp16_checks) == checks, graph
        for name, check in fp16_checks.items():
            assert check["value"] >= check["min"] if "min" in check else check["value"] <= check["max"], name


def test_every_bundled_graph_records_the_weights_it_was_exported_from():
    from ifrt.model_package import sha256_file

    weights = sha256_file(DEFAULT_MODEL_DIR / "model.safetensors")
    for graph in ("full", "focus", "full.fp16", "focus.fp16"):
        sidecar = json.loads((DEFAULT_MODEL_DIR / f"{graph}.onnx.json").read_text())
        assert sidecar["metadata"]["weights_sha256"] == weights, graph


def test_default_model_fp16_graph_gives_the_fp32_diagnosis_on_every_sample():
    from ifrt.commands.demo import SAMPLES

    fp32, fp16 = ifrt.Session(backend="ort"), ifrt.Session(backend="ort", precision="fp16")
    for path in sorted(SAMPLES.glob("images/*/*.tif")):
        a, b = fp32.predict(path), fp16.predict(path)
        assert a.label == b.label, path
        assert abs(a.quality - b.quality) <= 1e-2, path


def test_demo_table_never_shows_a_quality_below_the_threshold_as_the_threshold(ifrt_cli, tmp_path):
    """A sample's quality of 0.498 (threshold 0.5, unreliable) reads 0.498, never 0.50 beside "reliable: no"."""
    proc = ifrt_cli("demo", "-o", str(tmp_path / "demo"), "--backend", "ort", env={"COLUMNS": "160"})
    assert proc.returncode == 0, proc.stderr
    shown = {cells[0]: cells[2] for cells in (
        [c.strip() for c in line.strip("│ ").split("│")] for line in proc.stdout.splitlines() if ".tif" in line)}
    records = read_records(tmp_path / "demo")
    assert len(shown) == len(records) == 8
    for r in records:
        name = Path(r["source"]).name
        assert float(shown[name]) <= r["quality"], name  # rounded down, never up
        if r["quality"] < 0.5:
            assert float(shown[name]) < 0.5, name
