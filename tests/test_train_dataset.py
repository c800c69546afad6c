"""The training dataset: on-the-fly degradation, masks for unknown targets, reproducible draws."""

import dataclasses
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _train_data import make_tiny_database  # noqa: E402

from ifrt.train.data.manifest import read_manifest  # noqa: E402
from ifrt.train.dataset import DataConfig, ManifestDataset, class_names_of, random_scene  # noqa: E402


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    return make_tiny_database(tmp_path_factory.mktemp("db"))


def _dataset(root, rows=None, **kwargs):
    rows = rows if rows is not None else read_manifest(root / "manifest.csv")
    cfg = DataConfig(**{"crop": 64, **kwargs.pop("cfg", {})})
    return ManifestDataset(root, rows, class_names_of(rows), cfg, **{"train": True, **kwargs})


def test_row_with_reference_is_degraded_on_the_fly_with_every_target_known(database):
    sample = _dataset(database, cfg={"content_diversity": 0.0})[0]
    assert sample["image"].shape == sample["sharp"].shape == (1, 64, 64)
    assert bool(sample["has_sharp"]) and int(sample["blur_level"]) in range(5) and int(sample["diagnosis"]) >= 0
    assert sample["blur_map"].shape == (2, 2) and bool(torch.isfinite(sample["blur_map"]).all())


def test_input_is_percentile_normalized_and_reference_shares_its_scale(database):
    sample = _dataset(database, cfg={"content_diversity": 0.0, "levels": [0]})[0]
    image = sample["image"].numpy().ravel()
    assert np.percentile(image, 1) == pytest.approx(0.0, abs=1e-5)
    assert np.percentile(image, 99.8) == pytest.approx(1.0, abs=1e-5)
    # In focus, input and reference differ only by camera noise, on the same normalized scale and at the
    # same exposure (the reference is dimmed like the frame): their means agree, not just their shapes.
    sharp = sample["sharp"].numpy().ravel()
    assert np.corrcoef(image, sharp)[0, 1] > 0.9
    assert sharp.mean() == pytest.approx(image.mean(), rel=0.05)


def test_unknown_targets_are_masked_not_imputed(database):
    rows = [dataclasses.replace(r, diagnosis=None, blur_level=None, sharp_path=None, extra={})
            for r in read_manifest(database / "manifest.csv")]
    sample = ManifestDataset(database, rows, ["DN", "IgAN", "LN", "MN"], DataConfig(crop=64), train=True)[0]
    assert int(sample["diagnosis"]) == -1 and int(sample["blur_level"]) == -1
    assert not bool(sample["has_sharp"]) and bool(torch.isnan(sample["blur_map"]).all())


def test_recorded_row_without_on_the_fly_degradation_keeps_its_label_and_map(database):
    rows = read_manifest(database / "manifest.csv")
    ds = _dataset(database, rows, cfg={"on_the_fly": False, "flips": False})
    sample = ds[0]
    assert int(sample["blur_level"]) == rows[0].blur_level
    assert bool(sample["has_sharp"])


def test_levels_zero_gives_only_in_focus_samples(database):
    ds = _dataset(database, cfg={"levels": [0]})
    assert {int(ds[i]["blur_level"]) for i in range(len(ds))} == {0}


def test_fixed_level_degrades_every_image_to_that_level(database):
    ds = _dataset(database, train=False, level=3)
    assert {int(ds[i]["blur_level"]) for i in range(len(ds))} == {3}


def test_same_epoch_and_index_give_the_same_sample_and_a_new_epoch_a_new_draw(database):
    ds = _dataset(database)
    first = ds[1]["image"]
    assert torch.equal(first, ds[1]["image"])
    ds.set_epoch(1)
    assert not torch.equal(first, ds[1]["image"])


def test_random_scenes_carry_no_diagnosis(database):
    sample = _dataset(database, cfg={"content_diversity": 1.0})[0]
    assert int(sample["diagnosis"]) == -1 and int(sample["blur_level"]) >= 0


def test_repeats_multiply_the_epoch_with_distinct_draws(database):
    ds = _dataset(database, repeats=2)
    n = len(ds) // 2
    assert len(ds) == 2 * len(read_manifest(database / "manifest.csv"))
    assert not torch.equal(ds[0]["image"], ds[n]["image"])


