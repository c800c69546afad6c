"""A bad input on the command line is one line on stderr, `ifrt <command>: <file>: <what is wrong>`, with a
non-zero exit and no traceback (unless IFRT_TRACEBACK=1); a bad argument is refused before anything runs."""

import json
import os
import subprocess
import sys

import pytest

from ifrt import cli


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """`ifrt ARGV` in this process: (exit code, stdout, stderr); argparse's exits count as exit codes."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """Three patients: one in each split."""
    from ifrt.train.data.synth import synthesize_database

    root = tmp_path_factory.mktemp("db")
    synthesize_database(root, patients=3, images_per_patient=1, size=64, workers=1)
    return root


@pytest.fixture
def not_a_folder(tmp_path):
    """A path under a regular file: writing there fails with an OSError even for root."""
    (tmp_path / "file").write_text("not a folder")
    return tmp_path / "file"


# ---- the central handler -------------------------------------------------------------------------------------


def test_user_error_prints_one_line_naming_the_command_and_exits_2(capsys, tmp_path):
    code, _, err = run_cli(capsys, "demo", "--model", str(tmp_path / "nomodel"), "-o", str(tmp_path / "out"))
    assert code == 2
    assert one_line_error(err) == f"ifrt demo: {tmp_path / 'nomodel'}: model folder not found"


def test_traceback_variable_shows_the_full_traceback(capsys, tmp_path, monkeypatch):
    from ifrt.model_package import ModelPackageError

    monkeypatch.setenv("IFRT_TRACEBACK", "1")
    with pytest.raises(ModelPackageError):
        cli.main(["demo", "--model", str(tmp_path / "nomodel"), "-o", str(tmp_path / "out")])


def test_programming_errors_keep_their_traceback():
    assert not cli.is_user_error(TypeError("unexpected keyword argument"))
    assert not cli.is_user_error(KeyError("model"))
    assert cli.is_user_error(FileNotFoundError(2, "No such file or directory", "nocfg.yaml"))


def test_os_error_message_names_its_file():
    error = PermissionError(13, "Permission denied", "ro/demo")
    assert cli.error_message(error) == "ro/demo: Permission denied"


def test_a_multi_line_message_becomes_one_line():
    assert cli.error_message(ValueError("first\n  second\n")) == "first; second"


# ---- demo ----------------------------------------------------------------------------------------------------


def test_demo_into_a_folder_it_cannot_create_names_it(capsys, not_a_folder):
    code, _, err = run_cli(capsys, "demo", "-o", str(not_a_folder / "demo"))
    assert code == 2
    assert one_line_error(err).startswith(f"ifrt demo: {not_a_folder / 'demo'}: ")


def test_demo_with_a_backend_that_is_not_installed_says_so(capsys, tmp_path):
    from ifrt.backends import available_backends

    if "trt" in available_backends():
        pytest.skip("TensorRT is available here")
    code, _, err = run_cli(capsys, "demo", "--backend", "trt", "-o", str(tmp_path / "out"))
    assert code == 2
    assert one_line_error(err).startswith("ifrt demo: ") and "TensorRT" in err


def test_demo_help_describes_the_command_and_its_backend_option(capsys):
    code, out, _ = run_cli(capsys, "demo", "--help")
    assert code == 0
    assert "OUT/report.html" in out and "inference backend (default auto" in out


# ---- data synth ----------------------------------------------------------------------------------------------


def test_synth_into_a_folder_it_cannot_create_names_it(capsys, not_a_folder):
    code, _, err = run_cli(capsys, "data", "synth", str(not_a_folder / "db"), "--patients", "1", "--size", "32")
    assert code == 2
    assert one_line_error(err).startswith(f"ifrt data synth: {not_a_folder / 'db'}: ")


# ---- eval ----------------------------------------------------------------------------------------------------


@pytest.fixture
def broken_model(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text("{bad")
    (model / "model.safetensors").write_bytes(b"")
    return model


def test_eval_of_a_missing_model_folder_names_it(capsys, database, tmp_path):
    pytest.importorskip("torch")
    code, _, err = run_cli(capsys, "eval", "--model", str(tmp_path / "nomodel"), "--data", str(database),
                           "--out", str(tmp_path / "report"))
    assert code == 2
    assert one_line_error(err).startswith(f"ifrt eval: {tmp_path / 'nomodel'}: no model.json here")


def test_eval_of_a_missing_database_names_its_manifest(capsys, broken_model, tmp_path):
    pytest.importorskip("torch")
    code, _, err = run_cli(capsys, "eval", "--model", str(broken_model), "--data", str(tmp_path / "nodata"),
                           "--out", str(tmp_path / "report"))
    assert code == 2
    assert one_line_error(err).startswith(f"ifrt eval: {tmp_path / 'nodata' / 'manifest.csv'}: manifest not found")


def test_eval_of_a_split_without_rows_says_how_to_fill_it(capsys, broken_model, tmp_path):
    pytest.importorskip("torch")
    from ifrt.train.data.manifest import ManifestRow, write_manifest

    write_manifest(tmp_path / "db" / "manifest.csv", [ManifestRow(path="a.tif", patient_id="p", split="train")])
    code, _, err = run_cli(capsys, "eval", "--model", str(broken_model), "--data", str(tmp_path / "db"),
                           "--out", str(tmp_path / "report"))
    assert code == 2
    assert one_line_error(err) == (f"ifrt eval: {tmp_path / 'db' / 'manifest.csv'}: no rows with split='test' "
                                   f"(choose another with --split, or assign splits with `ifrt data split "
                                   f"{tmp_path / 'db'}`)")


def test_eval_of_a_corrupt_model_json_names_the_file(capsys, database, broken_model, tmp_path):
    pytest.importorskip("torch")
    code, _, err = run_cli(capsys, "eval", "--model", str(broken_model), "--data", str(database),
                           "--out", str(tmp_path / "report"))
    assert code == 2
    assert one_line_error(err).startswith(f"ifrt eval: {broken_model / 'model.json'}: not valid JSON")


def test_eval_of_an_invalid_manifest_row_names_the_line(capsys, broken_model, tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "manifest.csv").write_text("path,patient_id,blur_level,split\na.tif,p,abc,test\n")
    code, _, err = run_cli(capsys, "eval", "--model", str(broken_model), "--data", str(tmp_path / "db"),
                           "--out", str(tmp_path / "report"))
    assert code == 2
    assert one_line_error(err).startswith(f"ifrt eval: {tmp_path / 'db' / 'manifest.csv'}:2: blur_level 'abc'")


def test_eval_refuses_max_images_below_one(capsys, tmp_path):
    code, _, err = run_cli(capsys, "eval", "--model", "m", "--data", "d", "--out", str(tmp_path), "--max-images", "0")
    assert code == 2
    assert "argument --max-images: must be at least 1, got 0" in err


def test_evaluate_refuses_max_images_below_one(tmp_path):
    pytest.importorskip("torch")
    from ifrt.train.evaluate import evaluate

    with pytest.raises(ValueError, match="max_images=0: give at least 1"):
        evaluate([tmp_path], tmp_path, tmp_path / "out", max_images=0)


# ---- bench ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "message"), [
    (["infer", "--sizes", "100"], "argument --sizes: '100': give positive multiples of 32 (not 100)"),
    (["infer", "--sizes", "abc"], "argument --sizes: expected comma-separated integers, got 'abc'"),
    (["infer", "--backends", "bogus"], "argument --backends: 'bogus': give backends among trt, ort, torch"),
    (["live", "--backend", "bogus"], "argument --backend: invalid choice: 'bogus'"),
    (["native", "--size", "0"], "argument --size: must be at least 32, got 0"),
    (["native", "--repeat", "0"], "argument --repeat: must be at least 1, got 0"),
    (["live", "--fps", "0"], "argument --fps: must be a number greater than 0, got 0"),
    (["live", "--fps", "-5"], "argument --fps: must be a number greater than 0, got -5"),
    (["live", "--fps", "nan"], "argument --fps: must be a number greater than 0, got nan"),
    (["live", "--fps", "fast"], "argument --fps: expected a number, got 'fast'"),
])
def test_bench_refuses_bad_arguments_before_measuring(capsys, argv, message):
    code, out, err = run_cli(capsys, "bench", *argv)
    assert code == 2 and out == ""
    assert message in err


@pytest.mark.parametrize(("argv", "message"), [
    (["infer", "--size", "256"],
     "--size is not an option of `ifrt bench infer`, which takes --model, --backends, --sizes, --batches, --repeat"),
    (["native", "--fps", "30"], "--fps is not an option of `ifrt bench native`, which takes --size, --repeat, --threads"),
    (["native", "--model", "m"], "--model is not an option of `ifrt bench native`"),
    (["live", "--threads", "2"], "--threads is not an option of `ifrt bench live`, which takes --model, --backend, "
                                 "--size, --frames, --fps"),
    (["live", "--repeat", "3"], "--repeat is not an option of `ifrt bench live`"),
    (["infer", "--backend", "ort"], "--backend is not an option of `ifrt bench infer`"),
])
def test_bench_refuses_an_option_its_target_does_not_use(capsys, argv, message):
    code, out, err = run_cli(capsys, "bench", *argv)
    assert code == 2 and out == ""
    assert message in one_line_error(err)


@pytest.mark.parametrize("target", ["infer", "live"])
def test_bench_of_a_missing_model_names_it_and_exits_2(capsys, tmp_path, target):
    code, out, err = run_cli(capsys, "bench", target, "--model", str(tmp_path / "nomodel"))
    assert code == 2 and out == ""
    assert one_line_error(err) == f"ifrt bench {target}: {tmp_path / 'nomodel'}: model folder not found"


class _InstantBackend:
    def run(self, graph, image):
        return {}


def _backends_where(monkeypatch, unavailable: dict[str, str]) -> None:
    """`ifrt bench infer` sees every backend but those in `unavailable` (name: reason) load instantly."""
    from ifrt import backends

    def create(package, name, **options):
        if name in unavailable:
            raise backends.BackendUnavailableError(unavailable[name])
        return _InstantBackend()

    monkeypatch.setattr(backends, "create_backend", create)
    monkeypatch.setattr(backends, "available_backends", lambda: [n for n in ("trt", "ort", "torch")
                                                                 if n not in unavailable])


def test_bench_infer_of_a_backend_asked_for_that_cannot_run_exits_2_with_the_reason(capsys, monkeypatch):
    _backends_where(monkeypatch, {"trt": "TensorRT is not installed"})
    code, out, err = run_cli(capsys, "bench", "infer", "--backends", "trt", "--sizes", "32", "--batches", "1",
                             "--repeat", "1")
    assert code == 2 and out == ""
    assert one_line_error(err) == "ifrt bench infer: backend trt: TensorRT is not installed"


def test_bench_infer_by_default_skips_a_backend_that_cannot_run_and_says_so(capsys, monkeypatch):
    _backends_where(monkeypatch, {"trt": "TensorRT is not installed"})
    code, out, err = run_cli(capsys, "bench", "infer", "--sizes", "32", "--batches", "1", "--repeat", "1")
    assert code == 0
    report = json.loads(out)
    assert {r["backend"] for r in report["results"]} == {"ort", "torch"}
    assert set(report["unavailable"]) == {"trt"}
    assert "ifrt bench infer: trt not measured: " in err


def test_bench_infer_skips_the_torch_baseline_when_torch_is_missing_and_was_not_asked_for(capsys, monkeypatch):
    _backends_where(monkeypatch, {"torch": "torch is not installed"})
    code, out, _ = run_cli(capsys, "bench", "infer", "--backends", "ort", "--sizes", "32", "--batches", "1",
                           "--repeat", "1")
    assert code == 0
    report = json.loads(out)
    assert report["unavailable"] == {"torch": "torch is not installed"}
    assert [r["speedup_vs_torch"] for r in report["results"]] == [None]


def test_bench_help_lists_the_targets_and_each_target_its_options_with_defaults(capsys):
    _, out, _ = run_cli(capsys, "bench", "--help")
    assert all(target in out for target in ("native", "live", "infer"))
    _, out, _ = run_cli(capsys, "bench", "native", "--help")
    assert "median is reported (default 15)" in " ".join(out.split())
    assert "--fps" not in out and "--model" not in out


# ---- help ----------------------------------------------------------------------------------------------------


def test_export_onnx_help_shows_a_plain_percent_sign(capsys):
    _, out, _ = run_cli(capsys, "export", "onnx", "--help")
    assert "99.5%," in out and "%%" not in out


def test_export_without_a_target_is_a_usage_error_like_other_groups(capsys):
    for group in ("export", "data"):
        code, out, err = run_cli(capsys, group)
        assert code == 2 and out == ""
        assert f"ifrt {group}: error: the following arguments are required" in err


@pytest.mark.parametrize("argv", [["doctor", "--help"], ["data", "--help"], ["data", "synth", "--help"],
                                  ["data", "index", "--help"], ["data", "split", "--help"],
                                  ["data", "check", "--help"], ["data", "preview", "--help"]])
def test_commands_have_a_description(capsys, argv):
    _, out, _ = run_cli(capsys, *argv)
    usage, description = out.split("\n\n")[:2]
    assert not description.lstrip().startswith(("positional arguments", "options")), argv


def test_data_help_shows_the_defaults_and_explains_the_seed(capsys):
    _, out, _ = run_cli(capsys, "data", "check", "--help")
    assert "(default 2^28)" in out
    _, out, _ = run_cli(capsys, "data", "split", "--help")
    assert "shuffles the patients of each diagnosis (default 0)" in " ".join(out.split())


def test_engine_check_of_a_missing_engine_says_the_engine_is_missing(capsys, tmp_path):
    code, out, err = run_cli(capsys, "export", "trt", "--check", str(tmp_path / "nope.engine"), "--json")
    assert code == 1
    assert one_line_error(err) == f"ifrt export trt: {tmp_path / 'nope.engine'}: engine file not found"
    assert json.loads(out) == {"engine": str(tmp_path / "nope.engine"), "ok": False,
                               "reasons": [f"{tmp_path / 'nope.engine'}: engine file not found"]}


def test_export_names_the_calibration_size_flag(capsys, tmp_path):
    code, _, err = run_cli(capsys, "export", "onnx", str(tmp_path), "-o", str(tmp_path / "out"),
                           "--calib-size", "100")
    assert code == 2
    assert "argument --calib-size: 100 is not a multiple of 32 of at least 64 (e.g. 96)" in err


def test_a_closed_standard_output_ends_the_command_quietly_with_141():
    """`ifrt doctor --json | head -1`: the reader is gone before the report is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "ifrt", "doctor", "--json"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (cli.EXIT_OUTPUT_CLOSED, "")


def test_bench_infer_reports_the_measured_ort_speedup_at_512_beside_its_goal(capsys, monkeypatch):
    _backends_where(monkeypatch, {"trt": "TensorRT is not installed"})
    code, out, _ = run_cli(capsys, "bench", "infer", "--sizes", "32,512", "--batches", "1", "--repeat", "1")
    assert code == 0
    report = json.loads(out)
    [ort_512] = [r for r in report["results"] if (r["backend"], r["size"]) == ("ort", 512)]
    assert (report["ort_over_torch_at_512"], report["target_ort_over_torch_at_512"]) == (
        ort_512["speedup_vs_torch"], 1.5)
    code, out, _ = run_cli(capsys, "bench", "infer", "--sizes", "32", "--batches", "1", "--repeat", "1")
    assert json.loads(out)["ort_over_torch_at_512"] is None
