"""`ifrt train` when the file system refuses a checkpoint mid-way (a real short write: the child's files may not
grow past a limit, as a full disk refuses them): the error names the file and the system's reason, the previous
checkpoint stays whole, and a rerun resumes from it."""

import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from _file_limits import file_size_limit  # noqa: E402
from _train_data import make_tiny_database  # noqa: E402

TINY = os.path.join(os.path.dirname(__file__), "..", "train", "configs", "tiny.yaml")


def train(database, run, epochs: int, limit: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ifrt", "train", "--data", str(database), "--config", TINY,
                           "--out", str(run), "--set", f"train.epochs={epochs}", "--set", "train.progress=false"],
                          capture_output=True, text=True, timeout=600,
                          preexec_fn=file_size_limit(limit) if limit else None)


def test_a_refused_checkpoint_keeps_the_previous_one_whole_and_a_rerun_resumes_from_it(tmp_path):
    database = make_tiny_database(tmp_path / "db")
    run = tmp_path / "run"
    assert train(database, run, epochs=1).returncode == 0
    last = {p.name: p.read_bytes() for p in (run / "last").iterdir()}
    # The tiny model's weights (77 kB) fit under 100 kB, its optimizer state (137 kB) does not.
    refused = train(database, run, epochs=2, limit=100_000)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == f"ifrt train: {run / 'last' / 'optimizer.safetensors'}: File too large"
    assert {p.name: p.read_bytes() for p in (run / "last").iterdir()} == last
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".") or p.suffix == ".tmp") == [".ifrt-train.lock"]
    assert len((run / "metrics.csv").read_text().splitlines()) == 3  # header, epoch 1 and epoch 2 (validated)

    rerun = train(database, run, epochs=2)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming {run} at epoch 2, batch 0" in rerun.stderr


def test_a_rerun_after_a_refused_checkpoint_writes_that_epochs_metrics_row_once(tmp_path):
    """Epoch 2 is validated and its metrics.csv row written before its checkpoint is refused; the rerun trains
    epoch 2 again and its row replaces the first one."""
    import csv

    database = make_tiny_database(tmp_path / "db")
    run = tmp_path / "run"
    assert train(database, run, epochs=1).returncode == 0
    assert train(database, run, epochs=2, limit=100_000).returncode == 2
    rerun = train(database, run, epochs=2)
    assert rerun.returncode == 0, rerun.stderr
    with (run / "metrics.csv").open(newline="") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]


def test_a_rerun_after_a_refused_checkpoint_leaves_tensorboard_one_value_per_step(tmp_path):
    """TensorBoard got epoch 2's scalars before its checkpoint was refused; the rerun logs them again, and the
    scalars logged past the checkpoint it resumes from are purged instead of doubled."""
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

    database = make_tiny_database(tmp_path / "db")
    run = tmp_path / "run"
    assert train(database, run, epochs=1).returncode == 0
    assert train(database, run, epochs=2, limit=100_000).returncode == 2
    assert train(database, run, epochs=2).returncode == 0
    events = event_accumulator.EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    events.Reload()
    assert events.Tags()["scalars"]
    for tag in events.Tags()["scalars"]:
        steps = [event.step for event in events.Scalars(tag)]
        assert steps == sorted(set(steps)), tag