def test_random_scene_is_in_focus_content_in_unit_range():
    scene = random_scene(np.random.default_rng(0), 128)
    assert scene.shape == (128, 128) and scene.dtype == np.float32
    assert scene.min() >= 0 and math.isclose(float(scene.max()), 1.0, rel_tol=1e-5)


def test_crop_must_be_a_multiple_of_32(database):
    with pytest.raises(ValueError, match=r"^data.crop=100: must be a multiple of 32 \(0 keeps each image whole\)$"):
        _dataset(database, cfg={"crop": 100})


def test_uint16_pixels_are_scaled_by_the_camera_bit_depth(tmp_path):
    import tifffile

    from ifrt.train.data.degrade import DegradeConfig
    from ifrt.train.dataset import read_signal

    path = tmp_path / "twelve_bit.tif"
    tifffile.imwrite(path, np.array([[100, 4095]], np.uint16))
    twelve = read_signal(path, DegradeConfig(bit_depth=12))
    sixteen = read_signal(path, DegradeConfig(bit_depth=16))
    assert twelve[0, 1] == pytest.approx(1.0, abs=1e-6)  # white level of a 12-bit camera
    assert sixteen[0, 1] < 0.07                          # the same pixels read as 16-bit: 16 times too dark
    tifffile.imwrite(path, np.array([[100, 5000]], np.uint16))
    with pytest.raises(ValueError, match=r"twelve_bit.tif: pixel value 5000 is above the 12-bit range"):
        read_signal(path, DegradeConfig(bit_depth=12))


def test_database_bit_depth_comes_from_synth_json_unless_the_config_sets_one(tmp_path):
    import json

    (tmp_path / "synth.json").write_text(json.dumps({"bit_depth": 12}))
    assert DataConfig().for_database(tmp_path).degrade_config().bit_depth == 12
    assert DataConfig(degrade={"bit_depth": 14}).for_database(tmp_path).degrade_config().bit_depth == 14
    assert DataConfig().for_database(tmp_path / "elsewhere").degrade_config().bit_depth == 16


def _frames(root, sizes, references=False):
    """Manifest rows over uint16 frames of the given (height, width), each its own in-focus reference if
    `references`."""
    import tifffile

    from ifrt.train.data.manifest import ManifestRow

    rows = []
    for i, size in enumerate(sizes):
        name = f"frame{i}.tif"
        tifffile.imwrite(root / name, np.random.default_rng(i).integers(100, 4000, size, dtype=np.uint16))
        rows.append(ManifestRow(path=name, patient_id=f"p{i}", sharp_path=name if references else None))
    return rows


def test_a_training_frame_smaller_than_the_crop_is_refused_naming_it_its_size_and_the_fix(tmp_path):
    rows = _frames(tmp_path, [(96, 128), (64, 96)])
    ds = ManifestDataset(tmp_path, rows, [], DataConfig(crop=96), train=True)
    message = (rf"{tmp_path / 'frame1.tif'}: 64x96 pixels is smaller than the training crop \(data.crop=96\); set "
               r"data.crop to a multiple of 32 no larger than the smallest training image")
    with pytest.raises(ValueError, match=message + r" \(data.crop=64 fits every one\)"):
        ds.check_batchable()
    with pytest.raises(ValueError, match=message):
        ds[1]


def test_whole_training_frames_of_different_sizes_are_refused_naming_the_odd_one(tmp_path):
    rows = _frames(tmp_path, [(64, 64), (70, 90), (96, 64)])  # the first two trim to 64x64
    with pytest.raises(ValueError, match=rf"{tmp_path / 'frame2.tif'}: 96x64 pixels, but {tmp_path / 'frame0.tif'} "
                                         r"is 64x64: with data.crop=0 every training image is used whole"):
        ManifestDataset(tmp_path, rows, [], DataConfig(crop=0), train=True).check_batchable()
    ManifestDataset(tmp_path, rows[:2], [], DataConfig(crop=0), train=True).check_batchable()


def test_a_random_scene_takes_the_size_of_the_whole_frame_it_replaces(tmp_path):
    rows = _frames(tmp_path, [(96, 64)], references=True)
    ds = ManifestDataset(tmp_path, rows, [], DataConfig(crop=0, content_diversity=1.0, flips=False), train=True)
    sample = ds[0]
    assert int(sample["diagnosis"]) == -1  # a random scene
    assert sample["image"].shape == sample["sharp"].shape == (1, 96, 64)
    assert sample["blur_map"].shape == (3, 2)
