"""`ifrt eval`: one report comparing a single-task and a hierarchical model per blur level."""

import dataclasses
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skimage")

from _train_data import make_tiny_database  # noqa: E402

from ifrt.train.trainer import load_config, train  # noqa: E402

TINY = os.path.join(os.path.dirname(__file__), "..", "train", "configs", "tiny.yaml")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    from conftest import run_ifrt

    root = tmp_path_factory.mktemp("eval")
    database = make_tiny_database(root / "db")
    for variant in ("st", "hier"):  # the hierarchical model with a blur-kind head, whose verdicts are scored too
        model = {"variant": variant, **({"deblur_kind": True} if variant == "hier" else {})}
        train(database, load_config(TINY, {"model": model, "train": {"epochs": 1}}), root / variant)
    out = root / "report"
    proc = run_ifrt("eval", "--model", str(root / "st"), "--model", str(root / "hier"), "--data", str(database),
                    "--out", str(out), "--deblur-images", "2", "--natural-draws", "1")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def report(report_dir):
    return json.loads((report_dir / "report.json").read_text())


def test_every_model_gets_diagnosis_accuracy_at_every_blur_level(report):
    assert list(report["models"]) == ["st", "hier"]
    for entry in report["models"].values():
        assert list(entry["diagnosis"]["accuracy_per_level"]) == ["0", "1", "2", "3", "4"]
        assert 0.0 <= entry["diagnosis"]["accuracy"] <= 1.0
        assert set(entry["diagnosis"]["auc"]) == {"DN", "IgAN", "LN", "MN"}
        assert entry["diagnosis"]["temperature"] > 0


def test_accuracy_is_also_reported_without_stain_negative_images(report):
    assert 0 < report["stain_positive_images"] <= report["images"]
    for entry in report["models"].values():
        assert list(entry["diagnosis"]["stain_positive_accuracy_per_level"]) == ["0", "1", "2", "3", "4"]


def test_only_multi_task_models_get_an_iqa_section(report):
    assert "iqa" not in report["models"]["st"]
    iqa = report["models"]["hier"]["iqa"]
    assert set(iqa["blur_accuracy_per_level"]) == {"0", "1", "2", "3", "4"}
    assert -1.0 <= iqa["quality_srocc"] <= 1.0


@pytest.mark.parametrize("kind, levels", [("gaussian", ["0", "1", "2", "3", "4"]), ("defocus", ["1", "2", "3", "4"])])
def test_deblurring_is_compared_with_the_input_and_richardson_lucy_per_kind_and_level(report, kind, levels):
    table = dict(report["deblur"]["per_kind"][kind])
    assert list(table) == levels  # in focus is the same frame for every kind: scored once, under gaussian
    if "0" in table:
        in_focus = table.pop("0")  # no blur to invert: the input and the networks only
        assert set(in_focus) == {"input", "hier"}  # nor a Wiener bound
        assert in_focus["hier"]["psnr_gain_vs_input"] == pytest.approx(
            in_focus["hier"]["psnr"] - in_focus["input"]["psnr"])
    for entry in table.values():
        assert set(entry) == {"input", "hier", "richardson_lucy", "wiener_level_psf", "wiener_oracle"}
        assert entry["wiener_oracle"]["psnr_gain_vs_input"] > 0
        assert entry["richardson_lucy"]["iterations"] in (5, 10, 20, 40)
        assert entry["wiener_level_psf"]["nsr"] in (1e-3, 3e-3, 1e-2, 3e-2)
        # the bound is given the frame's own PSF, spectrum and noise; the filter only the level's PSF
        assert entry["wiener_oracle"]["psnr"] >= entry["wiener_level_psf"]["psnr"]
        assert entry["hier"]["psnr_gain_vs_input"] == pytest.approx(entry["hier"]["psnr"] - entry["input"]["psnr"])
        # two frames per level: the kind head named the kind of none, one or both
        assert entry["hier"]["blur_kind_accuracy"] in (0.0, 0.5, 1.0)
    assert all("blur_kind_accuracy" not in e["hier"] for lv, e in report["deblur"]["per_kind"][kind].items()
               if lv == "0")  # in focus there is no kind to name


def _blurred_with_noise(sigma, noise, seed=0):
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    target = gaussian_filter(rng.random((64, 96)), 1.0) * 2  # texture with detail down to a few pixels
    return target, gaussian_filter(target, sigma, mode="mirror", truncate=4.0) + rng.normal(0, noise, target.shape)


def test_wiener_bound_inverts_a_known_blur_almost_exactly_without_noise():
    from ifrt.train.data.blur import gaussian_psf
    from ifrt.train.evaluate import wiener_oracle
    from ifrt.train.metrics import psnr

    target, observed = _blurred_with_noise(1.0, 1e-7)
    assert psnr(observed, target) < 30
    assert psnr(wiener_oracle(observed, target, gaussian_psf(1.0)), target) > 60


def test_wiener_bound_takes_a_psf_wider_than_the_image():
    from ifrt.train.data.blur import gaussian_psf
    from ifrt.train.evaluate import wiener_oracle

    target = np.linspace(0, 1, 12 * 10).reshape(12, 10)
    psf = gaussian_psf(5.0)  # 41 x 41 against a 12 x 10 image (22 x 18 mirrored)
    assert psf.shape[0] > 2 * target.shape[0]
    assert wiener_oracle(target, target, psf).shape == target.shape


