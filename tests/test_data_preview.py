"""`ifrt data preview`: a contact sheet, one row per class and one column per blur level."""

import dataclasses

import cv2
import numpy as np
import pytest

from ifrt.imageio import read_image
from ifrt.train.data.manifest import read_manifest
from ifrt.train.data.preview import captions, preview_sheet
from ifrt.train.data.synth import synthesize_database


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    out = tmp_path_factory.mktemp("db")
    synthesize_database(out, patients=4, size=64, blur_levels=(0, 2, 4), workers=1)
    return out


def test_sheet_has_a_cell_per_class_and_level(db, tmp_path):
    sheet = read_image(preview_sheet(db, tmp_path / "sheet.png", thumb=64))
    # 110 px of class labels + 3 levels x (64 + 4); 28 px header + 4 classes x (64 + 4)
    assert sheet.shape == (28 + 4 * 68, 110 + 3 * 68)


def test_cells_show_the_images_in_green(db, tmp_path):
    colour = cv2.imread(str(preview_sheet(db, tmp_path / "sheet.png", thumb=64)))
    rows = read_manifest(db)
    i = sorted({r.diagnosis for r in rows}).index(rows[0].diagnosis)
    j = sorted({r.blur_level for r in rows}).index(rows[0].blur_level)
    cell = colour[28 + i * 68:28 + i * 68 + 64, 110 + j * 68:110 + j * 68 + 64]  # the first row's cell
    assert cell[..., 1].std() > 20                       # an image, not an empty cell
    assert np.median(cell[..., 0]) == 0 and np.median(cell[..., 2]) == 0  # green, apart from the label text


def test_command_writes_the_sheet(db, tmp_path, ifrt_cli):
    proc = ifrt_cli("data", "preview", str(db), "--out", str(tmp_path / "s.png"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "s.png").stat().st_size > 0


def test_blurred_cells_name_their_blur_kind_when_the_manifest_records_it(db):
    rows = read_manifest(db)
    blurred = [r for r in rows if r.blur_level]
    assert blurred and all(captions(r)[1] == r.extra["blur_kind"] for r in blurred)
    assert {captions(r)[1] for r in blurred} <= {"gaussian", "defocus", "spatial"}
    in_focus = next(r for r in rows if r.blur_level == 0)
    assert captions(in_focus) == (f"{in_focus.stain}  {in_focus.patient_id}", None)
    unrecorded = dataclasses.replace(in_focus, blur_level=3, extra={})
    assert captions(unrecorded)[1] is None


def test_sheet_can_be_a_jpeg(db, tmp_path):
    sheet = cv2.imread(str(preview_sheet(db, tmp_path / "sheet.jpg", thumb=64)))
    assert sheet.shape == (28 + 4 * 68, 110 + 3 * 68, 3)


@pytest.mark.parametrize("name", ["sheet.tif", "sheet"])
def test_command_refuses_a_sheet_name_that_cannot_hold_colour(db, tmp_path, ifrt_cli, name):
    proc = ifrt_cli("data", "preview", str(db), "--out", str(tmp_path / name))
    assert proc.returncode == 2
    assert proc.stderr == (f"ifrt data preview: {tmp_path / name}: a contact sheet is a colour image; "
                           "name it .png or .jpg\n")
    assert not (tmp_path / name).exists()


def test_command_refuses_a_cell_too_small_to_see(db, tmp_path, ifrt_cli):
    proc = ifrt_cli("data", "preview", str(db), "--out", str(tmp_path / "s.png"), "--thumb", "0")
    assert proc.returncode == 2
    assert "argument --thumb: must be at least 16, got 0" in proc.stderr and "Traceback" not in proc.stderr


def test_command_names_an_output_folder_it_cannot_write(db, tmp_path, ifrt_cli):
    (tmp_path / "file").write_text("not a folder")
    proc = ifrt_cli("data", "preview", str(db), "--out", str(tmp_path / "file" / "s.png"))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"ifrt data preview: {tmp_path / 'file'}") and "Traceback" not in proc.stderr


def test_a_long_class_name_widens_the_label_column_instead_of_running_into_the_cells(db, tmp_path):
    import shutil

    from ifrt.train.data.manifest import write_manifest

    long_name = "Lupus nephritis class IV"
    copy = tmp_path / "db"
    shutil.copytree(db, copy)
    rows = [dataclasses.replace(r, diagnosis=long_name) if r.diagnosis == "LN" else r for r in read_manifest(copy)]
    write_manifest(copy / "manifest.csv", rows)
    sheet = cv2.imread(str(preview_sheet(copy, tmp_path / "sheet.png", thumb=64)))
    label = cv2.getTextSize(long_name, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 3)[0][0]
    assert sheet.shape[1] == label + 16 + 3 * 68 > 110 + 3 * 68
