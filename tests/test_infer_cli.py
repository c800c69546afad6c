"""`ifrt infer` on the command line: bad arguments are one-line errors with exit code 2, inputs that name
nothing are reported like missing files, and every message is one line whatever the terminal width."""

import json

import numpy as np
import pytest
import tifffile

from ifrt import cli
from ifrt import infer as infer_module
from ifrt.infer import read_records


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        tifffile.imwrite(images / f"P{i}_img.tif", (np.random.default_rng(i).random((64, 64)) * 3000).astype(np.uint16))
    return images


@pytest.fixture
def infer(tiny_package, capsys):
    """Run `ifrt infer ARGS` in this process: (exit code, stderr lines)."""

    def run(*args: str) -> tuple[int, list[str]]:
        code = cli.main(["infer", *args, "--model", str(tiny_package), "--backend", "ort", "--quiet"])
        return code, capsys.readouterr().err.splitlines()

    return run


def _error(lines: list[str]) -> str:
    """The one error line (the start line names the model and comes first when the model was loaded)."""
    errors = [line for line in lines if not line.startswith("ifrt infer: ") or " images, model " not in line]
    assert len(errors) == 1, lines
    return errors[0]


def test_an_invalid_patient_regex_is_a_one_line_usage_error(infer, folder, tmp_path):
    code, lines = infer(str(folder), "-o", str(tmp_path / "out"), "--patient-from", r"(P\d+")
    assert code == 2
    assert _error(lines).startswith(r"ifrt infer: patient pattern '(P\d+' is not a valid regular expression")


def test_a_malformed_patient_manifest_is_a_one_line_usage_error(infer, folder, tmp_path):
    (tmp_path / "bad.csv").write_text("path,x\nimages/P0_img.tif,1\n")
    code, lines = infer(str(folder), "-o", str(tmp_path / "out"), "--patient-from", str(tmp_path / "bad.csv"))
    assert code == 2 and "missing column(s) patient_id" in _error(lines)


def test_a_missing_patient_manifest_is_an_error_not_a_regex(infer, folder, tmp_path):
    code, lines = infer(str(folder), "-o", str(tmp_path / "out"), "--patient-from", str(tmp_path / "missing.csv"))
    assert code == 2 and _error(lines) == f"ifrt infer: --patient-from {tmp_path / 'missing.csv'}: manifest not found"


def test_a_patient_regex_matching_nothing_warns_that_no_patients_json_was_written(infer, folder, tmp_path):
    code, lines = infer(str(folder), "-o", str(tmp_path / "out"), "--patient-from", r"(Q\d)_")
    assert code == 0 and not (tmp_path / "out/patients.json").exists()
    assert r"ifrt infer: --patient-from (Q\d)_ matched none of the images, so no patients.json was written" in lines


def test_images_a_patient_regex_leaves_unmatched_are_counted_in_a_warning(infer, folder, tmp_path):
    code, lines = infer(str(folder), "-o", str(tmp_path / "out"), "--patient-from", r"(P0)_")
    assert code == 0
    assert [p["patient_id"] for p in json.loads((tmp_path / "out/patients.json").read_text())] == ["P0"]
    assert ("ifrt infer: 1 of 2 images matched no patient ((P0)_); they are left out of patients.json"
            in lines)


def test_fp16_on_a_weights_only_model_is_refused_with_the_reason(tiny_package, folder, tmp_path, capsys):
    import shutil

    pytest.importorskip("torch")
    run = tmp_path / "run" / "best"
    run.mkdir(parents=True)
    for name in ("model.safetensors", "model.json"):
        shutil.copy(tiny_package / name, run / name)
    code = cli.main(["infer", str(folder), "-o", str(tmp_path / "out"), "--model", str(run.parent),
                     "--precision", "fp16", "--quiet"])
    error = capsys.readouterr().err
    assert code == 2 and "Traceback" not in error
    assert "the torch backend runs fp32 only, not fp16" in error


