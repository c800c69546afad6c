"""ifrt.Session: backends agree, tiling, the quality gate, deblurred output, bad input, model checks."""

import shutil

import numpy as np
import pytest

import ifrt
from ifrt.imageio import ImageReadError
from ifrt.model_package import ModelPackageError, open_model
from ifrt.session import InputError


def _glomeruli(count=3, size=128, seed=0):
    from ifrt.train.data.degrade import degrade
    from ifrt.train.data.synth import render_glomerulus

    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        sharp = render_glomerulus(rng, ("IgAN", "MN", "DN", "LN")[i % 4], "IgG", size)
        images.append(np.round(degrade(sharp, rng, level=i % 5).image * 4095).astype(np.uint16))
    return images


@pytest.fixture(scope="module")
def ort_session(tiny_package):
    return ifrt.Session(tiny_package, backend="ort")


def test_ort_and_torch_backends_agree_on_synthetic_glomeruli(tiny_package, ort_session):
    torch_session = ifrt.Session(tiny_package, backend="torch")
    for image in _glomeruli():
        a = ort_session.predict(image, deblur=True)
        b = torch_session.predict(image, deblur=True)
        assert a.backend == "ort" and b.backend == "torch"
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-4)
        assert a.label == b.label and a.blur_level == b.blur_level
        assert abs(a.quality - b.quality) <= 1e-4
        np.testing.assert_allclose(a.quality_map, b.quality_map, atol=1e-4)
        assert np.abs(a.deblurred.astype(np.int32) - b.deblurred.astype(np.int32)).max() <= 1


def test_result_has_probabilities_maps_and_timings(ort_session):
    result = ort_session.predict(_glomeruli(1, size=160)[0])
    assert result.probabilities.shape == (4,) and abs(float(result.probabilities.sum()) - 1) < 1e-5
    assert result.blur_probabilities.shape == (5,)
    assert result.quality_map.shape == (5, 5) and result.certainty.shape == (5, 5)
    assert 0 <= result.quality <= 1 and ((0 <= result.certainty) & (result.certainty <= 1)).all()
    assert set(result.timings_ms) >= {"read", "preprocess", "infer", "postprocess", "total"}
    assert result.to_dict()["diagnosis"] in ("IgAN", "MN", "DN", "LN")


def test_deblurred_output_keeps_input_dtype_and_shape(ort_session):
    image = _glomeruli(1, size=100)[0]  # not a multiple of 32: padded inside, cropped back
    result = ort_session.predict(image, deblur=True)
    assert result.deblurred.dtype == np.uint16 and result.deblurred.shape == (100, 100)
    assert result.quality_map.shape == (4, 4)


def test_large_frames_are_tiled_and_blended_to_full_size(tiny_package):
    session = ifrt.Session(tiny_package, backend="ort", tile=128, overlap=32, max_untiled=128)
    image = np.tile(_glomeruli(1, size=128)[0], (2, 3))[:250, :370]
    result = session.predict(image, deblur=True)
    assert result.tiles == 3 * 4  # 256 x 384 padded frame, 128 tiles stepping by 96
    assert result.deblurred.shape == (250, 370)
    assert result.quality_map.shape == (8, 12)


def test_low_quality_marks_the_diagnosis_unreliable_with_advice_that_fits_the_blur():
    from ifrt.commands.demo import SAMPLES

    strict = ifrt.Session(backend="ort", quality_threshold=1.0)  # the bundled model: it knows blur
    blurred = strict.predict(SAMPLES / "images/P00001/P00001_00_IgG.tif")  # blur level 3
    assert not blurred.reliable and blurred.blur_level > 0
    assert blurred.warnings[0].endswith(f"(blur level {blurred.blur_level}): the diagnosis is unreliable; "
                                        "re-acquire the image in focus")
    sharp = strict.predict(SAMPLES / "images/P00001/P00001_01_IgA.tif")  # in focus
    assert not sharp.reliable and sharp.blur_level == 0
    assert "although no blur is detected" in sharp.warnings[0] and "in focus" not in sharp.warnings[0]
    lenient = ifrt.Session(backend="ort", quality_threshold=0.0)
    assert lenient.predict(SAMPLES / "images/P00001/P00001_00_IgG.tif").warnings == []


