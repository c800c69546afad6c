"""`ifrt infer` reruns: an image counts as done only when the folder's results were made by the same
model with the same options; otherwise the rerun is refused before anything is written."""

import json

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
