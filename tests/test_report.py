"""The HTML report of an infer run: every image with its pictures, failures listed, patients table."""

import re

import numpy as np
import tifffile

import ifrt
from ifrt.infer import run_infer
from ifrt.report import write_html_report
from ifrt.sources import expand_sources


def test_report_embeds_input_overlay_and_deblurred_per_image_and_lists_patients(tiny_package, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("P1_a.tif", "P1_b.tif", "P2_a.tif"):
        tifffile.imwrite(folder / name, (rng.random((96, 128)) * 4000).astype(np.uint16))
    (folder / "broken.tif").write_bytes(b"II*\x00garbage")
    session = ifrt.Session(tiny_package, backend="ort")
    run_infer(session, expand_sources([str(folder)]), tmp_path / "out", deblur=True, overlay=True,
              patient_pattern=r"(P\d)_")
    page = write_html_report(tmp_path / "out").read_text()
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
