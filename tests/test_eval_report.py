"""`ifrt eval` on untrained tiny models: what the report records and what the command refuses up front."""

import errno
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

torch = pytest.importorskip("torch")

from _file_limits import file_size_limit  # noqa: E402
from _train_data import make_tiny_database  # noqa: E402

from ifrt import cli  # noqa: E402
from ifrt.train.data.manifest import read_manifest, write_manifest  # noqa: E402

CLASSES = ["DN", "IgAN", "LN", "MN"]
DEFOCUS_ONLY = {"p_defocus": 1, "p_spatial": 0}
QUICK = ("--no-natural-images", "--deblur-images", "0", "--no-calibration")


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    return make_tiny_database(tmp_path_factory.mktemp("eval_db") / "db")


def make_run(folder, degrade=None, classes=CLASSES, variant="hier", seed=0, **model_settings):
    """An untrained model saved as a training run would leave it: `best/` and, unless `degrade` is None, the
    run's config.yaml with those `data.degrade` overrides."""
    from ifrt.train.model import build_model, model_config, save_model

    torch.manual_seed(seed)
    save_model(build_model(model_config("tiny", variant, class_names=list(classes), **model_settings)), folder / "best")
    if degrade is not None:
        (folder / "config.yaml").write_text(yaml.safe_dump({"data": {"degrade": degrade}}))
    return folder


def relabel(database, folder, split, diagnosis_of):
    """A copy of `database` whose `split` rows get the diagnosis `diagnosis_of(row)`."""
    shutil.copytree(database, folder)
    rows = read_manifest(folder / "manifest.csv")
    for row in rows:
        if row.split == split:
            row.diagnosis = diagnosis_of(row)
    write_manifest(folder / "manifest.csv", rows)
    return folder


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def evaluate_quick(models, database, out, **kwargs):
    from ifrt.train.evaluate import evaluate

    evaluate(models, database, out, deblur_images=0, natural=False, calibrate=False, **kwargs)
    return json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_runs")
    return {"plain": make_run(root / "plain", degrade={}, seed=1),
            "defocus": make_run(root / "defocus", degrade=DEFOCUS_ONLY, seed=2),
            "defocus2": make_run(root / "defocus2", degrade=DEFOCUS_ONLY, seed=3)}


# ---- one degradation for every model, whatever their order --------------------------------------------------

def test_two_models_in_either_order_get_identical_numbers(runs, database, tmp_path):
    forward, _ = evaluate_quick([runs["plain"], runs["defocus"]], database, tmp_path / "ab")
    backward, _ = evaluate_quick([runs["defocus"], runs["plain"]], database, tmp_path / "ba")
    assert forward["models"]["plain"] == backward["models"]["plain"]
    assert forward["models"]["defocus"] == backward["models"]["defocus"]
    assert forward["degradation"] == backward["degradation"]


def test_models_trained_differently_are_evaluated_on_the_default_degradation_which_the_report_names(
        runs, database, tmp_path, capsys):
    report, text = evaluate_quick([runs["defocus"], runs["plain"]], database, tmp_path / "r")
    assert report["degradation"]["source"] == "default"
    assert report["degradation"]["differs_from_default"] == {}
    assert report["degradation"]["settings"]["p_defocus"] == 0.25
    assert ("Degradation: the data model's default (DegradeConfig), the same pixels for every model; settings "
            "that differ from the default: none.") in text
    assert "the models were trained with different degradations (defocus: p_defocus=1, p_spatial=0; plain: the " \
           "default)" in capsys.readouterr().err


def test_models_trained_alike_are_evaluated_on_their_own_degradation(runs, database, tmp_path):
    report, text = evaluate_quick([runs["defocus"], runs["defocus2"]], database, tmp_path / "r")
    assert report["degradation"]["source"] == "training"
    assert report["degradation"]["differs_from_default"] == {"p_defocus": 1, "p_spatial": 0}
    assert "Degradation: the one every model was trained with" in text


