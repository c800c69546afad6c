"""The degradation model: labelled blur levels, three blur kinds, the camera, and the focus measure."""

import cv2
import numpy as np
import pytest
from scipy.ndimage import convolve

from ifrt.train.data import blur, noise
from ifrt.train.data.degrade import DegradeConfig, blur_level_count, degrade, sigma_to_level
from ifrt.train.data.synth import render_glomerulus

CLASSES = ("IgAN", "MN", "DN", "LN")
STAINS = ("IgG", "IgA", "IgM", "C3", "C1q")


@pytest.fixture(scope="module")
def scene():
    return render_glomerulus(np.random.default_rng(5), "MN", "IgG", 256)


@pytest.fixture(scope="module")
def scenes():
    """Sharp scenes of every class and stain, for the focus-measure criterion."""
    return [render_glomerulus(np.random.default_rng(200 + i), CLASSES[i % 4], STAINS[i % 5], 256) for i in range(40)]


def test_default_config_has_five_levels_from_sharp():
    cfg = DegradeConfig()
    assert blur_level_count(cfg) == 5
    assert cfg.sigmas[0] == 0.0


def test_config_refuses_a_first_level_that_is_blurred():
    with pytest.raises(ValueError, match="must start with 0.0"):
        DegradeConfig(sigmas=(0.5, 1.0))


def test_output_is_float32_of_the_input_shape(scene):
    result = degrade(scene, np.random.default_rng(0), level=2, kind="gaussian")
    assert result.image.dtype == np.float32 and result.image.shape == scene.shape
    assert result.blur_level == 2 and result.kind == "gaussian"


def test_level_zero_is_in_focus_with_a_zero_blur_map(scene):
    result = degrade(scene, np.random.default_rng(0), level=0, kind="spatial")
    assert result.severity == 0.0 and result.kind == "gaussian"  # a zero-sigma Gaussian: no blur
    assert result.blur_map.shape == (8, 8) and not result.blur_map.any()
    # Only camera noise separates it from the scene: the same sharpness.
    lap = [cv2.Laplacian(img, cv2.CV_32F).var() for img in (scene, result.image / result.photobleach)]
    assert lap[1] == pytest.approx(lap[0], rel=0.35)


def test_image_keeps_the_scene_scale_up_to_photobleaching(scene):
    result = degrade(scene, np.random.default_rng(1), level=1, kind="gaussian")
    assert 0.6 <= result.photobleach <= 1.0
    assert result.image.mean() == pytest.approx(scene.mean() * result.photobleach, rel=0.03)


def test_deblurring_reference_is_the_scene_at_the_frame_exposure(scene):
    result = degrade(scene, np.random.default_rng(2), level=0)
    reference = result.reference(scene)
    np.testing.assert_allclose(reference, scene * np.float32(result.photobleach), rtol=1e-6)
    assert result.image.mean() == pytest.approx(reference.mean(), rel=0.03)


@pytest.mark.parametrize("kind", ["gaussian", "defocus", "spatial"])
def test_severity_stays_within_its_level_for_every_kind(scene, kind):
    cfg = DegradeConfig()
    for level in range(1, 5):
        result = degrade(scene, np.random.default_rng(level), cfg, level=level, kind=kind)
        assert result.blur_level == level
        assert float(sigma_to_level(result.severity, cfg)) == pytest.approx(level, abs=0.45)


def test_gaussian_blur_map_is_uniform_at_the_level(scene):
    result = degrade(scene, np.random.default_rng(3), level=3, kind="gaussian")
    assert result.blur_map.shape == (8, 8)
    assert np.ptp(result.blur_map) == 0.0
    assert float(result.blur_map[0, 0]) == pytest.approx(3.0, abs=0.4)


def test_spatial_blur_map_varies_across_the_frame_around_its_level(scene):
    result = degrade(scene, np.random.default_rng(4), level=2, kind="spatial")
    assert result.blur_map.std() > 0.15
    assert float(result.blur_map.mean()) == pytest.approx(2.0, abs=0.5)


