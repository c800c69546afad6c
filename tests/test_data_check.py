"""`ifrt data check`: every planted fault is reported with its file; nothing is modified."""

import hashlib
import json

import numpy as np
import pytest
import tifffile

from ifrt.imageio import write_image_atomic
from ifrt.train.data.check import check_dataset
from ifrt.train.data.manifest import ManifestRow, write_manifest


def _image(seed=0, size=80, dtype=np.uint16):
    return np.random.default_rng(seed).integers(100, 4000, (size, size)).astype(dtype)


@pytest.fixture
def dataset(tmp_path):
    """A valid dataset: 2 patients x 2 images with sharp references."""
    rows = []
    for p in range(2):
        for k in range(2):
            name = f"p{p}/img{k}.tif"
            write_image_atomic(tmp_path / "images" / name, _image(10 * p + k))
            write_image_atomic(tmp_path / "sharp" / name, _image(10 * p + k + 100))
            rows.append(ManifestRow(path=f"images/{name}", patient_id=f"p{p}", stain="IgG", diagnosis="MN",
                                    blur_level=k, sharp_path=f"sharp/{name}", split="train" if p == 0 else "test"))
    write_manifest(tmp_path / "manifest.csv", rows)
    return tmp_path


def _edit_manifest(folder, old, new):
    path = folder / "manifest.csv"
    path.write_text(path.read_text().replace(old, new, 1))


def _problems(folder, **kwargs):
    report = check_dataset(folder, **kwargs)
    return [str(p) for p in report.problems]