def test_degrade_from_takes_a_runs_degradation_for_every_model(runs, database, tmp_path, capsys):
    out = tmp_path / "r"
    code, _, err = run_cli(capsys, "eval", "--model", runs["plain"], "--model", runs["defocus"], "--data", database,
                           "--out", out, "--degrade-from", runs["defocus"], *QUICK)
    assert code == 0, err
    degradation = json.loads((out / "report.json").read_text())["degradation"]
    assert (degradation["source"], degradation["degrade_from"]) == ("degrade_from", str(runs["defocus"]))
    assert degradation["differs_from_default"] == {"p_defocus": 1, "p_spatial": 0}
    assert (f"Degradation: the one `{runs['defocus']}` was trained with, the same pixels for every model; settings "
            "that differ from the default: p_defocus=1, p_spatial=0.") in (out / "report.md").read_text()


# ---- diagnoses the model does not know ----------------------------------------------------------------------

def test_every_frame_a_model_sees_is_normalized_with_the_models_own_percentiles(database, tmp_path, monkeypatch):
    from ifrt.train import evaluate as ev

    run = make_run(tmp_path / "narrow", normalization={"p_low": 20.0, "p_high": 80.0})
    datasets, ranges = [], []

    class RecordedDataset(ev.ManifestDataset):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            datasets.append((self.p_low, self.p_high))

    percentile_range = ev.percentile_range

    def recorded_range(image, p_low=1.0, p_high=99.8):
        ranges.append((p_low, p_high))
        return percentile_range(image, p_low, p_high)

    monkeypatch.setattr(ev, "ManifestDataset", RecordedDataset)
    monkeypatch.setattr(ev, "percentile_range", recorded_range)
    ev.evaluate([run], database, tmp_path / "report", max_images=1, deblur_images=1, natural_draws=1)
    # the scored split, the calibration on val, the deblurring comparison and the non-glomerulus pictures
    assert datasets and set(datasets) == {(20.0, 80.0)}
    assert ranges and set(ranges) == {(20.0, 80.0)}


def test_models_with_other_input_normalizations_are_refused(runs, database, tmp_path):
    narrow = make_run(tmp_path / "narrow", normalization={"p_high": 90.0})
    with pytest.raises(ValueError, match="narrow: input normalization .* differs from .*compare models trained with "
                                         "the same model.normalization"):
        evaluate_quick([runs["plain"], narrow], database, tmp_path / "report")


def test_a_split_without_any_diagnosis_the_model_knows_is_refused_naming_the_classes(runs, database, tmp_path,
                                                                                      capsys):
    fsgs = relabel(database, tmp_path / "db", "test", lambda row: "FSGS")
    code, _, err = run_cli(capsys, "eval", "--model", runs["plain"], "--data", fsgs, "--out", tmp_path / "r", *QUICK)
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"ifrt eval: {fsgs / 'manifest.csv'}: no test image has a diagnosis the model knows: the test images have "
        "FSGS, the model knows DN, IgAN, LN, MN; evaluate on a database with the model's classes")
    assert not (tmp_path / "r").exists()


def test_images_with_a_diagnosis_the_model_does_not_know_are_counted_and_warned_about(runs, database, tmp_path,
                                                                                      capsys):
    test_rows = [r for r in read_manifest(database / "manifest.csv") if r.split == "test"]
    patient = test_rows[0].patient_id
    renamed = sum(r.patient_id == patient for r in test_rows)
    db = relabel(database, tmp_path / "db", "test", lambda row: "FSGS" if row.patient_id == patient else row.diagnosis)
    out = tmp_path / "r"
    code, _, err = run_cli(capsys, "eval", "--model", runs["plain"], "--data", db, "--out", out, *QUICK)
    assert code == 0, err
    line = (f"{renamed} of {len(test_rows)} images have a diagnosis the model does not know (FSGS: {renamed}); they "
            "count for quality and deblurring only")
    assert f"ifrt eval: warning: {line}" in err
    report = json.loads((out / "report.json").read_text())
    assert (report["unknown_diagnosis_images"], report["unknown_diagnoses"]) == (renamed, {"FSGS": renamed})
    assert f"{line}." in (out / "report.md").read_text()


# ---- JSON without NaN, Markdown with a dash -----------------------------------------------------------------

