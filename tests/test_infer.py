"""`ifrt infer`: outputs, bad files recorded while the run continues, reruns skip finished work,
interrupts keep finished results, patient reports."""

import json

import numpy as np
import pytest
import tifffile

import ifrt
from ifrt.infer import read_records, run_infer
from ifrt.sources import SourceError, expand_sources


def _frame(seed, size=96):
    rng = np.random.default_rng(seed)
    return (rng.random((size, size)) * 3000 + 500).astype(np.uint16)


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"P{i % 2}_img{i}.tif", _frame(i), description="stain=IgG",
                         resolution=(2.0, 2.0))
    return folder


@pytest.fixture(scope="module")
def session(tiny_package):
    return ifrt.Session(tiny_package, backend="ort")


def _plant_bad_files(folder):
    (folder / "empty.tif").write_bytes(b"")
    (folder / "truncated.tif").write_bytes((folder / "P0_img0.tif").read_bytes()[:200])
    tifffile.imwrite(folder / "nan.tif", np.full((64, 64), np.nan, np.float32))
    tifffile.imwrite(folder / "int32.tif", np.zeros((64, 64), np.int32))
    tifffile.imwrite(folder / "huge.tif", np.zeros((300, 300), np.uint8))


def test_infer_cli_writes_jsonl_summary_deblurred_and_overlays(ifrt_cli, tiny_package, images, tmp_path):
    out = tmp_path / "out"
    proc = ifrt_cli("infer", str(images), "-o", str(out), "--model", str(tiny_package), "--backend", "ort",
                    "--deblur", "--overlay", "--patient-from", r"(P\d)_", "--quiet")
    assert proc.returncode == 0, proc.stderr
    records = read_records(out)
    assert len(records) == 3 and all(r["status"] == "ok" for r in records)
    assert set(records[0]) >= {"diagnosis", "probabilities", "quality", "blur_level", "quality_map", "timings_ms"}
    summary = (out / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("source,status,patient_id,diagnosis") and len(summary) == 4
    deblurred = out / records[0]["deblurred_path"]
    with tifffile.TiffFile(deblurred) as tif:
        assert tif.pages[0].dtype == np.uint16 and tif.pages[0].shape == (96, 96)
        assert tif.pages[0].description == "stain=IgG"
        assert tif.pages[0].tags["XResolution"].value == (2, 1)
    assert (out / records[0]["overlay_path"]).stat().st_size > 0
    patients = json.loads((out / "patients.json").read_text())
    assert [p["patient_id"] for p in patients] == ["P0", "P1"] and patients[0]["images"] == 2


def test_bad_files_are_recorded_with_reasons_and_the_run_continues(session, images, tmp_path):
    _plant_bad_files(images)
    session.max_pixels = 256 * 256
    try:
        report = run_infer(session, expand_sources([str(images)]), tmp_path / "out")
    finally:
        session.max_pixels = 1 << 28
    assert report.done == 3
    reasons = dict(report.failed)
    assert "file is empty (0 bytes)" in reasons[str(images / "empty.tif")]
    assert "truncated.tif" in reasons[str(images / "truncated.tif")]
    assert "NaN or infinite" in reasons[str(images / "nan.tif")]
    assert "int32 pixels are not supported" in reasons[str(images / "int32.tif")]
    assert "pixel" in reasons[str(images / "huge.tif")] and "90000" in reasons[str(images / "huge.tif")]
    assert report.exit_code == 1


def test_cli_exit_code_is_1_when_a_file_failed(ifrt_cli, tiny_package, images, tmp_path):
    (images / "empty.tif").write_bytes(b"")
    proc = ifrt_cli("infer", str(images), "-o", str(tmp_path / "out"), "--model", str(tiny_package),
                    "--backend", "ort", "--quiet")
    assert proc.returncode == 1
    assert "empty.tif" in proc.stderr and "3 done" in proc.stderr and "1 failed" in proc.stderr


def test_rerun_skips_finished_images_unless_overwrite(session, images, tmp_path):
    sources = expand_sources([str(images)])
    first = run_infer(session, sources, tmp_path / "out")
    second = run_infer(session, sources, tmp_path / "out")
    assert (first.done, second.done, second.skipped) == (3, 0, 3)
    third = run_infer(session, sources, tmp_path / "out", overwrite=True)
    assert third.done == 3 and len(read_records(tmp_path / "out")) == 3


def test_interrupt_keeps_finished_results_and_rerun_completes(session, images, tmp_path):
    sources = expand_sources([str(images)])

    def interrupt_at_third(index, total, source):
        if index == 2 and source:  # the closing call (source "") reports where the run stopped
            raise KeyboardInterrupt

    report = run_infer(session, sources, tmp_path / "out", progress=interrupt_at_third)
    assert report.interrupted and report.exit_code == 130 and report.done == 2
    assert len((tmp_path / "out/summary.csv").read_text().splitlines()) == 3  # header + 2 finished
    rerun = run_infer(session, sources, tmp_path / "out")
    assert (rerun.done, rerun.skipped) == (1, 2)


def test_torn_last_line_from_a_kill_is_ignored(session, images, tmp_path):
    out = tmp_path / "out"
    run_infer(session, expand_sources([str(images)])[:1], out)
    with open(out / "results.jsonl", "a") as f:
        f.write('{"source": "half-writ')
    assert len(read_records(out)) == 1
    assert run_infer(session, expand_sources([str(images)]), out).done == 2


def test_sources_expand_globs_and_list_files(images, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("# two images\nimages/P0_img0.tif\n\nimages/P1_img1.tif\n")
    assert [p.name for p in expand_sources([f"@{listing}"])] == ["P0_img0.tif", "P1_img1.tif"]
    assert len(expand_sources([str(images / "P0_*.tif"), str(images / "P0_img0.tif")])) == 2
    with pytest.raises(SourceError, match="list file not found"):
        expand_sources([f"@{tmp_path / 'nope.txt'}"])


def test_every_page_of_a_multipage_tiff_is_its_own_image_with_pages_all(session, tmp_path):
    stack = np.stack([_frame(s) for s in range(3)])
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    out = tmp_path / "out"
    report = run_infer(session, [tmp_path / "stack.tif"], out, deblur=True, pages="all")
    records = read_records(out)
    assert report.done == 3
    assert [r["source"] for r in records] == [f"{tmp_path / 'stack.tif'}#page={p}" for p in range(3)]
    assert [r["page"] for r in records] == [0, 1, 2]
    assert sorted(p.name for p in (out / "deblurred").iterdir()) == [f"{tmp_path.name}__stack_p{p}.tif" for p in range(3)]
    first_only = run_infer(session, [tmp_path / "stack.tif"], tmp_path / "first")
    assert first_only.done == 1 and read_records(tmp_path / "first")[0]["source"] == str(tmp_path / "stack.tif")


def test_output_names_replace_spaces_in_the_file_stem_as_in_its_folder():
    from pathlib import Path

    from ifrt.infer import output_stem

    assert output_stem(Path("Patient P00000/IgA img 1.tif")) == "Patient_P00000__IgA_img_1"
    assert output_stem(Path("run-2/slide_3.v2.tif")) == "run-2__slide_3.v2"  # safe names are kept as they are


def test_a_run_reports_how_many_images_matched_no_patient(session, images, tmp_path):
    report = run_infer(session, sorted(images.iterdir()), tmp_path / "out", patient_pattern=r"(P0)_")
    assert (report.analysed, report.unmatched, report.patients) == (3, 1, 1)


def test_an_image_the_model_gives_no_finite_outputs_for_is_recorded_as_failed(session, images, tmp_path):
    # Float pixels at both ends of float32 (a fill value such as -3.4e38 beside +3.4e38): the normalization's
    # range overflows, and the model gives NaN probabilities.
    extreme = np.where(np.random.default_rng(0).random((64, 64)) > 0.5, 3e38, -3e38).astype(np.float32)
    tifffile.imwrite(images / "P0_extreme.tif", extreme)
    report = run_infer(session, sorted(images.iterdir()), tmp_path / "out", patient_pattern=r"(P\d)_")
    assert report.done == 3 and report.patients == 2
    assert "the model's outputs are not finite" in dict(report.failed)[str(images / "P0_extreme.tif")]
    assert all(json.loads(line) for line in (tmp_path / "out/results.jsonl").read_text(encoding="ascii").splitlines())


def test_a_patient_whose_images_all_failed_is_listed_without_a_diagnosis(session, images, tmp_path):
    (images / "P1_img1.tif").write_bytes(b"not an image")
    report = run_infer(session, sorted(images.iterdir()), tmp_path / "out", patient_pattern=r"(P\d)_")
    assert (report.done, len(report.failed), report.patients) == (2, 1, 2)
    p0, p1 = json.loads((tmp_path / "out/patients.json").read_text())
    assert p0["images"] == 2 and p0["diagnosis"] is not None and "failed_images" not in p0
    assert p1 == {"patient_id": "P1", "diagnosis": None, "reliable": False, "probabilities": None, "images": 0,
                  "unreliable_images": 0, "mean_quality": None, "no_diagnosis": "every image failed",
                  "failed_images": 1, "failed_sources": [str(images / "P1_img1.tif")]}


def test_patients_json_keeps_no_earlier_diagnosis_when_every_image_failed_since(session, images, tmp_path):
    sources = sorted(images.iterdir())
    run_infer(session, sources, tmp_path / "out", patient_pattern=r"(P\d)_")
    assert all(p["diagnosis"] for p in json.loads((tmp_path / "out/patients.json").read_text()))
    for source in sources:  # re-acquired since, and now unreadable: every image's latest record is a failure
        source.write_bytes(b"not an image any more")
    report = run_infer(session, sources, tmp_path / "out", patient_pattern=r"(P\d)_")
    assert (len(report.failed), report.patients) == (3, 2)
    patients = json.loads((tmp_path / "out/patients.json").read_text())
    assert [(p["patient_id"], p["diagnosis"], p["probabilities"], p["failed_images"]) for p in patients] == [
        ("P0", None, None, 2), ("P1", None, None, 1)]


def test_patients_json_goes_when_no_image_with_a_patient_is_left(session, images, tmp_path):
    sources = sorted(images.iterdir())
    run_infer(session, sources, tmp_path / "out", patient_pattern=r"(P\d)_")
    for source in sources:
        source.write_bytes(b"not an image any more")
    run_infer(session, sources, tmp_path / "out", patient_pattern=r"(P\d)_")
    # With every image failed the folder holds no result, so another patient source may be used; it matches none.
    report = run_infer(session, sources, tmp_path / "out", patient_pattern=r"(Q\d)_")
    assert (len(report.failed), report.patients) == (3, 0)
    assert not (tmp_path / "out/patients.json").exists()


def test_an_onnxruntime_error_on_one_image_fails_that_image_and_the_run_goes_on(tiny_package, images, tmp_path,
                                                                                 monkeypatch):
    # onnxruntime raises its own Exception subclasses (Fail, RuntimeException, ...), not RuntimeError.
    import onnxruntime as ort
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail

    runs = []

    class RunOutOfMemoryOnce(ort.InferenceSession):
        def run(self, output_names, input_feed, run_options=None):
            runs.append(1)
            if len(runs) == 2:
                raise Fail("BFCArena::AllocateRawInternal Failed to allocate memory for requested buffer")
            return super().run(output_names, input_feed, run_options)

    monkeypatch.setattr(ort, "InferenceSession", RunOutOfMemoryOnce)
    sources = sorted(images.iterdir())
    report = run_infer(ifrt.Session(tiny_package, backend="ort"), sources, tmp_path / "out")
    assert (report.done, len(report.failed), report.exit_code) == (2, 1, 1)
    source, reason = report.failed[0]
    assert source == str(sources[1])
    assert "full graph" in reason and "Failed to allocate memory" in reason
    assert [r["status"] for r in read_records(tmp_path / "out")] == ["ok", "failed", "ok"]


def test_patients_json_counts_and_names_a_patients_failed_images(session, images, tmp_path):
    run_infer(session, [images / "P0_img0.tif"], tmp_path / "alone", patient_pattern=r"(P\d)_")
    (images / "P0_img2.tif").write_bytes(b"not an image")
    (images / "P0_empty.tif").write_bytes(b"")
    report = run_infer(session, sorted(images.iterdir()), tmp_path / "out", patient_pattern=r"(P\d)_")
    assert (report.done, len(report.failed)) == (2, 2)
    p0, p1 = json.loads((tmp_path / "out/patients.json").read_text())
    assert (p0["images"], p0["failed_images"]) == (1, 2)
    assert p0["failed_sources"] == [str(images / "P0_empty.tif"), str(images / "P0_img2.tif")]
    assert "failed_images" not in p1 and "failed_sources" not in p1
    # The diagnosis is that of the analysed image alone, as if the failed ones had not been given.
    [alone] = json.loads((tmp_path / "alone/patients.json").read_text())
    assert {k: v for k, v in p0.items() if not k.startswith("failed_")} == alone
