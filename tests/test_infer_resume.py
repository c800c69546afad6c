"""`ifrt infer` reruns: an image counts as done only when the folder's results were made by the same
model with the same options; otherwise the rerun is refused before anything is written."""

import json
import os

import numpy as np
import pytest
import tifffile

import ifrt
from ifrt.infer import RUN, InferSetupError, read_records, run_infer


@pytest.fixture(scope="module")
def session(tiny_package):
    return ifrt.Session(tiny_package, backend="ort")


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.tif"
    tifffile.imwrite(path, (np.random.default_rng(0).random((64, 64)) * 3000).astype(np.uint16))
    return path


def _images(folder, count):
    paths = []
    for i in range(count):
        paths.append(folder / f"img{i}.tif")
        tifffile.imwrite(paths[-1], (np.random.default_rng(i).random((96, 96)) * 3000).astype(np.uint16))
    return paths


def test_results_record_the_model_and_options_that_made_them(session, image, tmp_path):
    out = tmp_path / "out"
    run_infer(session, [image], out, deblur=True)
    run = json.loads((out / RUN).read_text())
    assert run["backend"] == "ort" and run["precision"] == "fp32"
    assert run["options"]["deblur"] is True and run["options"]["tile"] == 512
    assert len(run["model"]["sha256"]) == 64
    assert read_records(out)[0]["model"] == run["model"]


def test_a_rerun_with_other_options_is_refused_and_writes_nothing(session, image, tmp_path):
    out = tmp_path / "out"
    run_infer(session, [image], out)
    before = (out / "results.jsonl").read_bytes()
    with pytest.raises(InferSetupError, match=r"deblur: False -> True.*--overwrite"):
        run_infer(session, [image], out, deblur=True)
    assert (out / "results.jsonl").read_bytes() == before and not (out / "deblurred").exists()


def test_a_rerun_with_another_model_is_refused(session, image, tmp_path):
    out = tmp_path / "out"
    run_infer(session, [image], out)
    with pytest.raises(InferSetupError, match="model: "):
        run_infer(ifrt.Session(None, backend="ort"), [image], out)


def test_overwrite_redoes_a_folder_made_with_other_options(session, image, tmp_path):
    out = tmp_path / "out"
    run_infer(session, [image], out)
    report = run_infer(session, [image], out, deblur=True, overwrite=True)
    assert report.done == 1 and len(list((out / "deblurred").iterdir())) == 1
    assert json.loads((out / RUN).read_text())["options"]["deblur"] is True


def test_a_rerun_with_the_same_settings_skips_finished_images(session, image, tmp_path):
    out = tmp_path / "out"
    run_infer(session, [image], out, deblur=True, overlay=True)
    report = run_infer(session, [image], out, deblur=True, overlay=True)
    assert (report.done, report.skipped) == (0, 1)


def test_results_without_a_run_record_are_not_mixed_with_new_ones(session, image, tmp_path):
    out = tmp_path / "out"
    run_infer(session, [image], out)
    (out / RUN).unlink()  # as written by a version that did not record its settings
    with pytest.raises(InferSetupError, match="do not record the model"):
        run_infer(session, [image], out)


# ---- one run per folder, changed inputs, compact results, progress -------------------------------------------


def test_a_second_run_on_a_folder_in_use_is_refused_naming_the_holder(session, tmp_path):
    from ifrt.infer import folder_lock

    sources = _images(tmp_path, 2)
    out = tmp_path / "out"
    out.mkdir()
    with folder_lock(out):  # what a running `ifrt infer` holds
        with pytest.raises(InferSetupError, match=rf"out is in use by another `ifrt infer` \(pid {os.getpid()}\)"):
            run_infer(session, sources, out)
        assert not (out / "results.jsonl").exists()
    assert run_infer(session, sources, out).done == 2  # released when the holder ends


