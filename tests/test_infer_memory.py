"""`ifrt infer` over long batches: what a run holds does not grow with the images it has analysed, nor with
the results an earlier run left in the folder. The quality and certainty maps (one cell per 32x32 pixels,
written into results.jsonl) are the bulk of a record: a 4096 x 4096 frame's two maps are 32,768 numbers,
about 1 MB as Python floats."""

import json
import tracemalloc

import numpy as np
import pytest
import tifffile

import ifrt
from ifrt.infer import read_records, run_infer

MAP_CELLS = (128, 128)  # the maps of a 4096 x 4096 frame


class _LargeFrameMaps:
    """The tiny model's session, its results carrying the maps of a 4096 x 4096 frame, so that a batch of
    small files stands for a batch of large frames."""

    def __init__(self, session):
        self._session = session

    def __getattr__(self, name):
        return getattr(self._session, name)

    def predict(self, image, **options):
        result = self._session.predict(image, **options)
        result.quality_map = np.full(MAP_CELLS, 0.25, np.float32)
        result.certainty = np.full(MAP_CELLS, 0.75, np.float32)
        return result


@pytest.fixture(scope="module")
def session(tiny_package):
    return _LargeFrameMaps(ifrt.Session(tiny_package, backend="ort"))


@pytest.fixture
def sources(tmp_path):
    paths = []
    for i in range(60):
        paths.append(tmp_path / "images" / f"P{i % 3}_img{i:02d}.tif")
        paths[-1].parent.mkdir(exist_ok=True)
        tifffile.imwrite(paths[-1], (np.random.default_rng(i).random((32, 32)) * 3000).astype(np.uint16))
    return paths


def _peak_megabytes(run) -> float:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_a_run_does_not_hold_the_maps_of_the_images_it_has_analysed(session, sources, tmp_path):
    out = tmp_path / "out"
    peak = _peak_megabytes(lambda: run_infer(session, sources, out, patient_pattern=r"(P\d)_"))
    assert peak < 10  # 60 images' maps held: 134 MB
    records = read_records(out)
    assert len(records) == 60 and all(np.shape(r["quality_map"]) == MAP_CELLS for r in records)
    assert len(json.loads((out / "patients.json").read_text())) == 3


def test_a_rerun_over_a_folder_of_finished_images_does_not_load_their_maps(session, sources, tmp_path):
    out = tmp_path / "out"
    run_infer(session, sources, out)
    peak = _peak_megabytes(lambda: run_infer(session, sources, out))
    assert peak < 10  # 60 records read with their maps: 134 MB


def test_compacting_results_keeps_each_images_latest_record_whole(session, sources, tmp_path):
    out = tmp_path / "out"
    run_infer(session, sources[:2], out)
    sources[0].write_bytes(b"not an image")  # its rerun is recorded as a failure after its earlier success
    run_infer(session, sources[:2], out)
    records = read_records(out)
    assert [(r["source"], r["status"]) for r in records] == [(str(sources[0]), "failed"), (str(sources[1]), "ok")]
    assert np.shape(records[1]["certainty"]) == MAP_CELLS
