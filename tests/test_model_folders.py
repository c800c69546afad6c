"""Which checkpoint a folder given as a model stands for: every command reads a run folder the same way."""

import json

import pytest

from ifrt.model_package import checkpoint_of_run


def _checkpoint(folder):
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(json.dumps({"model": {}}))
    return folder


@pytest.mark.parametrize(("layout", "chosen"), [
    (["best", "last"], "best"),   # a run that has validated: its best checkpoint
    (["last"], "last"),           # stopped before its first validation: the last checkpoint
    (["", "best"], ""),           # a model folder stands for itself, whatever lies beside it
    ([], ""),                     # nothing to choose: the folder itself (its reader names what is missing)
])
def test_a_run_folder_stands_for_one_checkpoint(tmp_path, layout, chosen):
    run = tmp_path / "run"
    run.mkdir()
    for sub in layout:
        if sub:
            _checkpoint(run / sub)
        else:
            (run / "model.json").write_text("{}")
    assert checkpoint_of_run(run) == run / chosen


def test_training_and_evaluation_read_a_run_folder_as_the_runtime_does(tmp_path):
    pytest.importorskip("torch")
    from ifrt.train.model.io import resolve_model_dir

    run = tmp_path / "run"
    _checkpoint(run / "last")
    assert resolve_model_dir(run) == checkpoint_of_run(run) == run / "last"
    _checkpoint(run / "best")
    assert resolve_model_dir(run) == checkpoint_of_run(run) == run / "best"
    (run / "model.json").write_text(json.dumps({"model": {}}))
    assert resolve_model_dir(run) == checkpoint_of_run(run) == run
    with pytest.raises(FileNotFoundError, match=r"empty: no model.json here or under best/ or last/"):
        resolve_model_dir(tmp_path / "empty")