def test_spatial_blur_is_sharper_where_its_map_says_so():
    rng = np.random.default_rng(9)
    dots = cv2.GaussianBlur((rng.random((256, 256)) > 0.97).astype(np.float32), (0, 0), 0.7)
    cfg = DegradeConfig(gain=(1e-6, 1e-6), read_noise=0.0)
    result = degrade(dots, np.random.default_rng(2), cfg, level=3, kind="spatial")
    lap = cv2.Laplacian(result.image, cv2.CV_32F) ** 2
    tile_lap = lap.reshape(8, 32, 8, 32).mean(axis=(1, 3))
    correlation = np.corrcoef(tile_lap.ravel(), result.blur_map.ravel())[0, 1]
    assert correlation < -0.5


def test_defocus_psf_is_normalised_and_widens_with_defocus():
    widths = [blur.ee50_sigma(blur.defocus_psf(w)) for w in (0.0, 0.5, 1.0, 2.0)]
    assert blur.defocus_psf(1.0).sum() == pytest.approx(1.0, abs=1e-5)
    assert widths == sorted(widths) and widths[-1] > 3 * widths[0]


def test_defocus_hits_the_requested_gaussian_equivalent_sigma():
    for sigma in (1.0, 2.0, 3.5, 5.0):
        _, psf = blur.defocus_blur(np.zeros((64, 64), np.float32), sigma)
        achieved = blur.ee50_sigma(psf)
        assert achieved == pytest.approx(sigma, rel=0.12)


@pytest.mark.parametrize("kind", ["gaussian", "defocus"])
def test_the_recorded_psf_is_the_blur_the_frame_went_through(scene, kind):
    d = degrade(scene, np.random.default_rng(5), DegradeConfig(gain=(1 / 20000, 1 / 20000)), level=2, kind=kind)
    assert d.psf.sum() == pytest.approx(1.0, abs=1e-5)
    if kind == "gaussian":
        np.testing.assert_array_equal(d.psf, blur.gaussian_psf(d.severity))
    else:  # the severity of a defocus frame is its PSF's Gaussian-equivalent sigma
        assert blur.ee50_sigma(d.psf) == d.severity
    expected = convolve(scene, d.psf, mode="mirror") * d.photobleach  # scipy's "mirror" is BORDER_REFLECT_101
    residual = float(np.abs(d.image - expected).mean())  # camera noise only
    assert residual < 0.2 * float(np.abs(d.reference(scene) - expected).mean())  # far below what the blur did


def test_defocus_psf_is_centred_on_its_middle_element_and_symmetric():
    for waves in (0.0, 0.5, 1.55):
        psf = blur.defocus_psf(waves).astype(np.float64)
        half = psf.shape[0] // 2
        offsets = np.arange(-half, half + 1)
        assert abs(float((psf.sum(axis=1) * offsets).sum())) < 1e-6  # centroid row
        assert abs(float((psf.sum(axis=0) * offsets).sum())) < 1e-6  # centroid column
        np.testing.assert_allclose(psf, psf[::-1, ::-1], atol=1e-9)
        np.testing.assert_allclose(psf, psf.T, atol=1e-9)


def test_blur_convolves_a_point_source_into_the_psf_itself_not_its_rotation():
    kernel = np.zeros((3, 5), np.float32)
    kernel[0, 4], kernel[1, 2], kernel[2, 0] = 0.5, 0.3, 0.2  # no symmetry to hide a flip
    point = np.zeros((11, 13), np.float32)
    point[5, 6] = 1.0
    np.testing.assert_allclose(blur.convolve(point, kernel)[4:7, 4:9], kernel, atol=1e-7)
    np.testing.assert_allclose(blur.convolve(point, kernel), convolve(point, kernel, mode="mirror"), atol=1e-7)
    with pytest.raises(ValueError, match="odd sides"):
        blur.convolve(point, np.ones((2, 3), np.float32))


@pytest.mark.parametrize("kind", ["gaussian", "defocus"])
def test_deconvolving_with_the_recorded_psf_undoes_the_blur(scene, kind):
    """What a non-blind baseline is handed must be the blur the frame went through, position included:
    with next to no camera noise the linear bound restores a level-1 frame by more than 10 dB (a PSF
    off by half a pixel gains about 1 dB)."""
    from ifrt.train.evaluate import wiener_oracle
    from ifrt.train.metrics import psnr

    d = degrade(scene, np.random.default_rng(5), DegradeConfig(gain=(1e-7, 1e-7), read_noise=0.0), level=1, kind=kind)
    reference = d.reference(scene)
    peak = float(reference.max())
    gain = psnr(wiener_oracle(d.image, reference, d.psf), reference, peak) - psnr(d.image, reference, peak)
    assert gain > 10