class _FakeMsvcrt:
    """Windows' msvcrt.locking, recording (mode, file position, byte count) at each call."""

    LK_UNLCK, LK_NBLCK = 0, 2

    def __init__(self):
        self.calls = []

    def locking(self, fd, mode, nbytes):
        self.calls.append((mode, os.lseek(fd, 0, os.SEEK_CUR), nbytes))


def test_on_windows_every_run_locks_and_unlocks_the_same_byte_past_the_holders_pid(tmp_path, monkeypatch):
    import sys

    import ifrt.runlock
    from ifrt.infer import LOCK, folder_lock
    from ifrt.runlock import WINDOWS_LOCK_BYTE

    msvcrt = _FakeMsvcrt()
    monkeypatch.setitem(sys.modules, "msvcrt", msvcrt)
    monkeypatch.setattr(ifrt.runlock, "WINDOWS", True)
    with folder_lock(tmp_path):  # a new lock file
        pass
    (tmp_path / LOCK).write_text("4242")  # an earlier run's pid: opening for append puts the position after it
    with folder_lock(tmp_path):
        pass
    assert msvcrt.calls == [(msvcrt.LK_NBLCK, WINDOWS_LOCK_BYTE, 1), (msvcrt.LK_UNLCK, WINDOWS_LOCK_BYTE, 1)] * 2
    assert WINDOWS_LOCK_BYTE > 20  # past any pid


def test_a_rerun_removes_only_its_own_temporaries(session, tmp_path):
    sources = _images(tmp_path, 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".summary.csv.abc123.tmp").write_text("left by a killed run")
    (out / ".notes.tmp").write_text("someone's own file")
    run_infer(session, sources, out)
    assert not (out / ".summary.csv.abc123.tmp").exists()
    assert (out / ".notes.tmp").read_text() == "someone's own file"


def test_a_result_records_its_input_files_size_and_modification_time(session, image, tmp_path):
    out = tmp_path / "out"
    run_infer(session, [image], out)
    stat = image.stat()
    line = (out / "results.jsonl").read_text()
    assert f'"file": {{"size": {stat.st_size}, "mtime_ns": {stat.st_mtime_ns}}}' in line  # as earlier runs wrote