def test_int8_runs_the_int8_graphs_and_without_them_names_the_export(tiny_package, folder, tmp_path, capsys):
    code = cli.main(["infer", str(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_package),
                     "--precision", "int8", "--backend", "ort", "--quiet"])
    error = capsys.readouterr().err
    assert code == 2
    assert error.strip().splitlines()[-1] == (
        f"ifrt infer: {tiny_package}: no int8 ONNX graphs here (found: focus, focus.fp16, full, full.fp16), so the "
        f"ort backend cannot run this model; export them with `ifrt export onnx {tiny_package} -o {tiny_package} "
        "--int8`")


def test_each_message_is_one_line_however_long(infer, folder, tmp_path):
    deep = folder / ("a_rather_long_folder_name_" * 4)
    deep.mkdir()
    (deep / "trunc.tif").write_bytes((folder / "P0_img.tif").read_bytes()[:3000])
    code, lines = infer(str(folder), str(deep / "trunc.tif"), "-o", str(tmp_path / "out"))
    assert code == 1
    failed = [line for line in lines if line.startswith("failed: ")]
    assert len(failed) == 1 and len(failed[0]) > 200
    assert failed[0].endswith("export it again")


def test_an_output_folder_that_is_a_file_is_named_as_such(infer, folder, tmp_path):
    (tmp_path / "taken").write_text("x")
    for out in (tmp_path / "taken", tmp_path / "taken/sub"):
        code, lines = infer(str(folder), "-o", str(out))
        assert code == 2
        assert _error(lines) == f"ifrt infer: cannot write results in {out}: {tmp_path / 'taken'} is a file, not a folder"


def test_permission_denied_before_any_image_says_so_without_claiming_finished_images(infer, folder, tmp_path,
                                                                                      monkeypatch):
    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(infer_module, "open", denied, raising=False)
    code, lines = infer(str(folder), "-o", str(tmp_path / "out"))
    assert code == 1
    message = _error(lines)
    assert "permission denied" in message and "finished so far" not in message