def test_figures_without_data_are_null_in_json_and_a_dash_in_markdown(runs, database, tmp_path):
    unlabelled = relabel(database, tmp_path / "db", "test", lambda row: None)
    report, text = evaluate_quick([runs["plain"]], unlabelled, tmp_path / "r")

    def refuse(token):
        raise AssertionError(f"report.json holds {token}, which JSON does not have")

    json.loads((tmp_path / "r" / "report.json").read_text(), parse_constant=refuse)
    diagnosis = report["models"]["plain"]["diagnosis"]
    assert diagnosis["accuracy"] is None and diagnosis["ece"] is None and diagnosis["macro_f1"] is None
    assert "| plain (hier) | — | — | — | — | — | — | — | — (—) |" in text
    assert f"{report['images']} of {report['images']} images have no diagnosis" in text


# ---- the report folder is checked before any model runs -----------------------------------------------------

@pytest.mark.parametrize("out, message", [
    ("taken", "{tmp}/taken: a file, not a folder; give --out a new folder or an earlier report's"),
    ("taken/report", "{tmp}/taken/report: cannot be created, {tmp}/taken is a file, not a folder; give --out "
                     "another folder"),
])
def test_a_report_folder_that_cannot_be_written_is_refused_before_any_model_runs(runs, database, tmp_path, capsys,
                                                                                 out, message):
    (tmp_path / "taken").write_text("")
    code, _, err = run_cli(capsys, "eval", "--model", runs["plain"], "--data", database, "--out", tmp_path / out,
                           *QUICK)
    assert code == 2
    assert "evaluated blur level" not in err
    assert err.strip().splitlines()[-1] == f"ifrt eval: {message.format(tmp=tmp_path)}"


# ---- plots --------------------------------------------------------------------------------------------------

def test_plots_of_an_earlier_report_in_the_folder_are_removed(runs, database, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "confusion_gone.png").write_bytes(b"an earlier model's plot")
    (out / "notes.txt").write_text("kept")
    evaluate_quick([runs["plain"]], database, out)
    assert sorted(p.name for p in out.iterdir()) == [".ifrt-eval.lock", "accuracy_per_level.png", "confusion_plain.png", "notes.txt",
                                                     "quality_per_level.png", "reliability_plain.png", "report.json",
                                                     "report.md"]


def test_models_whose_names_map_to_one_file_name_get_a_plot_each(database, tmp_path):
    models = [make_run(tmp_path / "x.y"), make_run(tmp_path / "x_y", seed=1)]
    report, text = evaluate_quick(models, database, tmp_path / "r")
    confusion = {p["model"]: p["file"] for p in report["plots"] if p["file"].startswith("confusion_")}
    assert confusion == {"x.y": "confusion_x_y.png", "x_y": "confusion_x_y-2.png"}
    assert all((tmp_path / "r" / name).stat().st_size > 1000 for name in confusion.values())


def test_every_plot_is_listed_in_json_and_markdown(runs, database, tmp_path):
    report, text = evaluate_quick([runs["plain"]], database, tmp_path / "r")
    assert [p["file"] for p in report["plots"]] == ["accuracy_per_level.png", "quality_per_level.png",
                                                    "confusion_plain.png", "reliability_plain.png"]
    assert "- `confusion_plain.png`: confusion matrix of plain" in text
    assert "- `accuracy_per_level.png`: diagnosis accuracy per blur level, every model" in text


def test_a_plot_that_cannot_be_written_fails_the_command_naming_it(runs, database, tmp_path, capsys):
    out = tmp_path / "r"
    (out / "confusion_plain.png").mkdir(parents=True)
    code, _, err = run_cli(capsys, "eval", "--model", runs["plain"], "--data", database, "--out", out, *QUICK)
    assert code == 2
    assert err.strip().splitlines()[-1] == (f"ifrt eval: {out / 'confusion_plain.png'}: could not write the plot "
                                            "(Is a directory)")


def test_a_write_the_disk_refuses_leaves_the_earlier_report_and_its_plots_as_they_were(runs, database, tmp_path):
    """A real short write in a child process: each plot of the tiny models is 13 to 24 kB, so under a 15 kB limit
    the first one (accuracy_per_level.png, 23 kB) is refused."""
    out = tmp_path / "r"
    evaluate_quick([runs["plain"], runs["defocus"]], database, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".ifrt-eval.lock"}
    refused = subprocess.run([sys.executable, "-m", "ifrt", "eval", "--model", str(runs["plain"]), "--data",
                              str(database), "--out", str(out), *QUICK], capture_output=True, text=True, timeout=300,
                             preexec_fn=file_size_limit(15_000))
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (f"ifrt eval: {out / 'accuracy_per_level.png'}: could not "
                                                       "write the plot (File too large)")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".ifrt-eval.lock"} == before
    assert all((out / p["file"]).is_file() for p in json.loads((out / "report.json").read_text())["plots"])


