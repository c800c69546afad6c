"""`ifrt.acquisition.focus_hook`: a pycromanager image processor, driven here with synthetic frames and
metadata dicts shaped like pycromanager's (no pycromanager needed)."""

import json

import numpy as np
import pytest

from ifrt import live
from ifrt.acquisition import focus_hook
from ifrt.live import SweepTracker


@pytest.fixture(scope="module")
def session(tiny_package):
    import ifrt

    return ifrt.Session(tiny_package, backend="ort")


@pytest.fixture(scope="module")
def stack():
    return live.sweep_frames(size=256, count=5)  # a glomerulus in the field: structure well above the noise


def pycromanager_metadata(z: int, time: int = 0) -> dict:
    return {"Axes": {"z": z, "time": time}, "ZPosition_um_Intended": -1.0 + 0.5 * z, "PixelType": "GRAY16",
            "Width": 256, "Height": 256}


def test_hook_returns_the_image_untouched_and_the_metadata_with_focus_results(session, stack):
    hook = focus_hook(session)
    image = stack[2]
    before = image.copy()
    metadata = pycromanager_metadata(2)
    out_image, out_metadata = hook(image, metadata)
    assert out_image is image and np.array_equal(image, before)
    assert out_metadata is metadata
    expected = session.focus(image)
    assert out_metadata["ifrt_quality"] == pytest.approx(expected.quality, abs=1e-6)
    assert out_metadata["ifrt_blur_level"] == expected.blur_level
    assert out_metadata["ifrt_certainty"] == pytest.approx(float(np.mean(expected.certainty)), abs=1e-6)
    assert out_metadata["ifrt_var_laplacian"] == pytest.approx(expected.metrics["var_laplacian"])
    assert out_metadata["ifrt_backend"] == "ort"
    assert out_metadata["ifrt_latency_ms"] > 0
    assert out_metadata["Axes"] == {"z": 2, "time": 0}  # pycromanager's own keys are kept


def test_hook_metadata_is_plain_json(session, stack):
    _, metadata = focus_hook(session, maps=True)(stack[0], pycromanager_metadata(0))
    assert json.loads(json.dumps(metadata)) == metadata
    assert np.asarray(metadata["ifrt_quality_map"]).shape == (8, 8)  # one value per 32x32 tile


def test_every_added_key_has_the_prefix(session, stack):
    original = pycromanager_metadata(1)
    _, metadata = focus_hook(session, prefix="focus.")(stack[1], dict(original))
    added = set(metadata) - set(original)
    assert added and all(key.startswith("focus.") for key in added)


def test_bad_frame_gets_an_error_key_and_the_acquisition_goes_on(session):
    hook = focus_hook(session)
    image = np.zeros((64, 64), np.int32)
    out_image, metadata = hook(image, pycromanager_metadata(0))
    assert out_image is image
    assert metadata["ifrt_error"] == "int32 pixels are not supported (expected uint8, uint16 or float32)"
    assert "ifrt_quality" not in metadata
    assert (hook.images, hook.errors) == (0, 1)


def test_a_path_instead_of_an_image_gets_an_error_naming_it(session):
    # Before, the path became a 0-d array: "shape (): expected ...".
    hook = focus_hook(session)
    out_image, metadata = hook("/data/biopsy/z3.tif", pycromanager_metadata(3))
    assert out_image == "/data/biopsy/z3.tif"
    assert metadata["ifrt_error"] == ("got the path '/data/biopsy/z3.tif', not an image (a numpy array); the hook "
                                      "analyses the pixels the acquisition passes (a file: read it with "
                                      "ifrt.imageio.read_image)")
    assert (hook.images, hook.errors) == (0, 1)