def test_a_missing_listed_file_names_the_list_file(infer, folder, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("images/P0_img.tif\nimages/gone.tif\n")
    code, lines = infer(f"@{listing}", "-o", str(tmp_path / "out"))
    assert code == 1
    assert (f"failed: {tmp_path / 'images/gone.tif'}: file not found (listed in {listing}; its paths are relative "
            "to the list file's folder)") in lines


def test_a_pattern_matching_nothing_is_recorded_and_the_rest_proceed(infer, folder, tmp_path):
    code, lines = infer(str(folder), str(folder / "*.png"), "-o", str(tmp_path / "out"))
    assert code == 1
    assert f"failed: {folder / '*.png'}: the pattern matches no files" in lines
    assert "ifrt infer: 2 done, 0 already done, 1 failed" in lines[-1]
    assert [r["status"] for r in read_records(tmp_path / "out")] == ["failed", "ok", "ok"]


def test_no_input_left_is_a_usage_error(infer, folder, tmp_path):
    code, lines = infer(str(folder / "*.png"), "-o", str(tmp_path / "out"))
    assert code == 2 and lines[-1] == "ifrt infer: no images found in the given sources"
    assert not (tmp_path / "out").exists()


def test_a_folder_with_only_subfolders_hints_at_recursive(infer, folder, tmp_path):
    code, lines = infer(str(tmp_path), "-o", str(tmp_path / "out"))
    assert code == 2
    assert lines[-1] == f"ifrt infer: no images found in the given sources; {tmp_path} has only subfolders (use --recursive)"


def test_a_nan_image_is_reported_without_internal_prefixes(infer, folder, tmp_path):
    tifffile.imwrite(folder / "nan.tif", np.full((64, 64), np.nan, np.float32))
    code, lines = infer(str(folder / "nan.tif"), str(folder / "P0_img.tif"), "-o", str(tmp_path / "out"))
    assert code == 1
    assert f"failed: {folder / 'nan.tif'}: 4096 pixels are NaN or infinite; fix the file or mask them before inference" \
        in lines


def test_a_too_large_image_names_the_option_that_raises_the_limit(infer, folder, tmp_path):
    code, lines = infer(str(folder), "-o", str(tmp_path / "out"), "--max-pixels", "100")
    assert code == 1 and "raise --max-pixels" in lines[1]


@pytest.mark.parametrize("option", [("--max-pixels", "-1"), ("--max-pixels", "0"), ("--quality-threshold", "2"),
                                    ("--quality-threshold", "nan"), ("--quality-threshold", "-0.1")])
def test_out_of_range_numbers_are_refused(infer, folder, tmp_path, option):
    with pytest.raises(SystemExit) as exited:
        infer(str(folder), "-o", str(tmp_path / "out"), *option)
    assert exited.value.code == 2


def test_pages_all_counts_files_and_pages(infer, tmp_path):
    stack = (np.random.default_rng(0).random((3, 64, 64)) * 3000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    code, lines = infer(str(tmp_path / "stack.tif"), "-o", str(tmp_path / "out"), "--pages", "all")
    assert code == 0
    assert lines[0].startswith("ifrt infer: 1 file(s), 3 pages, model ")
    assert "3 done" in lines[-1]
    assert json.loads((tmp_path / "out/run.json").read_text())["options"]["pages"] == "all"


def test_a_folder_in_use_by_another_run_is_a_one_line_error(infer, folder, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, pathlib\nfrom ifrt.infer import folder_lock\n"
                               f"with folder_lock(pathlib.Path({str(out)!r})):\n    print('held', flush=True)\n"
                               "    sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        code, lines = infer(str(folder), "-o", str(out))
        assert code == 2
        assert _error(lines) == (f"ifrt infer: {out} is in use by another `ifrt infer` (pid {holder.pid}); wait for "
                                 "it to finish or write to another -o folder")
    finally:
        holder.communicate("")
    code, _ = infer(str(folder), "-o", str(out))
    assert code == 0


def test_without_a_terminal_progress_comes_as_lines(tiny_package, folder, tmp_path, capsys, monkeypatch):
    import ifrt.commands

    monkeypatch.setattr(ifrt.commands, "LOG_SECONDS", 0.0)
    assert cli.main(["infer", str(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_package),
                     "--backend", "ort"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert "ifrt infer: 0 of 2 analysed" in lines and any(line.startswith("ifrt infer: 2 of 2 analysed")
                                                          for line in lines)


def test_a_rewritten_input_is_named_as_analysed_again(infer, folder, tmp_path):
    import os

    out = tmp_path / "out"
    assert infer(str(folder), "-o", str(out))[0] == 0
    image = folder / "P0_img.tif"
    tifffile.imwrite(image, np.full((64, 64), 900, np.uint16))
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    code, lines = infer(str(folder), "-o", str(out))
    assert code == 0
    assert "ifrt infer: 1 image(s) changed since their recorded result and were analysed again" in lines
    assert lines[-1] == f"ifrt infer: 1 done, 1 already done, 0 failed; results in {out}"


def test_a_folder_in_use_is_refused_before_the_model_is_opened(infer, folder, tmp_path, monkeypatch):
    from _folder_holder import held_by_another_process

    import ifrt.session

    def never(*args, **kwargs):
        raise AssertionError("the model was opened for a folder in use")

    monkeypatch.setattr(ifrt.session, "Session", never)
    out = tmp_path / "out"
    out.mkdir()
    with held_by_another_process(out, ".ifrt-infer.lock", "ifrt infer") as pid:
        code, lines = infer(str(folder), "-o", str(out))
    assert code == 2
    assert lines == [f"ifrt infer: {out} is in use by another `ifrt infer` (pid {pid}); wait for it to finish or "
                     "write to another -o folder"]
