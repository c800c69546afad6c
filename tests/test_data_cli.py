"""`ifrt data synth` and `ifrt data split` from the command line, and the data tools' torch-free imports."""

import json
import subprocess
import sys

import numpy as np
import pytest
from _file_limits import file_size_limit

from ifrt.train.data.manifest import ManifestRow, read_manifest, write_manifest


def test_synth_command_writes_a_dataset_that_passes_check(tmp_path, ifrt_cli):
    proc = ifrt_cli("data", "synth", str(tmp_path), "--patients", "2", "--size", "64", "--classes", "MN,LN",
                    "--stains", "IgG,C3", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    rows = read_manifest(tmp_path)
    assert len(rows) == 4 and {r.diagnosis for r in rows} == {"MN", "LN"}
    check = ifrt_cli("data", "check", str(tmp_path))
    assert check.returncode == 0, check.stdout + check.stderr


def test_synth_command_reports_an_unknown_stain_without_a_traceback(tmp_path, ifrt_cli):
    proc = ifrt_cli("data", "synth", str(tmp_path), "--patients", "1", "--stains", "IgG,PLA2R")
    assert proc.returncode == 2
    assert proc.stderr.startswith("ifrt data synth: no synthetic pattern for stain(s) PLA2R")


def test_split_command_fills_splits_by_patient(tmp_path, ifrt_cli):
    rows = [ManifestRow(path=f"{p}_{k}.tif", patient_id=f"p{p}", diagnosis="MN" if p % 2 else "DN")
            for p in range(20) for k in range(2)]
    write_manifest(tmp_path / "manifest.csv", rows)
    proc = ifrt_cli("data", "split", str(tmp_path), "--by", "patient", "--fractions", "0.6,0.2,0.2", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    assert "train 12 patients, val 4 patients, test 4 patients" in proc.stdout
    split_of = {}
    for row in read_manifest(tmp_path):
        assert split_of.setdefault(row.patient_id, row.split) == row.split


def test_data_tools_run_without_importing_torch(tmp_path):
    write_manifest(tmp_path / "manifest.csv", [ManifestRow(path="x.tif", patient_id="p")])
    code = ("import sys; from ifrt.cli import main; "
            "import ifrt.train.data.synth, ifrt.train.data.degrade, ifrt.train.data.check, ifrt.train.data.preview; "
            f"main(['data', 'check', {str(tmp_path)!r}]); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_split_takes_the_dataset_lock_without_importing_the_synthetic_generator(tmp_path):
    rows = [ManifestRow(path=f"{p}.tif", patient_id=f"p{p}", diagnosis="MN") for p in range(3)]
    write_manifest(tmp_path / "manifest.csv", rows)
    code = ("import sys; from ifrt.cli import main; "
            f"print(main(['data', 'split', {str(tmp_path)!r}]), 'ifrt.train.data.synth' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip().splitlines()[-1] == "0 False"
    assert (tmp_path / ".ifrt-data.lock").is_file()


def test_split_command_warns_when_a_split_has_no_patient(tmp_path, ifrt_cli):
    write_manifest(tmp_path / "manifest.csv", [ManifestRow(path=f"{p}.tif", patient_id=f"p{p}", diagnosis="MN")
                                               for p in range(2)])
    proc = ifrt_cli("data", "split", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "train 1 patients, val 1 patients, test 0 patients" in proc.stdout
    assert "ifrt data split: warning: no patient in test: 2 patient(s) cannot fill 3 splits" in proc.stderr


def test_synth_of_twelve_patients_has_test_rows(tmp_path, ifrt_cli):
    proc = ifrt_cli("data", "synth", str(tmp_path), "--patients", "12", "--images-per-patient", "1",
                    "--size", "32", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
    assert {r.split for r in read_manifest(tmp_path)} == {"train", "val", "test"}


def test_synth_into_a_database_is_refused_without_force(tmp_path, ifrt_cli):
    args = ("data", "synth", str(tmp_path), "--images-per-patient", "1", "--size", "32", "--workers", "1")
    assert ifrt_cli(*args, "--patients", "3").returncode == 0
    before = sorted(p for p in tmp_path.rglob("*"))
    proc = ifrt_cli(*args, "--patients", "1")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"ifrt data synth: {tmp_path}: already holds a database (manifest.csv")
    assert "--force" in proc.stderr
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_synth_with_force_leaves_no_image_of_the_old_database(tmp_path, ifrt_cli):
    args = ("data", "synth", str(tmp_path), "--images-per-patient", "1", "--size", "32", "--workers", "1")
    assert ifrt_cli(*args, "--patients", "3").returncode == 0
    (tmp_path / "notes.txt").write_text("kept")
    proc = ifrt_cli(*args, "--patients", "1", "--force")
    assert proc.returncode == 0, proc.stderr
    images = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "images").rglob("*.tif"))
    assert images == [r.path for r in read_manifest(tmp_path)] == ["images/P00000/P00000_00_IgG.tif"]
    assert (tmp_path / "notes.txt").read_text() == "kept"
    assert ifrt_cli("data", "check", str(tmp_path), "--min-size", "32").returncode == 0


def test_synth_never_deletes_images_it_did_not_write_even_with_force(tmp_path, ifrt_cli):
    import tifffile

    (tmp_path / "images").mkdir()
    tifffile.imwrite(tmp_path / "images/mine.tif", np.zeros((64, 64), np.uint16))
    proc = ifrt_cli("data", "synth", str(tmp_path), "--patients", "3", "--size", "32", "--workers", "1", "--force")
    assert proc.returncode == 2
    assert "no synth.json, so this data was not written by ifrt data synth and is not replaced" in proc.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["images", "mine.tif"]


def test_data_errors_name_the_action(tmp_path, ifrt_cli):
    write_manifest(tmp_path / "manifest.csv", [ManifestRow(path="x.tif", patient_id="p")])
    proc = ifrt_cli("data", "index", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr == f"ifrt data index: {tmp_path / 'manifest.csv'} exists; pass --force to replace it\n"


# ---- arguments refused before anything is written; folders that cannot be the output --------------------------


def _main(capsys, *argv) -> tuple[int, str]:
    from ifrt import cli

    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse refuses a bad value with the usage
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("option", "message"), [
    (("--size", "65537"), "--size: must be at most 4096, got 65537"),
    (("--size", "31"), "--size: must be at least 32, got 31"),
    (("--images-per-patient", "0"), "--images-per-patient: must be at least 1, got 0"),
    (("--images-per-patient", "-1"), "--images-per-patient: must be at least 1, got -1"),
    (("--blur-levels", "1.5"), "--blur-levels: expected comma-separated integers, got '1.5'"),
    (("--blur-levels", "0,-1"), "--blur-levels: '0,-1': give integers of at least 0 (not -1)"),
    (("--classes", ","), "--classes: expected comma-separated names, got ','"),
    (("--workers", "0"), "--workers: must be at least 1, got 0"),
    (("--proportions", "nan,1,1,1"), "--proportions: expected finite numbers"),
])
def test_synth_arguments_out_of_range_are_refused_before_anything_is_written(tmp_path, capsys, option, message):
    code, err = _main(capsys, "data", "synth", tmp_path / "db", "--patients", "2", *option)
    assert code == 2 and message in err
    assert not (tmp_path / "db").exists()


def test_an_interrupted_synth_is_finished_by_the_same_command_keeping_the_patients_written(tmp_path, capsys,
                                                                                           monkeypatch):
    from ifrt.train.data import synth

    made = []

    def interrupted_after_one(job):
        if made:
            raise KeyboardInterrupt
        made.append(job)
        return real(job)

    real = synth._make_patient
    monkeypatch.setattr(synth, "_make_patient", interrupted_after_one)
    args = ("data", "synth", tmp_path, "--patients", "3", "--size", "32", "--workers", "1")
    assert _main(capsys, *args) == (130, "ifrt data synth: interrupted\n")
    assert (tmp_path / "synth.json").is_file() and not (tmp_path / "manifest.csv").exists()
    first = {p: p.stat().st_ino for p in (tmp_path / "images" / "P00000").iterdir()}
    monkeypatch.setattr(synth, "_make_patient", real)
    assert _main(capsys, *args, "--quiet")[0] == 0
    assert len(read_manifest(tmp_path)) == 15 and json.loads((tmp_path / "synth.json").read_text())["complete"]
    assert {p: p.stat().st_ino for p in (tmp_path / "images" / "P00000").iterdir()} == first  # not written again
    assert not (tmp_path / ".synth-patients").exists()


def test_an_interrupted_synth_with_other_settings_is_named_and_replaced_with_force(tmp_path, capsys, monkeypatch):
    from ifrt.train.data import synth

    def interrupted(job):
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "_make_patient", interrupted)
    args = ("data", "synth", tmp_path, "--patients", "3", "--size", "32", "--workers", "1")
    assert _main(capsys, *args) == (130, "ifrt data synth: interrupted\n")
    monkeypatch.undo()
    code, err = _main(capsys, *args, "--seed", "1")
    assert code == 2
    assert err == (f"ifrt data synth: {tmp_path}: holds an interrupted ifrt data synth with other settings (no "
                   "manifest.csv); finish it with the settings in its synth.json, replace it (ifrt data synth "
                   "--force) or choose an empty folder\n")
    assert _main(capsys, *args, "--seed", "1", "--force")[0] == 0
    assert len(read_manifest(tmp_path)) == 15 and json.loads((tmp_path / "synth.json").read_text())["seed"] == 1


def _synth(out, limit: int | None = None) -> subprocess.CompletedProcess:
    """`ifrt data synth` of 6 patients of 32x32 pixels (each image 2,256 bytes, the manifest 4,294) in a child."""
    return subprocess.run([sys.executable, "-m", "ifrt", "data", "synth", str(out), "--patients", "6", "--size", "32",
                           "--workers", "1", "--quiet"], capture_output=True, text=True, timeout=300,
                          preexec_fn=file_size_limit(limit) if limit else None)


def _assert_synth_refused(out, limit: int, named) -> None:
    """`_synth` under a file-size limit exits 2, its last line naming the file refused and how to finish."""
    refused = _synth(out, limit=limit)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        f"ifrt data synth: {named}: File too large; rerun the same command to finish (the patients already written "
        "are kept)")


def test_a_refused_image_is_named_and_the_same_command_finishes_the_synth(tmp_path):
    out = tmp_path / "db"
    _assert_synth_refused(out, 2000, out / "sharp" / "P00000" / "P00000_00_IgG.tif")
    assert json.loads((out / "synth.json").read_text())["complete"] is False
    finished = _synth(out)
    assert finished.returncode == 0, finished.stderr
    assert _synth(tmp_path / "whole").returncode == 0
    assert (out / "manifest.csv").read_bytes() == (tmp_path / "whole" / "manifest.csv").read_bytes()


def test_a_rerun_after_a_refused_manifest_keeps_the_images_written(tmp_path):
    out = tmp_path / "db"
    _assert_synth_refused(out, 3000, out / "manifest.csv")
    images = {p: p.stat().st_ino for p in out.rglob("*.tif")}
    assert len(images) == 6 * 5 * 3  # observed, sharp and blur map of every image
    assert _synth(out).returncode == 0
    assert {p: p.stat().st_ino for p in out.rglob("*.tif")} == images
    assert _synth(tmp_path / "whole").returncode == 0
    assert (out / "manifest.csv").read_bytes() == (tmp_path / "whole" / "manifest.csv").read_bytes()


def test_split_refuses_non_finite_fractions_and_an_empty_manifest(tmp_path, capsys):
    write_manifest(tmp_path / "manifest.csv", [ManifestRow(path="x.tif", patient_id="p")])
    code, err = _main(capsys, "data", "split", tmp_path, "--fractions", "nan,1,1")
    assert code == 2 and "--fractions: expected finite numbers, got 'nan,1,1'" in err
    write_manifest(tmp_path / "manifest.csv", [])
    code, err = _main(capsys, "data", "split", tmp_path)
    assert (code, err) == (2, f"ifrt data split: {tmp_path / 'manifest.csv'}: no rows: the manifest names no image\n")


def test_preview_refuses_a_huge_cell_and_an_empty_manifest(tmp_path, capsys):
    write_manifest(tmp_path / "manifest.csv", [])
    code, err = _main(capsys, "data", "preview", tmp_path, "--out", tmp_path / "sheet.png", "--thumb", "100000")
    assert code == 2 and "--thumb: must be at most 1024, got 100000" in err
    code, err = _main(capsys, "data", "preview", tmp_path, "--out", tmp_path / "sheet.png")
    assert code == 2 and "no rows: the manifest names no image" in err and not (tmp_path / "sheet.png").exists()


def test_check_of_a_missing_dataset_cannot_run(tmp_path, capsys):
    code, err = _main(capsys, "data", "check", tmp_path / "missing")
    assert code == 2
    assert err == (f"ifrt data check: {tmp_path / 'missing'}: manifest not found (create one with `ifrt data index` "
                   "or `ifrt data synth`)\n")


def test_split_and_index_refuse_a_folder_as_the_manifest_to_write(tmp_path, capsys):
    write_manifest(tmp_path / "manifest.csv", [ManifestRow(path="x.tif", patient_id="p")])
    (tmp_path / "out").mkdir()
    code, err = _main(capsys, "data", "split", tmp_path, "--out", tmp_path / "out")
    assert code == 2 and f"--out {tmp_path / 'out'} is a folder; give the manifest's file name" in err
    code, err = _main(capsys, "data", "index", tmp_path, "--out", tmp_path / "out")
    assert code == 2 and f"--out {tmp_path / 'out'} is a folder" in err


def test_index_lists_a_linked_image_once_and_counts_what_it_ignores(tmp_path, capsys):
    import tifffile

    (tmp_path / "MN/P1").mkdir(parents=True)
    tifffile.imwrite(tmp_path / "MN/P1/a.tif", np.zeros((64, 64), np.uint16))
    (tmp_path / "MN/P1/notes.txt").write_text("not an image")
    (tmp_path / "MN/P1_alias").symlink_to(tmp_path / "MN/P1")
    (tmp_path / "DN/P2 ").mkdir(parents=True)  # a trailing space, as the manifest reader would strip it
    tifffile.imwrite(tmp_path / "DN/P2 /b.tif", np.zeros((64, 64), np.uint16))
    code, err = _main(capsys, "data", "index", tmp_path)
    assert code == 0
    assert "skipped MN/P1_alias/a.tif: the same file as MN/P1/a.tif (a link), listed once" in err
    assert "ifrt data index: ignored 1 file(s) in patient folders that are not TIFF, PNG or JPEG" in err
    rows = read_manifest(tmp_path)
    assert sorted((r.path, r.patient_id) for r in rows) == [("DN/P2 /b.tif", "P2"), ("MN/P1/a.tif", "P1")]
    assert _main(capsys, "data", "split", tmp_path, "--fractions", "1,0,0")[0] == 0
    code, err = _main(capsys, "data", "index", tmp_path, "--force")
    assert code == 0 and "manifest.csv is replaced by a new index; its split column(s) are not carried over" in err


def test_check_paths_that_stay_inside_and_windows_separators(tmp_path, capsys):
    import tifffile

    (tmp_path / "images").mkdir()
    tifffile.imwrite(tmp_path / "images/a.tif", np.zeros((64, 64), np.uint16) + np.arange(64, dtype=np.uint16))
    write_manifest(tmp_path / "manifest.csv", [ManifestRow(path="images/../images/a.tif", patient_id="p"),
                                               ManifestRow(path="images\\a.tif", patient_id="q")])
    from ifrt import cli

    assert cli.main(["data", "check", str(tmp_path)]) == 1
    lines = "".join(capsys.readouterr())
    assert "leaves the dataset folder" not in lines
    assert "image is missing" in lines and "(its separators are backslashes: write the path with /)" in lines


def test_check_names_each_short_row_by_file_and_line_and_checks_the_others(tmp_path, capsys):
    from ifrt import cli

    (tmp_path / "manifest.csv").write_text("path,patient_id\na.tif,p\nb.tif\nc.tif,q,extra\n")
    assert cli.main(["data", "check", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    manifest = tmp_path / "manifest.csv"
    assert out.splitlines()[:2] == [f"{manifest}:3: 1 cells but the header has 2 columns",
                                    f"{manifest}:4: 3 cells but the header has 2 columns"]
    assert f"{tmp_path / 'a.tif'}: image is missing (named at {manifest}:2)" in out  # the good row is checked
    assert err.startswith(f"{manifest}: 3 rows, 1 files checked, 3 problem(s)")


def test_preview_reads_no_file_outside_the_dataset(tmp_path, capsys, monkeypatch):
    import tifffile

    from ifrt.train.data import preview

    outside = tmp_path / "outside.tif"
    tifffile.imwrite(outside, np.full((64, 64), 900, np.uint16))
    (tmp_path / "db").mkdir()
    write_manifest(tmp_path / "db/manifest.csv", [ManifestRow(path=str(outside), patient_id="p", diagnosis="MN"),
                                                  ManifestRow(path="../outside.tif", patient_id="q", diagnosis="MN")])
    read = []
    monkeypatch.setattr(preview, "read_image", lambda path, **options: read.append(path))
    assert _main(capsys, "data", "preview", tmp_path / "db", "--out", tmp_path / "sheet.png")[0] == 0
    assert read == []  # the cell shows "none": what `ifrt data check` refuses is not read


def test_synth_without_a_terminal_says_how_far_it_got(tmp_path, capsys, monkeypatch):
    import ifrt.commands

    monkeypatch.setattr(ifrt.commands, "LOG_SECONDS", 0.0)
    code, err = _main(capsys, "data", "synth", tmp_path, "--patients", "3", "--size", "32", "--workers", "1")
    assert code == 0
    assert [line for line in err.splitlines() if " of 3 patients written" in line][:2] == [
        "ifrt data synth: 0 of 3 patients written", "ifrt data synth: 1 of 3 patients written"]


def test_split_warns_of_rows_that_name_a_file_outside_the_dataset(tmp_path, capsys):
    write_manifest(tmp_path / "manifest.csv", [ManifestRow(path="/etc/hostname", patient_id="p"),
                                               ManifestRow(path="a.tif", patient_id="q")])
    code, err = _main(capsys, "data", "split", tmp_path)
    assert code == 0
    assert ("ifrt data split: warning: 1 row(s) name a file outside the dataset folder (first: /etc/hostname); "
            "`ifrt data check` reports them") in err
