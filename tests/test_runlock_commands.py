"""Every command that writes a folder refuses to write one that another run is writing (exit 2), naming the
folder, the other run's pid and the fix, and leaves the other run's files alone; the other run is a real
process holding the folder's lock, as a running command holds it."""

import os

import pytest
from _folder_holder import held_by_another_process

from ifrt import cli

torch = pytest.importorskip("torch")

TINY = os.path.join(os.path.dirname(__file__), "..", "train", "configs", "tiny.yaml")


def run(capsys, *argv) -> tuple[int, str]:
    """`ifrt ARGV` in this process: (exit code, the last line on stderr)."""
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    from _train_data import make_tiny_database

    return make_tiny_database(tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from ifrt.train.model import build_model, model_config, save_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    save_model(build_model(model_config("tiny", "hier", class_names=["IgAN", "MN", "DN", "LN"])), folder)
    return folder


def test_a_second_train_on_a_run_folder_in_use_is_refused_and_writes_nothing(capsys, database, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with held_by_another_process(run_dir, ".ifrt-train.lock", "ifrt train") as pid:
        code, line = run(capsys, "train", "--data", database, "--config", TINY, "--out", run_dir,
                         "--set", "train.stop_after_steps=1")
    assert code == 2
    assert line == (f"ifrt train: {run_dir} is in use by another `ifrt train` (pid {pid}); wait for it to finish or "
                    "give another --out for a new run")
    assert sorted(p.name for p in run_dir.iterdir()) == [".ifrt-train.lock"]


def test_a_second_eval_into_a_report_folder_in_use_is_refused(capsys, database, model, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    with held_by_another_process(out, ".ifrt-eval.lock", "ifrt eval") as pid:
        code, line = run(capsys, "eval", "--model", model, "--data", database, "--out", out, "--max-images", "1",
                         "--deblur-images", "0", "--no-calibration", "--no-natural-images")
    assert code == 2
    assert line == (f"ifrt eval: {out} is in use by another `ifrt eval` (pid {pid}); wait for it to finish or give "
                    "another --out")
    assert sorted(p.name for p in out.iterdir()) == [".ifrt-eval.lock"]


def test_a_second_export_into_a_folder_in_use_leaves_the_first_ones_staging_folder(capsys, model, tmp_path):
    out = tmp_path / "onnx"
    staging = out / ".ifrt-export-first"  # where the running export writes its graphs
    staging.mkdir(parents=True)
    (staging / "full.onnx").write_bytes(b"graph being written")
    with held_by_another_process(out, ".ifrt-export.lock", "ifrt export onnx") as pid:
        code, line = run(capsys, "export", "onnx", model, "-o", out, "--graphs", "focus", "--calib-count", "1",
                         "--calib-size", "64")
    assert code == 2
    assert line == (f"ifrt export onnx: {out} is in use by another `ifrt export onnx` (pid {pid}); wait for it to "
                    "finish or export into another -o folder")
    assert (staging / "full.onnx").read_bytes() == b"graph being written"
    assert sorted(p.name for p in out.iterdir()) == [".ifrt-export-first", ".ifrt-export.lock"]


def test_a_second_triton_export_into_a_repository_in_use_is_refused_and_leaves_its_files(capsys, tiny_package,
                                                                                      tmp_path):
    repo = tmp_path / "repo"
    (repo / "ifrt_full" / "1").mkdir(parents=True)
    (repo / "ifrt_full" / "config.pbtxt").write_text("the running export's config")
    with held_by_another_process(repo, ".ifrt-export.lock", "ifrt export triton") as pid:
        code, line = run(capsys, "export", "triton", tiny_package, "-o", repo)
    assert code == 2
    assert line == (f"ifrt export triton: {repo} is in use by another `ifrt export triton` (pid {pid}); wait for it "
                    "to finish or write into another -o repository")
    assert (repo / "ifrt_full" / "config.pbtxt").read_text() == "the running export's config"
    assert sorted(str(p.relative_to(repo)) for p in repo.rglob("*")) == [".ifrt-export.lock", "ifrt_full",
                                                                         "ifrt_full/1", "ifrt_full/config.pbtxt"]


def test_a_triton_export_into_a_folder_an_onnx_export_is_writing_is_refused_naming_it(capsys, tiny_package,
                                                                                      tmp_path):
    with held_by_another_process(tmp_path, ".ifrt-export.lock", "ifrt export onnx") as pid:
        code, line = run(capsys, "export", "triton", tiny_package, "-o", tmp_path)
    assert code == 2
    assert line == (f"ifrt export triton: {tmp_path} is in use by another `ifrt export onnx` (pid {pid}); wait for it "
                    "to finish or write into another -o repository")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ifrt-export.lock"]


def test_a_synth_into_a_dataset_folder_in_use_is_refused_even_with_force(capsys, tmp_path):
    (tmp_path / "synth.json").write_text("{}")  # the running synth's first file
    with held_by_another_process(tmp_path, ".ifrt-data.lock", "ifrt data synth") as pid:
        code, line = run(capsys, "data", "synth", tmp_path, "--patients", "1", "--size", "32", "--workers", "1",
                         "--force", "--quiet")
    assert code == 2
    assert line == (f"ifrt data synth: {tmp_path} is in use by another `ifrt data synth` (pid {pid}); wait for it to "
                    "finish or choose another folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ifrt-data.lock", "synth.json"]


def test_a_split_of_a_manifest_an_index_is_writing_is_refused_naming_the_index(capsys, database, tmp_path):
    manifest = database / "manifest.csv"
    before = manifest.read_bytes()
    with held_by_another_process(database, ".ifrt-data.lock", "ifrt data index") as pid:
        code, line = run(capsys, "data", "split", database)
    assert code == 2
    assert line == (f"ifrt data split: {database} is in use by another `ifrt data index` (pid {pid}); wait for it to "
                    "finish or give --out a manifest in another folder")
    assert manifest.read_bytes() == before


def test_an_index_of_a_dataset_folder_in_use_is_refused(capsys, tmp_path):
    (tmp_path / "IgAN" / "P1").mkdir(parents=True)
    (tmp_path / "IgAN" / "P1" / "a.tif").write_bytes(b"")
    with held_by_another_process(tmp_path, ".ifrt-data.lock", "ifrt data split") as pid:
        code, line = run(capsys, "data", "index", tmp_path)
    assert code == 2
    assert line == (f"ifrt data index: {tmp_path} is in use by another `ifrt data split` (pid {pid}); wait for it to "
                    "finish or give --out a manifest in another folder")
    assert not (tmp_path / "manifest.csv").exists()