def test_quality_warning_never_shows_the_quality_rounded_up_to_its_threshold(tiny_package, ort_session):
    image = _glomeruli(1)[0]
    quality = ort_session.predict(image).quality
    gate = ifrt.Session(tiny_package, backend="ort", quality_threshold=quality + 1e-5)
    warning = gate.predict(image).warnings[0]
    shown = float(warning.split("image quality ")[1].split()[0])
    assert shown < gate.quality_threshold and f"is below {gate.quality_threshold:g}" in warning


def test_contrast_to_noise_tells_structure_from_camera_noise():
    from ifrt.session import MIN_CONTRAST_TO_NOISE, contrast_to_noise

    def ratio(image):
        lo, hi = np.percentile(image, (1, 99.8))
        return contrast_to_noise(image, lo, hi)

    rng = np.random.default_rng(0)
    assert ratio(rng.normal(1000, 10, (256, 256)).astype(np.float32)) == 0.0
    assert ratio(np.full((64, 64), 1000, np.uint16)) == 0.0
    assert ratio(rng.poisson(0.3, (256, 256)).astype(np.uint16)) == 0.0  # a few photons, mostly 0
    assert ratio(_glomeruli(1)[0]) > 5 * MIN_CONTRAST_TO_NOISE  # 1.43


@pytest.mark.parametrize("frame", [np.zeros((128, 128), np.uint16), np.full((128, 128), 1000, np.uint16),
                                   np.random.default_rng(1).normal(500, 20, (128, 128)).astype(np.float32)],
                         ids=["black", "uniform", "noise"])
def test_a_frame_without_structure_is_never_a_reliable_diagnosis(tiny_package, frame):
    lenient = ifrt.Session(tiny_package, backend="ort", quality_threshold=0.0)
    result = lenient.predict(frame)
    assert not result.reliable
    assert result.warnings[0].startswith("no structure above the pixel noise")
    assert lenient.predict(_glomeruli(1)[0]).reliable


def test_focus_on_a_frame_without_structure_says_its_quality_means_nothing(ort_session):
    blank = ort_session.focus(np.zeros((1024, 1024), np.uint16), size=256)
    noise = ort_session.focus(np.random.default_rng(2).normal(500, 20, (1024, 1024)).astype(np.float32), size=256)
    for result in (blank, noise):
        assert result.warnings and result.warnings[0].startswith("no structure above the pixel noise")
    assert noise.contrast_to_noise == 0.0  # area-downsampled noise is still noise
    from ifrt.live import sweep_frames

    tissue = ort_session.focus(sweep_frames(size=1024, count=1)[0], size=256)  # a glomerulus field with camera noise
    assert tissue.warnings == [] and tissue.to_dict()["contrast_to_noise"] > 1.0


