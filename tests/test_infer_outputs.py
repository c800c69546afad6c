"""`ifrt infer` outputs: one set of output files per input even when names collide, each file analysed once
whatever path names it, the output folder never read back as input, deblurred TIFFs that read back, and
maps without float32 noise."""

import json
import re

import cv2
import numpy as np
import pytest
import tifffile

import ifrt
from ifrt.infer import read_records, run_infer
from ifrt.sources import collect_sources


def _frame(seed, size=64):
    rng = np.random.default_rng(seed)
    return (rng.random((size, size)) * 3000 + 500).astype(np.uint16)


@pytest.fixture(scope="module")
def session(tiny_package):
    return ifrt.Session(tiny_package, backend="ort")


@pytest.fixture
def colliding(tmp_path):
    """Six inputs whose readable output names pair up: same stem with another suffix, same folder name
    under different parents, and suffixes differing only in case and spelling."""
    for folder in ("bad", "a/x", "b/x", "sub"):
        (tmp_path / folder).mkdir(parents=True)
    tifffile.imwrite(tmp_path / "bad/good.tif", _frame(0))
    cv2.imwrite(str(tmp_path / "bad/good.png"), _frame(1))
    tifffile.imwrite(tmp_path / "a/x/img.tif", _frame(2))
    tifffile.imwrite(tmp_path / "b/x/img.tif", _frame(3))
    tifffile.imwrite(tmp_path / "sub/x.TIF", _frame(4))
    tifffile.imwrite(tmp_path / "sub/x.tiff", _frame(5))
    return [tmp_path / p for p in ("bad/good.tif", "bad/good.png", "a/x/img.tif", "b/x/img.tif", "sub/x.TIF",
                                   "sub/x.tiff")]


def test_inputs_with_the_same_folder_and_stem_get_their_own_output_files(session, colliding, tmp_path):
    out = tmp_path / "out"
    report = run_infer(session, colliding, out, deblur=True, overlay=True)
    records = read_records(out)
    assert report.done == 6
    assert len({r["deblurred_path"] for r in records}) == 6 and len({r["overlay_path"] for r in records}) == 6
    assert len(list((out / "deblurred").iterdir())) == 6 and len(list((out / "overlays").iterdir())) == 6
    for record, source in zip(records, colliding, strict=True):  # each record points at its own image's output
        assert record["source"] == str(source)
        expected = tifffile.imread(source) if source.suffix != ".png" else cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
        assert tifffile.imread(out / record["deblurred_path"]).shape == expected.shape


def test_output_names_are_stable_across_reruns(session, colliding, tmp_path):
    run_infer(session, colliding, tmp_path / "one", deblur=True)
    run_infer(session, colliding, tmp_path / "two", deblur=True)
    names = [sorted(p.name for p in (tmp_path / run / "deblurred").iterdir()) for run in ("one", "two")]
    assert names[0] == names[1] and len(names[0]) == 6


def test_a_later_input_does_not_overwrite_an_earlier_image_with_the_same_name(session, colliding, tmp_path):
    out = tmp_path / "out"
    first, second = colliding[2], colliding[3]  # a/x/img.tif, b/x/img.tif
    run_infer(session, [first], out, deblur=True)
    kept = (out / "deblurred/x__img.tif").read_bytes()
    report = run_infer(session, [second], out, deblur=True)
    assert report.done == 1
    assert (out / "deblurred/x__img.tif").read_bytes() == kept
    assert len(list((out / "deblurred").iterdir())) == 2


def test_the_same_file_named_twice_is_analysed_once_and_counted_once(ifrt_cli, tiny_package, tmp_path):
    (tmp_path / "P1").mkdir()
    tifffile.imwrite(tmp_path / "P1/img.tif", _frame(0))
    tifffile.imwrite(tmp_path / "P1/other.tif", _frame(1))
    proc = ifrt_cli("infer", "P1/img.tif", str(tmp_path / "P1/img.tif"), "P1/other.tif", "-o", "out", "--model",
                    str(tiny_package), "--backend", "ort", "--patient-from", r"(P\d)", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("1 input(s) name a file already given") == 1
    assert len(read_records(tmp_path / "out")) == 2
    assert json.loads((tmp_path / "out/patients.json").read_text())[0]["images"] == 2


def test_a_rerun_by_absolute_path_skips_images_done_by_relative_path(session, tmp_path, monkeypatch):
    (tmp_path / "images").mkdir()
    for i in range(2):
        tifffile.imwrite(tmp_path / f"images/img{i}.tif", _frame(i))
    monkeypatch.chdir(tmp_path)
    relative = collect_sources(["images"]).paths
    run_infer(session, relative, tmp_path / "out")
    rerun = run_infer(session, [p.resolve() for p in relative], tmp_path / "out")
    assert (rerun.done, rerun.skipped) == (0, 2)
    assert len((tmp_path / "out/summary.csv").read_text().splitlines()) == 3  # header + 2 images


def test_a_recursive_search_leaves_out_the_output_folder_inside_it(session, tmp_path):
    source = tmp_path / "slides"
    (source / "day1").mkdir(parents=True)
    tifffile.imwrite(source / "day1/img.tif", _frame(0))
    out = source / "results"
    run_infer(session, collect_sources([str(source)], recursive=True, exclude=out).paths, out, deblur=True,
              overlay=True)
    assert (out / "deblurred").is_dir() and (out / "overlays").is_dir()
    again = collect_sources([str(source)], recursive=True, exclude=out)
    assert again.paths == [source / "day1/img.tif"]


@pytest.mark.parametrize("shape, planar", [((3, 64, 64), "separate"), ((64, 64, 3), "contig")])
def test_deblurred_tiff_of_a_multisample_input_reads_back_with_its_resolution(session, tmp_path, shape, planar):
    source = tmp_path / "rgb.tif"
    tifffile.imwrite(source, (np.random.default_rng(0).random(shape) * 3000).astype(np.uint16),
                     photometric="rgb", planarconfig=planar, resolution=(3.0, 3.0))
    out = tmp_path / "out"
    assert run_infer(session, [source], out, deblur=True).done == 1
    deblurred = out / read_records(out)[0]["deblurred_path"]
    assert tifffile.imread(deblurred).shape == (64, 64)
    with tifffile.TiffFile(deblurred) as tif:
        assert tif.pages[0].tags["XResolution"].value == (3, 1)
        assert '"shape": [3' not in (tif.pages[0].description or "")


def test_maps_in_results_are_rounded_without_float32_noise(session, tmp_path):
    tifffile.imwrite(tmp_path / "img.tif", _frame(0))
    run_infer(session, [tmp_path / "img.tif"], tmp_path / "out")
    record = read_records(tmp_path / "out")[0]
    maps_text = json.dumps([record["quality_map"], record["certainty"]])
    assert re.search(r"\d\.\d{4,}", maps_text) is None  # 3 decimals at most, not 0.4869999885559082