def test_an_input_rewritten_since_its_result_is_analysed_again(session, tmp_path):
    sources = _images(tmp_path, 2)
    out = tmp_path / "out"
    run_infer(session, sources, out)
    tifffile.imwrite(sources[0], np.full((64, 64), 700, np.uint16))  # re-acquired under the same name
    stat = sources[0].stat()
    os.utime(sources[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later time, whatever the clock
    rerun = run_infer(session, sources, out)
    assert (rerun.done, rerun.changed, rerun.skipped) == (1, 1, 1)
    latest = {r["path"]: r for r in read_records(out)}
    assert latest[str(sources[0].resolve())]["shape"] == [64, 64]
    assert (run_infer(session, sources, out).done, len(read_records(out))) == (0, 2)


def test_reruns_keep_one_record_per_image(session, tmp_path):
    sources = _images(tmp_path, 2)
    (tmp_path / "bad.tif").write_bytes(b"not an image")
    out = tmp_path / "out"
    for _ in range(3):
        report = run_infer(session, sources + [tmp_path / "bad.tif"], out)
        assert len(report.failed) == 1
    records = read_records(out)
    assert len(records) == 3 and sorted(r["status"] for r in records) == ["failed", "ok", "ok"]


def test_progress_counts_the_images_to_analyse_and_where_a_run_stopped(session, tmp_path):
    sources = _images(tmp_path, 3)
    out = tmp_path / "out"
    calls = []

    def stop_at_second(index, total, source):
        calls.append((index, total))
        if index == 1 and source:
            raise KeyboardInterrupt

    assert run_infer(session, sources, out, progress=stop_at_second).interrupted
    assert calls == [(0, 3), (1, 3), (1, 3)]  # the last: one of three finished, not three of three
    calls.clear()
    run_infer(session, sources, out, progress=lambda *a: calls.append(a[:2]))
    assert calls == [(0, 2), (1, 2), (2, 2)]  # the one already done is not counted
    calls.clear()
    run_infer(session, sources, out, progress=lambda *a: calls.append(a[:2]))
    assert calls == [(0, 0)]


def test_summary_is_brought_up_to_date_during_a_run(session, tmp_path, monkeypatch):
    import ifrt.infer

    monkeypatch.setattr(ifrt.infer, "SUMMARY_SECONDS", 0.0)
    sources = _images(tmp_path, 3)
    out = tmp_path / "out"
    rows = []
    run_infer(session, sources, out, progress=lambda index, total, source: rows.append(
        len((out / "summary.csv").read_text().splitlines()) - 1 if (out / "summary.csv").exists() else None))
    assert rows == [None, 1, 2, 3]


def _model_without_fp16(tiny_package, folder):
    import shutil

    shutil.copytree(tiny_package, folder, ignore=shutil.ignore_patterns("*.fp16.onnx*"))
    return folder


def _add_fp16_export(tiny_package, model):
    import shutil

    for path in tiny_package.glob("*.fp16.onnx*"):
        shutil.copy(path, model / path.name)


def _change_full_graph(model):
    """full.onnx with other bytes and a sidecar that records them, as a re-export of another network would be."""
    import hashlib

    with open(model / "full.onnx", "ab") as f:
        f.write(b"\x00" * 16)
    sidecar = json.loads((model / "full.onnx.json").read_text())
    sidecar["sha256"] = hashlib.sha256((model / "full.onnx").read_bytes()).hexdigest()
    (model / "full.onnx.json").write_text(json.dumps(sidecar))


def test_an_export_of_another_precision_added_to_the_model_keeps_finished_results(tiny_package, tmp_path):
    model = _model_without_fp16(tiny_package, tmp_path / "model")
    sources = _images(tmp_path, 2)
    assert run_infer(ifrt.Session(model, backend="ort"), sources, tmp_path / "out").done == 2
    _add_fp16_export(tiny_package, model)
    rerun = run_infer(ifrt.Session(model, backend="ort"), sources, tmp_path / "out")
    assert (rerun.done, rerun.skipped) == (0, 2)
    assert json.loads((tmp_path / "out" / RUN).read_text())["model"]["graphs"] == ["full"]
    _change_full_graph(model)
    with pytest.raises(InferSetupError, match="model: "):
        run_infer(ifrt.Session(model, backend="ort"), sources, tmp_path / "out")


def test_a_run_record_that_hashed_every_graph_still_holds_when_its_graphs_are_unchanged(tiny_package, tmp_path):
    """run.json written when the model's sha256 covered every graph in the folder and model.json's bytes."""
    import hashlib

    model = _model_without_fp16(tiny_package, tmp_path / "model")
    sources = _images(tmp_path, 2)
    out = tmp_path / "out"
    run_infer(ifrt.Session(model, backend="ort"), sources, out)
    digest = hashlib.sha256()
    for name in ("focus", "full"):
        digest.update(f"{name}={json.loads((model / f'{name}.onnx.json').read_text())['sha256']}\n".encode())
    digest.update(f"model.json={hashlib.sha256((model / 'model.json').read_bytes()).hexdigest()}\n".encode())
    run = json.loads((out / RUN).read_text())
    run["model"] = {"folder": run["model"]["folder"], "sha256": digest.hexdigest()}
    (out / RUN).write_text(json.dumps(run))
    _add_fp16_export(tiny_package, model)
    rerun = run_infer(ifrt.Session(model, backend="ort"), sources, out)
    assert (rerun.done, rerun.skipped) == (0, 2)
    (out / RUN).write_text(json.dumps(run))
    _change_full_graph(model)
    with pytest.raises(InferSetupError, match="model: "):
        run_infer(ifrt.Session(model, backend="ort"), sources, out)