def _digest(folder):
    return {p.as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_valid_dataset_has_no_problems(dataset):
    report = check_dataset(dataset)
    assert report.ok and report.rows == 4 and report.files == 8


def test_missing_image_is_reported_with_its_path(dataset):
    (dataset / "images/p0/img1.tif").unlink()
    assert _problems(dataset) == [f"{dataset / 'images/p0/img1.tif'}: image is missing (named at "
                                  f"{dataset / 'manifest.csv'}:3)"]


def test_missing_sharp_reference_is_reported(dataset):
    (dataset / "sharp/p1/img0.tif").unlink()
    assert _problems(dataset) == [f"{dataset / 'sharp/p1/img0.tif'}: sharp reference is missing (named at "
                                  f"{dataset / 'manifest.csv'}:4)"]


def test_unreadable_image_is_reported(dataset):
    (dataset / "images/p0/img0.tif").write_bytes(b"II*\x00" + b"\x07" * 40)
    [problem] = _problems(dataset)
    assert problem.startswith(f"{dataset / 'images/p0/img0.tif'}: cannot")


def test_zero_byte_image_is_reported(dataset):
    (dataset / "images/p1/img1.tif").write_bytes(b"")
    assert _problems(dataset) == [f"{dataset / 'images/p1/img1.tif'}: file is empty (0 bytes); the image was not "
                                  "written completely"]


def test_unknown_column_is_reported_with_a_suggestion(dataset):
    _edit_manifest(dataset, "diagnosis", "diagnosys")
    assert _problems(dataset) == [f"{dataset / 'manifest.csv'}: unknown column 'diagnosys' (did you mean "
                                  "'diagnosis'? user columns must start with 'x_')"]


def test_user_columns_with_the_x_prefix_are_allowed(dataset):
    text = (dataset / "manifest.csv").read_text().splitlines()
    text = [text[0] + ",x_scanner"] + [line + ",A" for line in text[1:]]
    (dataset / "manifest.csv").write_text("\n".join(text) + "\n")
    assert _problems(dataset) == []


def test_patient_in_two_splits_is_reported(dataset):
    _edit_manifest(dataset, "images/p0/img1.tif,p0,IgG,MN,1,sharp/p0/img1.tif,train",
                   "images/p0/img1.tif,p0,IgG,MN,1,sharp/p0/img1.tif,val")
    assert _problems(dataset) == [f"{dataset / 'manifest.csv'}: patient p0 is in splits train, val: one patient "
                                  "must stay in one split (rerun `ifrt data split`)"]


def test_image_smaller_than_the_minimum_is_reported(dataset):
    write_image_atomic(dataset / "images/p1/img0.tif", _image(size=40))
    write_image_atomic(dataset / "sharp/p1/img0.tif", _image(size=40))
    problems = _problems(dataset, min_size=64)
    assert f"{dataset / 'images/p1/img0.tif'}: image is 40x40, smaller than the minimum 64x64 (drop it or use a " \
           "larger crop)" in problems
    assert len(problems) == 2  # the image and its sharp reference


def test_constant_image_is_reported(dataset):
    write_image_atomic(dataset / "images/p0/img0.tif", np.full((80, 80), 500, np.uint16))
    assert _problems(dataset) == [f"{dataset / 'images/p0/img0.tif'}: image is constant (every pixel is 500); it "
                                  "holds no signal"]


def test_non_finite_pixels_are_reported(dataset):
    data = _image().astype(np.float32)
    data[3, 4], data[5, 6] = np.nan, np.inf
    tifffile.imwrite(dataset / "images/p1/img1.tif", data)
    assert _problems(dataset) == [f"{dataset / 'images/p1/img1.tif'}: 2 non-finite pixel(s) (NaN or infinity); fix "
                                  "the export that wrote them"]


def test_sharp_reference_of_another_size_is_reported(dataset):
    write_image_atomic(dataset / "sharp/p0/img0.tif", _image(size=96))
    [problem] = _problems(dataset)
    assert problem == f"{dataset / 'sharp/p0/img0.tif'}: sharp reference is 96x96 but its image images/p0/img0.tif is 80x80"


def test_malformed_blur_level_names_the_manifest_line(dataset):
    _edit_manifest(dataset, "MN,1,", "MN,one,")
    assert _problems(dataset) == [f"{dataset / 'manifest.csv'}:3: blur_level 'one' is not an integer (leave it empty "
                                  "if unknown)"]


def test_path_leaving_the_dataset_is_reported(dataset):
    _edit_manifest(dataset, "images/p0/img0.tif,", "../elsewhere.tif,")
    [problem] = _problems(dataset)
    assert problem.endswith("path '../elsewhere.tif' leaves the dataset folder; keep files under the manifest's folder")


def test_check_modifies_nothing(dataset):
    (dataset / "images/p0/img1.tif").write_bytes(b"")
    _edit_manifest(dataset, "diagnosis", "diagnosys")
    before = _digest(dataset)
    assert not check_dataset(dataset).ok
    assert _digest(dataset) == before


def test_command_lists_every_problem_and_exits_non_zero(dataset, ifrt_cli):
    (dataset / "images/p0/img1.tif").unlink()
    write_image_atomic(dataset / "images/p1/img0.tif", np.zeros((80, 80), np.uint16))
    proc = ifrt_cli("data", "check", str(dataset))
    assert proc.returncode == 1
    assert f"{dataset / 'images/p0/img1.tif'}: image is missing" in proc.stdout
    assert f"{dataset / 'images/p1/img0.tif'}: image is constant" in proc.stdout
    assert "2 problem(s)" in proc.stderr


def test_command_json_report_of_a_valid_dataset_exits_zero(dataset, ifrt_cli):
    proc = ifrt_cli("data", "check", str(dataset), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True and report["rows"] == 4 and report["problems"] == []


def test_blur_level_beyond_the_default_levels_is_reported(dataset):
    _edit_manifest(dataset, "images/p0/img1.tif,p0,IgG,MN,1", "images/p0/img1.tif,p0,IgG,MN,9")
    assert _problems(dataset) == [f"{dataset / 'manifest.csv'}:3: blur_level 9 is outside the levels 0..4 "
                                  "(ifrt's default degradation)"]


def test_blur_levels_come_from_synth_json_when_there_is_one(dataset):
    (dataset / "synth.json").write_text(json.dumps({"degrade_config": {"sigmas": [0.0, 1.0]}}))
    _edit_manifest(dataset, "images/p0/img1.tif,p0,IgG,MN,1", "images/p0/img1.tif,p0,IgG,MN,2")
    assert _problems(dataset) == [f"{dataset / 'manifest.csv'}:3: blur_level 2 is outside the levels 0..1 "
                                  f"({dataset / 'synth.json'})"]


def test_report_lists_the_blur_levels_found(dataset):
    assert check_dataset(dataset).blur_levels == [0, 1]


def test_manifest_without_a_required_column_is_an_error(dataset, ifrt_cli):
    (dataset / "manifest.csv").write_text("path,stain\nimages/p0/img0.tif,IgG\n")
    proc = ifrt_cli("data", "check", str(dataset))
    assert proc.returncode == 1
    assert f"{dataset / 'manifest.csv'}: missing required column 'patient_id'" in proc.stdout


def test_manifest_without_rows_is_an_error(dataset):
    (dataset / "manifest.csv").write_text("path,patient_id\n")
    assert _problems(dataset) == [f"{dataset / 'manifest.csv'}: no rows: the manifest names no image"]
