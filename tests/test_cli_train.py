"""`ifrt train` refuses a bad database or config before it creates anything, naming the file or the setting,
and writes files that other users can read."""

import json
import os
import stat

import pytest

from ifrt import cli

torch = pytest.importorskip("torch")

TINY = os.path.join(os.path.dirname(__file__), "..", "train", "configs", "tiny.yaml")


def run_train(capsys, *argv: str) -> tuple[int, str]:
    """`ifrt train ARGV` in this process: (exit code, the last line on stderr); 2 means it could not run."""
    code = cli.main(["train", *argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    from ifrt.train.data.synth import synthesize_database

    root = tmp_path_factory.mktemp("db")
    synthesize_database(root, patients=3, images_per_patient=1, size=64, workers=1)
    return root


def test_missing_database_names_its_manifest(capsys, tmp_path):
    code, line = run_train(capsys, "--data", str(tmp_path / "nodata"), "--config", TINY, "--out", str(tmp_path / "run"))
    assert code == 2
    assert line.startswith(f"ifrt train: {tmp_path / 'nodata' / 'manifest.csv'}: manifest not found")
    assert not (tmp_path / "run").exists()


def test_missing_config_names_it(capsys, database, tmp_path):
    code, line = run_train(capsys, "--data", str(database), "--config", str(tmp_path / "nocfg.yaml"),
                           "--out", str(tmp_path / "run"))
    assert code == 2
    assert line == f"ifrt train: {tmp_path / 'nocfg.yaml'}: No such file or directory"


def test_invalid_yaml_names_the_file_and_the_line(capsys, database, tmp_path):
    (tmp_path / "bad.yaml").write_text("model:\n  size: [tiny\n")
    code, line = run_train(capsys, "--data", str(database), "--config", str(tmp_path / "bad.yaml"),
                           "--out", str(tmp_path / "run"))
    assert code == 2
    assert line.startswith(f"ifrt train: {tmp_path / 'bad.yaml'}: not valid YAML at line 3, column 1: ")


def test_unknown_model_setting_is_refused_by_its_name(capsys, database, tmp_path):
    code, line = run_train(capsys, "--data", str(database), "--config", TINY, "--out", str(tmp_path / "run"),
                           "--set", "model.bogus=1")
    assert code == 2
    assert line.startswith("ifrt train: model.bogus is not a setting (known: ")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("override", "message"), [
    ("train.epochs=abc", "train.epochs: expected an integer, got 'abc'"),
    ("train.epochs=null", "train.epochs: expected an integer, got None"),
    ("train.lr=fast", "train.lr: expected a number, got 'fast'"),
    ("data.levels=3", "data.levels: expected a list, e.g. [0, 1] or null, got 3"),
    ("train.amp=1", "train.amp: expected true or false, got 1"),
])
def test_a_setting_of_the_wrong_kind_is_refused_before_the_run_folder_exists(capsys, database, tmp_path,
                                                                              override, message):
    code, line = run_train(capsys, "--data", str(database), "--config", TINY, "--out", str(tmp_path / "run"),
                           "--set", override)
    assert code == 2
    assert line == f"ifrt train: {message}"
    assert not (tmp_path / "run").exists()


def test_a_setting_left_unset_where_that_is_allowed_passes():
    from ifrt.train.dataset import DataConfig
    from ifrt.train.model import model_config
    from ifrt.train.trainer import TrainConfig

    assert DataConfig.from_dict({"levels": None}).levels is None
    assert model_config("tiny", "hier", class_prior=None).class_prior is None
    assert TrainConfig.from_dict({"lr": 1}).lr == 1


def test_database_without_validation_rows_is_refused_with_the_fix(capsys, tmp_path):
    from ifrt.train.data.manifest import ManifestRow, write_manifest

    write_manifest(tmp_path / "db" / "manifest.csv", [ManifestRow(path="a.tif", patient_id="p", split="train")])
    code, line = run_train(capsys, "--data", str(tmp_path / "db"), "--config", TINY, "--out", str(tmp_path / "run"))
    assert code == 2
    assert line.startswith(f"ifrt train: {tmp_path / 'db' / 'manifest.csv'}: no rows in val; training needs both")
    assert not (tmp_path / "run").exists()


def test_resuming_with_another_setting_is_refused_in_one_line_naming_it(capsys, database, tmp_path):
    run = str(tmp_path / "run")
    common = ("--data", str(database), "--config", TINY, "--out", run, "--set", "train.batch_size=1")
    assert run_train(capsys, *common, "--set", "train.stop_after_steps=1")[0] == 0  # one of two epochs done
    code, line = run_train(capsys, *common, "--set", "train.lr=0.5")
    assert code == 2
    assert line == (f"ifrt train: {run}: cannot resume with other settings than the run's own (train.lr: 0.003 -> "
                    f"0.5); run the same command as before (its settings are in {run}/config.yaml), or give another "
                    "--out for a new run")


def test_a_warning_about_the_data_carries_the_commands_name(capsys, database, tmp_path):
    from _train_data import without_references

    data = without_references(database, tmp_path / "db")
    code = cli.main(["train", "--data", str(data), "--config", TINY, "--out", str(tmp_path / "run"),
                     "--set", "train.batch_size=1", "--set", "train.stop_after_steps=1"])
    assert code == 0
    assert (f"ifrt train: warning: {data / 'manifest.csv'}: no training row has an in-focus reference (sharp_path), "
            "so only the diagnosis will be trained (and the blur level where a row records one; the deblurring not "
            "at all); fill the manifest's sharp_path with the in-focus capture of each field (for an in-focus "
            "capture, the image itself)") in capsys.readouterr().err.splitlines()


def test_ctrl_c_checkpoints_says_where_a_rerun_resumes_and_exits_with_130(capsys, database, tmp_path, monkeypatch):
    import signal

    from ifrt.train import trainer

    lr_at = trainer.lr_at
    pressed = []

    def ctrl_c_during_the_first_step(step, total, cfg):
        if not pressed:
            pressed.append(step)
            signal.raise_signal(signal.SIGINT)
        return lr_at(step, total, cfg)

    monkeypatch.setattr(trainer, "lr_at", ctrl_c_during_the_first_step)
    common = ("--data", str(database), "--config", TINY, "--out", str(tmp_path), "--set", "train.batch_size=1")
    code, line = run_train(capsys, *common)
    assert code == 130
    # The one training image is one batch: the epoch it ended is validated and checkpointed first.
    assert line == "interrupted; rerun the same command to resume at epoch 2, batch 0"
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 2  # header and epoch 1
    monkeypatch.setattr(trainer, "lr_at", lr_at)
    assert run_train(capsys, *common)[0] == 0
    assert len((tmp_path / "metrics.csv").read_text().splitlines()) == 3


def test_ctrl_c_at_the_terminal_stops_a_run_with_data_loader_workers_resumably(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from _train_data import make_tiny_database

    database = make_tiny_database(tmp_path / "db")  # 8 training images: an epoch of 8 steps
    cmd = [sys.executable, "-m", "ifrt", "train", "--data", str(database), "--config", TINY, "--out",
           str(tmp_path / "run"), "--set", "train.batch_size=1", "--set", "train.epochs=1000",
           "--set", "train.num_workers=2"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for line in proc.stderr:
            if line.startswith("epoch=1 "):
                time.sleep(0.5)  # into the second epoch, its workers loading
                os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C at a terminal: the workers receive it too
                break
        err = proc.stderr.read()
        assert proc.wait(timeout=120) == 130, err
    finally:
        if proc.poll() is None:
            proc.kill()
    import re

    # Where it stopped depends on how fast the steps run; the message and the checkpoint must agree on it.
    stopped = re.fullmatch(r"interrupted; rerun the same command to resume at epoch (\d+), batch (\d+)",
                           err.strip().splitlines()[-1])
    assert stopped, err
    state = json.loads((tmp_path / "run" / "last" / "trainer.json").read_text())
    assert (state["epoch"] + 1, state["batches_done"]) == (int(stopped[1]), int(stopped[2]))
    assert err.count("stopping after this step") == 1  # the workers left Ctrl-C to the main process
    assert (tmp_path / "run" / "last" / "trainer.json").is_file()


# ---- file modes ----------------------------------------------------------------------------------------------


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_saved_model_files_follow_the_umask(tmp_path, umask_022):
    from ifrt.train.model import build_model, model_config, save_model

    save_model(build_model(model_config("tiny", "hier")), tmp_path)
    assert mode(tmp_path / "model.safetensors") == 0o644
    assert mode(tmp_path / "model.json") == 0o644


def test_saved_optimizer_state_follows_the_umask(tmp_path, umask_022):
    from ifrt.train.trainer import save_training_state

    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([weight])
    weight.sum().backward()
    optimizer.step()
    save_training_state(tmp_path, optimizer, torch.nn.Linear(1, 1), {"epoch": 1})
    assert mode(tmp_path / "optimizer.safetensors") == 0o644
    assert mode(tmp_path / "trainer.json") == 0o644


def test_a_corrupt_weights_file_is_named(tmp_path):
    from ifrt.train.model import build_model, load_model, model_config, save_model

    save_model(build_model(model_config("tiny", "hier")), tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="model.safetensors: not a readable safetensors file"):
        load_model(tmp_path)