def test_a_colour_image_is_analysed_as_its_per_pixel_maximum_as_ifrt_live_does(session, stack):
    # The signal in the green channel only, as a pseudo-coloured camera delivers one fluorophore; before, the
    # hook analysed the empty red channel.
    colour = np.zeros((*stack[2].shape, 3), stack[2].dtype)
    colour[:, :, 1] = stack[2]
    _, metadata = focus_hook(session)(colour, pycromanager_metadata(2))
    expected = session.focus(live.single_channel(colour))
    assert metadata["ifrt_quality"] == pytest.approx(expected.quality, abs=1e-6)
    assert metadata["ifrt_var_laplacian"] == pytest.approx(expected.metrics["var_laplacian"])
    assert metadata["ifrt_var_laplacian"] == pytest.approx(session.focus(stack[2]).metrics["var_laplacian"])
    assert "ifrt_warnings" not in metadata


def test_a_channel_picks_that_channel_of_a_colour_image(session, stack):
    colour = np.zeros((*stack[2].shape, 3), stack[2].dtype)
    colour[:, :, 1] = stack[2]
    _, metadata = focus_hook(session, channel=0)(colour, pycromanager_metadata(2))
    assert metadata["ifrt_var_laplacian"] == 0.0  # the empty channel
    assert metadata["ifrt_warnings"]


def test_sweep_marks_the_best_image_of_each_stack(session, stack):
    hook = focus_hook(session, sweep=True)
    records = {}
    for time_point in (0, 1):
        for z, image in enumerate(stack if time_point == 0 else stack[::-1]):
            _, metadata = hook(image, pycromanager_metadata(z, time_point))
            records[(time_point, z)] = metadata
    assert len(hook.stacks) == 2
    for time_point in (0, 1):
        expected = live.SweepTracker()
        for z in range(5):
            m = records[(time_point, z)]
            expected.add(z, f"z={z}", m["ifrt_quality"], {"normalized_variance": m["ifrt_normalized_variance"]})
        best = hook.best(time=time_point)
        assert best["quality"] == expected.best()["quality"]
        assert best["label"] == f"z={expected.best()['frame']}, time={time_point}"
        assert best["z_um"] == -1.0 + 0.5 * expected.best()["frame"]
        assert records[(time_point, 4)]["ifrt_sweep_best_image"] == best["label"]


def test_an_image_without_structure_is_flagged_and_never_wins_its_sweep(session, stack):
    hook = focus_hook(session, sweep=True)
    _, blank = hook(np.zeros((128, 128), np.uint16), pycromanager_metadata(0))  # the shutter still closed
    assert blank["ifrt_warnings"][0].startswith("no structure above the pixel noise")
    assert blank["ifrt_sweep_best"] is False and blank["ifrt_sweep_best_image"] is None
    _, first = hook(stack[0], pycromanager_metadata(1))
    assert "ifrt_warnings" not in first and first["ifrt_sweep_best"] is True
    assert first["ifrt_sweep_best_image"] == "z=1, time=0"
    json.dumps(blank)


def test_a_sweep_tolerance_that_would_never_pick_is_refused_when_the_hook_is_made(session):
    with pytest.raises(ValueError, match=r"sweep tolerance nan"):
        focus_hook(session, sweep=True, sweep_tolerance=float("nan"))


def test_metadata_that_is_not_a_dict_passes_through(session, stack):
    hook = focus_hook(session)
    assert hook(stack[0], None) == (stack[0], None)
    assert hook.errors == 1


def test_hook_called_from_several_threads_counts_and_numbers_every_image_once(session, stack, monkeypatch):
    import threading
    import time

    result = session.focus(stack[2])

    class SlowSession:  # analysis that takes a while, so that calls overlap
        backend_name = "ort"

        def focus(self, image, **options):
            time.sleep(0.01)
            return result

    offered = []

    class RecordingTracker(SweepTracker):
        def add(self, index, *args, **kwargs):
            offered.append(index)
            return super().add(index, *args, **kwargs)

    monkeypatch.setattr("ifrt.acquisition.SweepTracker", RecordingTracker)
    hook = focus_hook(SlowSession(), sweep=True)
    threads = [threading.Thread(target=lambda: [hook(stack[2], {}) for _ in range(5)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (hook.images, hook.errors) == (20, 0)
    assert sorted(offered) == list(range(20))  # every image numbered once
    assert (hook.best()["frames_compared"], hook.best()["tied"]) == (20, 20)  # all tie: each counted once