def _dim_glomerulus_field(size, background, amplitude, seed=0):
    """A field tiled with one glomerulus, `background` + `amplitude` photons at its brightest, Poisson."""
    from ifrt.train.data.synth import render_glomerulus

    rng = np.random.default_rng(seed)
    tile = render_glomerulus(rng, "IgAN", "IgA", 512)
    tile = (tile - tile.min()) / (tile.max() - tile.min())
    scene = np.tile(tile, (-(-size // 512), -(-size // 512)))[:size, :size]
    return rng.poisson(background + amplitude * scene).astype(np.uint16)


def test_focus_finds_structure_in_a_dim_field_and_none_in_photon_noise(ort_session):
    from ifrt.session import MIN_CONTRAST_TO_NOISE

    dim = ort_session.focus(_dim_glomerulus_field(2048, 1.0, 2.0))  # 1.3 photons a pixel on average
    assert dim.warnings == [] and dim.contrast_to_noise > 1.5 * MIN_CONTRAST_TO_NOISE  # 0.38
    rng = np.random.default_rng(0)
    for shape in [(2048, 2048), (768, 768), (1040, 1392)]:  # whole and fractional downsampling factors
        noise = ort_session.focus(rng.poisson(2.0, shape).astype(np.uint16))
        assert noise.contrast_to_noise == 0.0 and noise.warnings


def test_predict_a_list_returns_one_result_per_item(ort_session, tmp_path):
    import tifffile

    image = _glomeruli(1)[0]
    tifffile.imwrite(tmp_path / "a.tif", image)
    results = ort_session.predict([image, tmp_path / "a.tif"])
    assert [r.source for r in results] == ["array[0]", str(tmp_path / "a.tif")]
    np.testing.assert_allclose(results[0].probabilities, results[1].probabilities, atol=1e-6)


def test_focus_path_returns_quality_and_classical_metrics(ort_session):
    frame = np.tile(_glomeruli(1, size=128)[0], (8, 8))  # 1024 x 1024
    result = ort_session.focus(frame, size=256)
    assert result.quality_map.shape == (8, 8)
    assert set(result.metrics) == {"var_laplacian", "tenengrad", "brenner", "normalized_variance", "vollath_f4"}
    assert 0 <= result.blur_level < 5


@pytest.mark.parametrize(("image", "message"), [
    (np.full((64, 64), np.nan, np.float32), "array: 4096 pixels are NaN or infinite"),
    (np.pad(np.full((1, 1), np.inf, np.float32), ((0, 63), (0, 63))), "array: 1 pixel is NaN or infinite; fix"),
    (np.zeros((0, 64), np.uint16), "array: image is empty"),
    (np.zeros((64, 64), np.uint32), "array: uint32 pixels are not supported (expected uint8, uint16 or float32)"),
    (np.zeros((2, 64, 64, 1), np.uint16), "array: expected an H x W or H x W x C image"),
    (np.zeros((1, 1), np.uint16), "array: image is 1x1 pixels; the model needs at least 32x32"),
    (np.zeros((16, 4000), np.uint8), "array: image is 16x4000 pixels; the model needs at least 32x32"),
    (np.zeros((3, 256, 256), np.uint16), "array: shape 3x256x256 would be 256 channels of 3x256 pixels (at most 16); "
                                         "a stack of planes"),
    (np.zeros((100, 64, 64), np.uint16), "array: shape 100x64x64 would be 64 channels of 100x64 pixels"),
    (np.zeros((1, 64, 64), np.float32), "array: shape 1x64x64 would be 64 channels of 1x64 pixels"),
])
def test_bad_arrays_raise_input_error_naming_the_problem(ort_session, image, message):
    with pytest.raises(InputError) as info:
        ort_session.predict(image)
    assert message in str(info.value)


def test_missing_file_error_names_the_file(ort_session, tmp_path):
    with pytest.raises(ImageReadError, match="missing.tif"):
        ort_session.predict(tmp_path / "missing.tif")


def test_a_modified_onnx_is_refused(tiny_package, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_package, copy)
    data = bytearray((copy / "full.onnx").read_bytes())
    data[-1] ^= 0xFF
    (copy / "full.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match=r"full.onnx: sha256 .* does not match its sidecar"):
        open_model(copy)


def test_a_weights_only_model_runs_on_torch_under_auto_and_ort_says_to_export(tiny_package, tmp_path):
    from ifrt.backends import BackendUnavailableError

    pytest.importorskip("torch")
    weights_only = tmp_path / "best"
    weights_only.mkdir()
    for name in ("model.safetensors", "model.json"):
        shutil.copy(tiny_package / name, weights_only / name)
    assert ifrt.Session(weights_only).backend_name == "torch"
    with pytest.raises(BackendUnavailableError) as info:
        ifrt.Session(weights_only, backend="ort")
    assert str(info.value) == (f"{weights_only}: no fp32 ONNX graphs here (found: none), so the ort backend cannot "
                               f"run this model; export them with `ifrt export onnx {weights_only} -o {weights_only}` "
                               "or use the torch backend")


def test_the_export_a_missing_fp16_graph_needs_is_named_with_its_precision(tiny_package, tmp_path):
    from ifrt.backends import BackendUnavailableError

    fp32_only = tmp_path / "fp32-only"
    shutil.copytree(tiny_package, fp32_only, ignore=shutil.ignore_patterns("*.fp16.onnx*"))
    with pytest.raises(BackendUnavailableError) as info:
        ifrt.Session(fp32_only, backend="ort", precision="fp16")
    assert str(info.value).endswith(f"export them with `ifrt export onnx {fp32_only} -o {fp32_only} --fp16`")


def test_a_training_run_folder_opens_as_its_best_checkpoint(tiny_package, tmp_path):
    pytest.importorskip("torch")
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    for name in ("model.safetensors", "model.json"):
        shutil.copy(tiny_package / name, run / "best" / name)
    assert open_model(run).root == run / "best"
    assert ifrt.Session(run).backend_name == "torch"


def weights_only_copy(package, folder):
    """The model's weights and config alone, as a training run's best/ holds them (no ONNX graphs)."""
    folder.mkdir()
    for name in ("model.safetensors", "model.json"):
        shutil.copy(package / name, folder / name)
    return folder


def test_fp16_on_a_weights_only_model_says_why_no_backend_loads(tiny_package, tmp_path):
    from ifrt.backends import BackendUnavailableError

    pytest.importorskip("torch")
    with pytest.raises(BackendUnavailableError, match=r"no inference backend could load this model: .*"
                                                      r"torch: the torch backend runs fp32 only, not fp16"):
        ifrt.Session(weights_only_copy(tiny_package, tmp_path / "best"), precision="fp16")


def test_fp16_on_the_torch_backend_is_refused_not_ignored(tiny_package):
    from ifrt.backends import BackendUnavailableError

    pytest.importorskip("torch")
    with pytest.raises(BackendUnavailableError, match=r"the torch backend runs fp32 only, not fp16"):
        ifrt.Session(tiny_package, backend="torch", precision="fp16")


def test_live_session_picks_the_backend_that_loads_the_model(tiny_package, tmp_path):
    from ifrt.live import open_session

    pytest.importorskip("torch")
    assert open_session(weights_only_copy(tiny_package, tmp_path / "best")).backend_name == "torch"


def test_live_session_on_onnxruntime_gets_its_thread_count(tiny_package):
    from ifrt.live import open_session

    session = open_session(tiny_package, backend="ort", threads=1)
    assert session.backend._options.intra_op_num_threads == 1


def test_options_for_one_backend_reach_only_that_backend(tiny_package):
    from ifrt.backends import create_backend

    pytest.importorskip("torch")
    torch_backend = create_backend(open_model(tiny_package), "torch", per_backend={"ort": {"threads": 3}})
    assert torch_backend.name == "torch"
    ort_backend = create_backend(open_model(tiny_package), "ort", per_backend={"ort": {"threads": 3}})
    assert ort_backend._options.intra_op_num_threads == 3


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: (d / "model.json").write_text("{"), r"model.json: not valid JSON"),
    (lambda d: (d / "model.json").write_text("{}"), r'model.json: no "model" section'),
    (lambda d: (d / "model.json").unlink(), r"model.json: no model config here"),
], ids=["corrupt", "empty", "missing"])
def test_a_bad_model_json_is_named(tiny_package, tmp_path, make, message):
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("model.safetensors", "model.json"):
        shutil.copy(tiny_package / name, folder / name)
    make(folder)
    with pytest.raises(ModelPackageError, match=message):
        open_model(folder)


def test_a_file_given_as_the_model_folder_is_named_as_such(tiny_package):
    with pytest.raises(ModelPackageError, match=r"full.onnx: is a file; give the model folder that holds it"):
        open_model(tiny_package / "full.onnx")


def test_unknown_backend_is_rejected(tiny_package):
    with pytest.raises(ValueError, match="backend 'cuda' is unknown"):
        ifrt.Session(tiny_package, backend="cuda")


def _result(patient, probs, quality=0.9):
    from ifrt.result import Result

    return Result(source="x", shape=(32, 32), dtype="uint16", class_names=["A", "B"],
                  probabilities=np.array(probs), quality=quality, blur_level=0,
                  blur_probabilities=np.ones(5) / 5, quality_map=np.ones((1, 1)), certainty=np.ones((1, 1)),
                  reliable=quality >= 0.5, backend="ort", patient_id=patient)


def test_aggregate_multiplies_the_images_probabilities():
    reports = ifrt.aggregate([_result("p1", [0.9, 0.1], 0.9), _result("p1", [0.4, 0.6], 0.1),
                              _result("p2", [0.2, 0.8], 0.7), _result(None, [1.0, 0.0], 1.0)])
    assert [r.patient_id for r in reports] == ["p1", "p2"]
    # 0.9 * 0.4 : 0.1 * 0.6 = 0.36 : 0.06; the confident image outweighs the doubtful one whatever their quality
    np.testing.assert_allclose(reports[0].probabilities, [6 / 7, 1 / 7])
    assert reports[0].label == "A" and reports[0].images == 2 and reports[0].unreliable_images == 1
    assert reports[0].mean_quality == pytest.approx(0.5)
    assert reports[1].label == "B"
    np.testing.assert_allclose(reports[1].probabilities, [0.2, 0.8])


def test_aggregate_without_any_patient_id_says_to_pass_one():
    with pytest.raises(ValueError, match=r"none of the 2 results has a patient_id: .*predict\(image, patient_id=\.\.\.\)"):
        ifrt.aggregate([_result(None, [0.9, 0.1]), _result(None, [0.4, 0.6])])


def test_aggregate_of_no_results_is_no_patients():
    assert ifrt.aggregate([]) == []


def test_aggregate_warns_how_many_results_without_patient_id_it_leaves_out(caplog):
    with caplog.at_level("WARNING", logger="ifrt"):
        reports = ifrt.aggregate([_result("p1", [0.9, 0.1]), _result(None, [0.4, 0.6]), _result(None, [0.4, 0.6])])
    assert [r.patient_id for r in reports] == ["p1"]
    assert "2 of 3 results have no patient_id and are left out" in caplog.text


def test_an_uninformative_image_leaves_the_patient_unchanged():
    from ifrt.patients import combine_probabilities

    np.testing.assert_allclose(combine_probabilities([[0.7, 0.3], [0.5, 0.5], [0.5, 0.5]]), [0.7, 0.3])


def test_a_zero_probability_is_floored_not_a_veto():
    from ifrt.patients import PROBABILITY_FLOOR, combine_probabilities

    np.testing.assert_allclose(combine_probabilities([[1.0, 0.0], [0.0, 1.0]]), [0.5, 0.5])
    p = combine_probabilities([[0.0, 1.0], [0.99, 0.01], [0.99, 0.01], [0.99, 0.01], [0.99, 0.01]])
    expected_a = PROBABILITY_FLOOR * 0.99**4
    np.testing.assert_allclose(p, np.array([expected_a, 0.01**4]) / (expected_a + 0.01**4))


def test_the_training_prior_is_kept_once_per_patient_not_once_per_image():
    from ifrt.patients import combine_probabilities

    prior = [0.8, 0.2]
    # Images that show nothing return the prior; a patient of three such images still has the prior.
    np.testing.assert_allclose(combine_probabilities([prior] * 3, prior), prior)
    np.testing.assert_allclose(combine_probabilities([prior] * 3), np.array([0.8, 0.2]) ** 3 / (0.8**3 + 0.2**3))
    # Two images leaning to B against a prior for A: prod / prior = (0.4 * 0.4 / 0.8) : (0.6 * 0.6 / 0.2)
    np.testing.assert_allclose(combine_probabilities([[0.4, 0.6], [0.4, 0.6]], prior), [0.1, 0.9])
    with pytest.raises(ValueError, match="class_prior needs 2 positive shares"):
        combine_probabilities([[0.4, 0.6]], [1.0, 0.0])


def test_aggregate_uses_the_results_class_prior_and_refuses_mixed_priors():
    a, b = _result("p1", [0.4, 0.6]), _result("p1", [0.4, 0.6])
    a.class_prior = b.class_prior = [0.8, 0.2]
    np.testing.assert_allclose(ifrt.aggregate([a, b])[0].probabilities, [0.1, 0.9])
    b.class_prior = None
    with pytest.raises(ValueError, match="patient p1: results come from models with different class names or priors"):
        ifrt.aggregate([a, b])


def test_session_results_carry_the_models_class_prior(tiny_package):
    session = ifrt.Session(tiny_package)
    result = session.predict(np.random.default_rng(0).integers(0, 4096, (64, 64), dtype=np.uint16))
    assert session.class_prior == pytest.approx([0.4, 0.3, 0.2, 0.1])
    assert result.class_prior == session.class_prior


def test_aggregate_names_the_patient_and_images_of_bad_probabilities():
    with pytest.raises(ValueError, match=r"patient p7 \(x, x\): combine_probabilities: .* finite"):
        ifrt.aggregate([_result("p7", [0.5, 0.5]), _result("p7", [np.nan, 1.0])])


@pytest.mark.parametrize("bad, message", [
    (np.zeros((0, 2)), r"\[images, classes\] with both > 0, got shape \(0, 2\)"),
    (np.ones(3), r"got shape \(3,\)"),
    ([[0.5, np.nan]], "finite and non-negative"),
    ([[1.2, -0.2]], "finite and non-negative"),
])
def test_combine_probabilities_refuses_bad_input(bad, message):
    from ifrt.patients import combine_probabilities

    with pytest.raises(ValueError, match=message):
        combine_probabilities(bad)


def test_a_list_of_arrays_names_each_result_by_its_place(ort_session):
    frames = _glomeruli(2, size=64)
    assert [r.source for r in ort_session.predict(frames)] == ["array[0]", "array[1]"]
    assert [r.source for r in ort_session.predict(tuple(frames), name="field")] == ["field[0]", "field[1]"]


@pytest.mark.parametrize(("settings", "message"), [
    ({"batch_size": 0}, "batch_size=0: expected an integer >= 1"),
    ({"precision": "fp8"}, "precision='fp8': expected one of fp32, fp16, int8"),
    ({"precision": "FP16"}, "precision='FP16': expected one of fp32, fp16, int8"),
    ({"quality_threshold": 2.0}, "quality_threshold=2.0: expected a quality between 0 and 1"),
    ({"max_untiled": -1}, "max_untiled=-1: expected an integer >= 32"),
    ({"tile": -32, "overlap": -64}, "tile=-32, overlap=-64: both must be multiples of 32, tile > 0"),
    ({"backend": "ort", "foo": 1}, "foo: not an option of the ort backend, which takes precision, threads"),
    ({"threads": 2}, "threads: not an option of every backend, and backend 'auto' may load any of them: give each "
                     "option to the backend that takes it, per_backend={'ort': {'threads': ...}}"),
    ({"threads": 2, "cache_dir": "engines"}, "cache_dir, threads: not an option of every backend, and backend 'auto' "
     "may load any of them: give each option to the backend that takes it, per_backend={'trt': {'cache_dir': ...}, "
     "'ort': {'threads': ...}}"),
    ({"thread": 2}, "thread: not an option of any backend (they take trt: precision, cache_dir, device; ort: "
                    "precision, threads; torch: precision, device)"),
    ({"per_backend": {"trt": {"threads": 1}}}, "per_backend['trt']: threads: not an option of the trt backend, which "
                                               "takes precision, cache_dir, device"),
    ({"per_backend": {"onnx": {}}}, "per_backend: 'onnx' is not a backend (expected trt, ort, torch)"),
])
def test_session_settings_are_checked_before_anything_loads(tiny_package, settings, message):
    with pytest.raises(ValueError) as info:
        ifrt.Session(tiny_package, **settings)
    assert message in str(info.value)


@pytest.mark.parametrize("source", [None, 5, b"/tmp/image.tif", object()])
def test_predict_refuses_what_is_neither_an_image_nor_a_path_by_type(ort_session, source):
    with pytest.raises(TypeError, match="predict takes an image array, a path or a list of them|not bytes"):
        ort_session.predict(source)


def test_focus_refuses_a_path_naming_what_to_do(ort_session):
    with pytest.raises(TypeError, match=r"focus takes a frame as an array, not a path .*read_image, or use predict"):
        ort_session.focus("/tmp/frame.tif")


@pytest.fixture(scope="module")
def static_package(tiny_package, tmp_path_factory):
    """The tiny model exported with fixed shapes: batch 1, 64x64 (`ifrt export onnx --static`)."""
    pytest.importorskip("torch")
    from ifrt.export import pipeline
    from ifrt.export.onnx_export import OnnxExportOptions

    root = tmp_path_factory.mktemp("static")
    for name in ("model.safetensors", "model.json"):
        shutil.copy(tiny_package / name, root / name)
    pipeline.export_onnx(root, root, calibration_count=2, calibration_size=64,
                         options=OnnxExportOptions(example_size=64, dynamic_batch=False, dynamic_spatial=False))
    return root


def test_a_static_batch_graph_runs_a_batch_of_tiles_one_call_at_a_time(static_package, tiny_package):
    frame = _glomeruli(1, size=128)[0]  # nine 64x64 tiles, in batches of 4
    tiling = {"backend": "ort", "batch_size": 4, "tile": 64, "overlap": 32, "max_untiled": 64}
    static = ifrt.Session(static_package, **tiling).predict(frame)
    dynamic = ifrt.Session(tiny_package, **tiling).predict(frame)
    assert static.tiles == dynamic.tiles == 9
    np.testing.assert_allclose(static.probabilities, dynamic.probabilities, atol=1e-5)
    np.testing.assert_allclose(static.quality_map, dynamic.quality_map, atol=1e-5)


def test_a_frame_of_another_size_than_a_static_graph_takes_is_refused_naming_both(static_package):
    with pytest.raises(ValueError) as info:
        ifrt.Session(static_package, backend="ort").predict(_glomeruli(1, size=128)[0])
    assert str(info.value) == (f"{static_package / 'full.onnx'}: the graph takes 64x64 images only (exported with "
                               "--static), not 128x128; export it without --static, or give frames of that size")
