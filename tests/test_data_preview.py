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