def test_wiener_bound_gains_less_as_noise_grows():
    from ifrt.train.data.blur import gaussian_psf
    from ifrt.train.evaluate import wiener_oracle
    from ifrt.train.metrics import psnr

    gains = []
    for noise in (1e-3, 1e-2, 1e-1):
        target, observed = _blurred_with_noise(2.0, noise)
        gains.append(psnr(wiener_oracle(observed, target, gaussian_psf(2.0)), target) - psnr(observed, target))
    assert gains[0] > gains[1] > gains[2] > 0


def test_wiener_filter_inverts_a_known_blur_and_trades_noise_for_detail_by_its_ratio():
    from ifrt.train.data.blur import gaussian_psf
    from ifrt.train.evaluate import wiener_filter
    from ifrt.train.metrics import psnr

    target, observed = _blurred_with_noise(1.0, 1e-7)
    assert psnr(wiener_filter(observed, gaussian_psf(1.0), (1e-10,))[0], target) > 45
    target, observed = _blurred_with_noise(2.0, 1e-2)
    ratios = (1e-8, 1e-3, 1.0)
    restored = wiener_filter(observed, gaussian_psf(2.0), ratios)
    by_ratio = {nsr: psnr(y, target) for nsr, y in zip(ratios, restored, strict=True)}
    assert by_ratio[1e-3] > psnr(observed, target)  # restores
    assert by_ratio[1e-8] < psnr(observed, target)  # next to no regularisation: the noise explodes
    assert by_ratio[1e-3] > by_ratio[1.0]  # too much: hardly changes the blurred image


def test_level_psf_is_the_kernel_of_the_level_sigma_for_each_kind():
    from ifrt.train.data import blur
    from ifrt.train.data.degrade import DegradeConfig, level_psf

    cfg = DegradeConfig()
    np.testing.assert_array_equal(level_psf("gaussian", 2, cfg), blur.gaussian_psf(cfg.sigmas[2]))
    defocus = level_psf("defocus", 3, cfg)
    assert blur.ee50_sigma(defocus) == pytest.approx(cfg.sigmas[3], rel=0.12)
    for kind, level, message in (("spatial", 2, "no single PSF"), ("gaussian", 0, "no PSF"), ("defocus", 5, "no PSF")):
        with pytest.raises(ValueError, match=message):
            level_psf(kind, level, cfg)


def test_quality_on_natural_pictures_is_compared_with_variance_of_laplacian(report):
    natural = report["natural_images"]
    assert len(natural["images"]) >= 10
    assert set(natural["mean"]) == {"variance_of_laplacian", "hier"}


def test_each_model_is_reported_with_its_size_and_cost(report, report_dir):
    from ifrt.train.model import DeepMTND, model_config
    from ifrt.train.model.io import count_flops

    for variant in ("st", "hier"):
        entry = report["models"][variant]
        network = DeepMTND(model_config("tiny", variant, **({"deblur_kind": True} if variant == "hier" else {})))
        assert entry["params"] == sum(p.numel() for p in network.parameters())
        assert entry["gflops_512"] == pytest.approx(count_flops(network, 512, 512) / 1e9)
    assert report["models"]["st"]["gflops_512"] < report["models"]["hier"]["gflops_512"]
    hier = report["models"]["hier"]
    assert f"| hier | hier | tiny | {hier['params'] / 1e6:.3f} M | {hier['gflops_512']:.3f} |" in \
        (report_dir / "report.md").read_text()


def test_markdown_report_and_plots_are_written(report_dir):
    text = (report_dir / "report.md").read_text()
    assert "| st (st) |" in text and "| hier (hier) |" in text and "Richardson-Lucy" in text
    assert text.count("hier names the blur kind of ") == 2  # under the Gaussian and the defocus table
    for name in ("accuracy_per_level.png", "quality_per_level.png", "confusion_hier.png", "reliability_st.png"):
        assert (report_dir / name).stat().st_size > 1000, name


def test_a_split_without_in_focus_references_is_refused_naming_the_manifest_and_the_fix(tmp_path):
    from ifrt.train.data.manifest import read_manifest, write_manifest
    from ifrt.train.evaluate import evaluate
    from ifrt.train.model import build_model, model_config, save_model

    database = make_tiny_database(tmp_path / "db")
    manifest = database / "manifest.csv"
    write_manifest(manifest, [dataclasses.replace(row, sharp_path=None) for row in read_manifest(manifest)])
    save_model(build_model(model_config("tiny", "hier", class_names=["DN", "IgAN", "LN", "MN"])), tmp_path / "model")
    with pytest.raises(ValueError, match=rf"{manifest}: no row with split='test' has an in-focus reference "
                                         r"\(sharp_path\), so there is nothing to degrade per blur level; fill "
                                         r"sharp_path with the in-focus capture of each field \(for an in-focus "
                                         r"capture, the image itself\)"):
        evaluate([tmp_path / "model"], database, tmp_path / "report")


def test_test_frames_of_different_sizes_are_evaluated_one_at_a_time(tmp_path):
    import cv2
    import tifffile

    from ifrt.train.data.manifest import read_manifest
    from ifrt.train.evaluate import evaluate
    from ifrt.train.model import build_model, model_config, save_model

    database = make_tiny_database(tmp_path / "db")
    rows = [r for r in read_manifest(database / "manifest.csv") if r.split == "test"]
    reference = database / rows[0].sharp_path
    tifffile.imwrite(reference, cv2.resize(tifffile.imread(reference), (96, 96)))  # one larger test frame
    save_model(build_model(model_config("tiny", "hier", class_names=["DN", "IgAN", "LN", "MN"])), tmp_path / "model")
    report = evaluate([tmp_path / "model"], database, tmp_path / "report", deblur_images=0, natural=False,
                      calibrate=False)
    assert report["images"] == len(rows)