@pytest.mark.parametrize("kind", ["gaussian", "spatial"])
def test_no_psf_is_recorded_in_focus_or_for_spatially_varying_blur(scene, kind):
    level = 0 if kind == "gaussian" else 3
    assert degrade(scene, np.random.default_rng(5), level=level, kind=kind).psf is None


def test_same_seed_gives_the_same_degradation(scene):
    first = degrade(scene, np.random.default_rng(11))
    second = degrade(scene, np.random.default_rng(11))
    np.testing.assert_array_equal(first.image, second.image)
    assert (first.blur_level, first.kind, first.severity) == (second.blur_level, second.kind, second.severity)


def test_random_draws_cover_every_level_and_kind():
    small = np.full((64, 64), 0.2, np.float32)
    rng = np.random.default_rng(0)
    drawn = {(d.blur_level, d.kind) for d in (degrade(small, rng) for _ in range(300))}
    assert {level for level, _ in drawn} == set(range(5))
    assert {kind for _, kind in drawn} == {"gaussian", "defocus", "spatial"}


def test_camera_noise_variance_is_poisson_gaussian():
    signal, gain, read_noise = 0.25, 1 / 4000, 3.0
    flat = np.full((256, 256), signal, np.float32)
    cfg = DegradeConfig(gain=(gain, gain), read_noise=read_noise, photobleach=(1.0, 1.0))
    image = degrade(flat, np.random.default_rng(0), cfg, level=0).image
    # var = shot (signal * gain) + read (read_noise * gain)^2, in signal units.
    assert image.var() == pytest.approx(signal * gain + (read_noise * gain) ** 2, rel=0.05)


def test_dim_pixels_get_exact_poisson_counts():
    expected = 2.0  # electrons: far below the normal approximation's range
    gain = 1 / 4000
    flat = np.full((128, 128), expected * gain, np.float32)
    adu = noise.camera_adu(flat, np.random.default_rng(0), gain=gain, read_noise=0.0, offset=0.0, bit_depth=16)
    electrons = adu.astype(np.float64) / (gain * 65535)
    # Whole electrons, up to the ADC rounding of half an ADU (1/33 electron here).
    np.testing.assert_allclose(electrons, np.round(electrons), atol=0.5 / (gain * 65535) + 1e-6)
    assert electrons.mean() == pytest.approx(expected, rel=0.03)
    assert electrons.var() == pytest.approx(expected, rel=0.06)


def test_twelve_bit_camera_quantizes_to_4096_levels(scene):
    cfg = DegradeConfig(bit_depth=12)
    result = degrade(scene, np.random.default_rng(0), cfg, level=1)
    assert result.adu.dtype == np.uint16 and int(result.adu.max()) <= 4095
    offset_adu, white_adu = noise.adc_range(12, cfg.offset)
    np.testing.assert_allclose(result.image * white_adu + offset_adu, result.adu, atol=1e-3)


def _laplacian_falls_with_level(sharp, index, kind):
    # One scene, one camera (same seed): only the focus differs between levels.
    values = [cv2.Laplacian(degrade(sharp, np.random.default_rng([7, index]), level=level, kind=kind).image,
                            cv2.CV_32F).var() for level in range(5)]
    return bool(np.all(np.diff(values) < 0))


def test_variance_of_laplacian_falls_with_gaussian_level_on_95_percent_of_images(scenes):
    monotone = [_laplacian_falls_with_level(s, i, "gaussian") for i, s in enumerate(scenes)]
    assert np.mean(monotone) >= 0.95


def test_variance_of_laplacian_falls_with_defocus_level_on_95_percent_of_images(scenes):
    monotone = [_laplacian_falls_with_level(s, i, "defocus") for i, s in enumerate(scenes)]
    assert np.mean(monotone) >= 0.95
