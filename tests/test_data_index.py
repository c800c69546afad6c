"""`ifrt data index`: a manifest from ROOT/<diagnosis>/<patient>/<image>."""

import numpy as np
import pytest

from ifrt.imageio import write_image_atomic
from ifrt.train.data.index import index_folder
from ifrt.train.data.manifest import ManifestError, read_manifest


def _touch(path):
    write_image_atomic(path, np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))


@pytest.fixture
def lab(tmp_path):
    for rel in ("IgAN/pat1/a.tif", "IgAN/pat1/IgG/b.png", "MN/pat2/c.tif", "unknown/pat3/d.tif"):
        _touch(tmp_path / rel)
    (tmp_path / "MN/pat2/notes.txt").write_text("not an image")
    return tmp_path


def test_rows_take_diagnosis_and_patient_from_the_folders(lab):
    rows = index_folder(lab).rows
    assert [(r.path, r.patient_id, r.diagnosis) for r in rows] == [
        ("IgAN/pat1/IgG/b.png", "pat1", "IgAN"), ("IgAN/pat1/a.tif", "pat1", "IgAN"),
        ("MN/pat2/c.tif", "pat2", "MN"), ("unknown/pat3/d.tif", "pat3", None)]


def test_labels_the_layout_does_not_give_stay_unknown(lab):
    for row in index_folder(lab).rows:
        assert (row.stain, row.blur_level, row.sharp_path, row.split) == (None, None, None, None)


def test_images_outside_patient_folders_are_skipped_and_listed(lab):
    _touch(lab / "MN" / "loose.tif")
    _touch(lab / "top.tif")
    index = index_folder(lab)
    assert index.skipped == ["top.tif", "MN/loose.tif"]
    assert "MN/loose.tif" not in [r.path for r in index.rows]


def test_a_patient_folder_under_two_diagnoses_is_refused(lab):
    _touch(lab / "MN" / "pat1" / "x.tif")
    with pytest.raises(ManifestError, match="patient folder 'pat1' also appears under 'IgAN'"):
        index_folder(lab)


def test_prefix_patients_keeps_repeated_folder_names_apart(lab):
    _touch(lab / "MN" / "pat1" / "x.tif")
    patients = {r.patient_id for r in index_folder(lab, prefix_patients=True).rows}
    assert patients == {"IgAN/pat1", "MN/pat1", "MN/pat2", "unknown/pat3"}


def test_a_manifest_above_the_root_gets_paths_through_the_root(lab):
    rows = index_folder(lab, manifest_dir=lab.parent).rows
    assert rows[0].path == f"{lab.name}/IgAN/pat1/IgG/b.png"


def test_a_manifest_outside_the_dataset_is_refused(lab, tmp_path_factory):
    with pytest.raises(ManifestError, match="the manifest must sit in"):
        index_folder(lab, manifest_dir=tmp_path_factory.mktemp("elsewhere"))


def test_command_writes_a_manifest_that_passes_check(lab, ifrt_cli):
    proc = ifrt_cli("data", "index", str(lab))
    assert proc.returncode == 0, proc.stderr
    assert len(read_manifest(lab)) == 4
    assert ifrt_cli("data", "check", str(lab)).returncode == 0


def test_command_refuses_to_replace_a_manifest_without_force(lab, ifrt_cli):
    (lab / "manifest.csv").write_text("path,patient_id\n")
    proc = ifrt_cli("data", "index", str(lab))
    assert proc.returncode == 2 and "pass --force" in proc.stderr
    assert (lab / "manifest.csv").read_text() == "path,patient_id\n"
