"""`ifrt train` refuses a bad database or config before it creates anything, naming the file or the setting,
and writes files that other users can read."""

import os
import stat

import pytest

from ifrt import cli

torch = pytest.importorskip("torch")

TINY = os.path.join(os.path.dirname(__file__), "..", "train", "configs", "tiny.yaml")


def run_train(capsys, *argv: str) -> tuple[int, str]:
    """`ifrt train ARGV` in this process: (exit code, the last line on stderr)."""
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
    assert code == 1
    assert line.startswith(f"ifrt train: {tmp_path / 'nodata' / 'manifest.csv'}: manifest not found")
    assert not (tmp_path / "run").exists()


def test_missing_config_names_it(capsys, database, tmp_path):
    code, line = run_train(capsys, "--data", str(database), "--config", str(tmp_path / "nocfg.yaml"),
                           "--out", str(tmp_path / "run"))
    assert code == 1
    assert line == f"ifrt train: {tmp_path / 'nocfg.yaml'}: No such file or directory"


def test_invalid_yaml_names_the_file_and_the_line(capsys, database, tmp_path):
    (tmp_path / "bad.yaml").write_text("model:\n  size: [tiny\n")
    code, line = run_train(capsys, "--data", str(database), "--config", str(tmp_path / "bad.yaml"),
                           "--out", str(tmp_path / "run"))
    assert code == 1
    assert line.startswith(f"ifrt train: {tmp_path / 'bad.yaml'}: not valid YAML at line 3, column 1: ")


def test_unknown_model_setting_is_refused_by_its_name(capsys, database, tmp_path):
    code, line = run_train(capsys, "--data", str(database), "--config", TINY, "--out", str(tmp_path / "run"),
                           "--set", "model.bogus=1")
    assert code == 1
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
    assert code == 1
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
    assert code == 1
    assert line.startswith(f"ifrt train: {tmp_path / 'db' / 'manifest.csv'}: no rows in val; training needs both")
    assert not (tmp_path / "run").exists()


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
