"""The HTML report of an infer run: every image with its pictures, failures listed, patients table."""

import json
import re

import numpy as np
import pytest
import tifffile

import ifrt
from ifrt.infer import run_infer
from ifrt.report import write_html_report
from ifrt.sources import expand_sources


def _infer(package, tmp_path, names, *, junk=(), **options):
    """`run_infer` over a folder of random 96x128 uint16 TIFFs named `names` and files `junk` holding bytes
    that are no image; returns (images folder, output folder)."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in names:
        tifffile.imwrite(folder / name, (rng.random((96, 128)) * 4000).astype(np.uint16))
    for name, data in dict(junk).items():
        (folder / name).write_bytes(data)
    run_infer(ifrt.Session(package, backend="ort"), expand_sources([str(folder)]), tmp_path / "out", **options)
    return folder, tmp_path / "out"


def test_report_embeds_input_overlay_and_deblurred_per_image_and_lists_patients(tiny_package, tmp_path):
    _, out = _infer(tiny_package, tmp_path, ("P1_a.tif", "P1_b.tif", "P2_a.tif"),
                    junk={"broken.tif": b"II*\x00garbage"}, deblur=True, overlay=True, patient_pattern=r"(P\d)_")
    page = write_html_report(out).read_text()
    assert page.count("data:image/png;base64,") == 3 * 3
    assert "P1_a.tif" in page and "quality map (green: in focus, red: blurred)" in page
    assert re.search(r"failed: .*broken\.tif", page)
    assert "<td>P1</td>" in page and "<td>P2</td>" in page
    assert "3 of 4 images analysed" in page and "not for clinical use" in page


def test_an_unreliable_image_says_why(tiny_package, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "blank.tif", np.zeros((64, 64), np.uint16))
    session = ifrt.Session(tiny_package, backend="ort", quality_threshold=0.0)
    run_infer(session, expand_sources([str(folder)]), tmp_path / "out")
    page = write_html_report(tmp_path / "out").read_text()
    assert '<span class="warn">unreliable: no structure above the pixel noise' in page


def test_a_quality_just_below_the_threshold_is_not_printed_as_the_threshold(tmp_path):
    """0.4984 < 0.5 is unreliable: shown rounded up as 0.50 it would read as a contradiction."""
    record = {"source": str(tmp_path / "P1_a.tif"), "status": "ok", "patient_id": "P1", "diagnosis": "LN",
              "reliable": False, "probabilities": {"LN": 0.6, "MN": 0.4}, "quality": 0.498384, "blur_level": 2,
              "warnings": ["image quality 0.498 is below 0.5 (blur level 2)"]}
    (tmp_path / "results.jsonl").write_text(json.dumps(record) + "\n")
    patient = {"patient_id": "P1", "diagnosis": "LN", "probabilities": {"LN": 0.6, "MN": 0.4}, "images": 1,
               "mean_quality": 0.4996, "unreliable_images": 1}
    (tmp_path / "patients.json").write_text(json.dumps([patient]))
    page = write_html_report(tmp_path).read_text()
    assert "quality 0.498 · blur level 2" in page
    assert "<td>0.499</td>" in page


@pytest.mark.parametrize(("quality", "shown"), [(0.498384, "0.498"), (0.4999999, "0.499"), (0.5, "0.500"),
                                                (0.29, "0.290"), (1.0, "1.000"), (0.0, "0.000")])
def test_quality_text_rounds_down_to_three_decimals(quality, shown):
    from ifrt.result import quality_text

    assert quality_text(quality) == shown


def test_a_deleted_deblurred_or_overlay_file_is_named_as_missing(tiny_package, tmp_path):
    _, out = _infer(tiny_package, tmp_path, ("P1_a.tif",), deblur=True, overlay=True)
    record = json.loads((out / "results.jsonl").read_text())
    (out / record["deblurred_path"]).unlink()
    (out / record["overlay_path"]).unlink()
    page = write_html_report(out).read_text()
    assert page.count("data:image/png;base64,") == 1  # the input only
    assert f'deblurred image {record["deblurred_path"]} is missing' in page
    assert f'quality-map overlay {record["overlay_path"]} is missing' in page
    assert "1 of 1 images analysed" in page


def test_the_patients_table_counts_and_names_each_patients_failed_images(tiny_package, tmp_path):
    _, out = _infer(tiny_package, tmp_path, ("P1_a.tif", "P2_a.tif"), junk={"P1_b.tif": b"not an image"},
                    patient_pattern=r"(P\d)_")
    page = write_html_report(out).read_text()
    assert "<th>images analysed</th><th>images failed</th>" in page
    assert re.search(r"<tr><td>P1</td>.*?<td>1</td><td>1 \(P1_b\.tif\)</td>", page)
    assert re.search(r"<tr><td>P2</td>.*?<td>1</td><td>0</td>", page)


def test_a_patient_whose_images_all_failed_has_a_row_without_a_diagnosis(tmp_path):
    record = {"source": str(tmp_path / "P1_a.tif"), "status": "failed", "patient_id": "P1",
              "error": f"{tmp_path / 'P1_a.tif'}: not a TIFF file"}
    (tmp_path / "results.jsonl").write_text(json.dumps(record) + "\n")
    patient = {"patient_id": "P1", "diagnosis": None, "reliable": False, "probabilities": None, "images": 0,
               "unreliable_images": 0, "mean_quality": None, "no_diagnosis": "every image failed",
               "failed_images": 1, "failed_sources": [record["source"]]}
    (tmp_path / "patients.json").write_text(json.dumps([patient]))
    page = write_html_report(tmp_path).read_text()
    assert ('<tr><td>P1</td><td class="warn">no diagnosis: every image failed</td><td>-</td><td>0</td>'
            "<td>1 (P1_a.tif)</td><td>-</td><td>0</td></tr>") in page
    assert "0 of 1 images analysed" in page


def test_an_input_image_that_cannot_be_read_is_named_with_the_reason(tiny_package, tmp_path):
    folder, out = _infer(tiny_package, tmp_path, ("P1_a.tif", "P1_b.tif"), deblur=True, overlay=True)
    (folder / "P1_a.tif").unlink()
    (folder / "P1_b.tif").write_bytes(b"not an image any more")
    page = write_html_report(out).read_text()
    assert f"input image not shown: {folder / 'P1_a.tif'}: file not found (check the path)" in page
    assert f"input image not shown: {folder / 'P1_b.tif'}: not a TIFF, PNG or JPEG file" in page
    # The overlay and the deblurred image, which the folder still holds, are shown for both.
    assert page.count("data:image/png;base64,") == 2 * 2 and page.count("<figcaption>deblurred (own display range)</figcaption>") == 2
    assert "2 of 2 images analysed" in page