def test_a_refused_report_json_leaves_the_earlier_report_and_its_plots_as_they_were(runs, database, tmp_path,
                                                                                    capsys, monkeypatch):
    """The disk fills while report.json, the last file, is written: every plot and report.md of the new report
    are written by then. A size limit cannot pick that file (a plot is refused first), so its writer is made to
    meet a full disk half-way through, as `ifrt.imageio.atomic_path` would see it (an errno, no file name)."""
    from ifrt import imageio
    from ifrt.train import evaluate

    out = tmp_path / "r"
    evaluate_quick([runs["plain"], runs["defocus"]], database, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".ifrt-eval.lock"}
    written = []

    def disk_fills_on_report_json(path, text):
        written.append(path.name)
        if path.name != "report.json":
            return imageio.write_text_atomic(path, text)
        with imageio.atomic_path(path) as tmp:
            tmp.write_text(text[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(evaluate, "write_text_atomic", disk_fills_on_report_json)
    code, _, err = run_cli(capsys, "eval", "--model", runs["plain"], "--data", database, "--out", out, *QUICK)
    assert written == ["report.md", "report.json"]
    assert code == 2
    assert err.strip().splitlines()[-1] == f"ifrt eval: {out / 'report.json'}: No space left on device"
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".ifrt-eval.lock"} == before
    assert all((out / p["file"]).is_file() for p in json.loads((out / "report.json").read_text())["plots"])


# ---- split, calibration, ONNX-only folders ------------------------------------------------------------------

def test_the_header_names_the_split_and_says_when_calibration_scores_its_own_images(runs, database, tmp_path,
                                                                                   capsys):
    out = tmp_path / "r"
    code, _, err = run_cli(capsys, "eval", "--model", runs["plain"], "--data", database, "--out", out, "--split", "val",
                           "--max-images", "2", "--no-natural-images", "--deblur-images", "0")
    assert code == 0, err
    text = (out / "report.md").read_text()
    assert "\n2 val images of " in text
    assert ("Temperature fitted on the `val` split (2 in-focus references at every blur level): the very images "
            "scored here, so the T-scaled ECE is optimistic.") in text
    assert json.loads((out / "report.json").read_text())["calibration"] == {
        "split": "val", "images": 2, "same_images_as_scored": True}


def test_help_says_max_images_caps_the_calibration_images_too(capsys):
    with pytest.raises(SystemExit):
        cli.main(["eval", "--help"])
    assert "also caps the validation images the calibration temperature is fitted on" in \
        " ".join(capsys.readouterr().out.split())


def test_a_folder_with_only_onnx_graphs_is_refused_saying_eval_needs_the_trained_weights(database, tmp_path, capsys):
    package = tmp_path / "package"
    package.mkdir()
    for name in ("full.onnx", "full.onnx.json", "focus.onnx"):
        (package / name).write_bytes(b"")
    code, _, err = run_cli(capsys, "eval", "--model", package, "--data", database, "--out", tmp_path / "r", *QUICK)
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"ifrt eval: {package}: holds ONNX graphs (focus.onnx, full.onnx) but no trained weights; ifrt eval needs "
        "model.json + model.safetensors (a training run or its best/), as ONNX graphs alone cannot be evaluated")


def test_a_runs_bad_degradation_setting_is_named_with_its_config_file(database, tmp_path, capsys):
    run = make_run(tmp_path / "odd", degrade={"bogus": 1})
    code, _, err = run_cli(capsys, "eval", "--model", run, "--data", database, "--out", tmp_path / "report",
                           "--deblur-images", "0", "--no-natural-images", "--no-calibration")
    assert code == 2
    assert err.startswith(f"ifrt eval: {run / 'config.yaml'}: data.degrade: ")
    assert "bogus" in err and not (tmp_path / "report" / "report.json").exists()
