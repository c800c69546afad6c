"""`ifrt train`: a tiny config trains end to end, resumes exactly, and runs under torchrun with gloo."""

import csv
import json
import os
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

from _train_data import make_tiny_database, without_references  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from ifrt.train.model import CONTRACT_OUTPUTS, load_model  # noqa: E402
from ifrt.train.trainer import LOCK, load_config, train  # noqa: E402

TINY = os.path.join(os.path.dirname(__file__), "..", "train", "configs", "tiny.yaml")


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    return make_tiny_database(tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="module")
def cli_run(database, tmp_path_factory):
    """The tiny config trained once from the command line: (run folder, seconds, process)."""
    from conftest import run_ifrt

    run = tmp_path_factory.mktemp("run")
    started = time.monotonic()
    proc = run_ifrt("train", "--data", str(database), "--config", TINY, "--out", str(run))
    return run, time.monotonic() - started, proc


def _metrics(run):
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_tiny_config_trains_end_to_end_from_the_command_line_in_under_a_minute(cli_run):
    run, _, proc = cli_run
    assert proc.returncode == 0, proc.stderr
    # The training loop's own clock (data, steps, validation, checkpoints), without interpreter start-up.
    assert float(_metrics(run)[-1]["seconds"]) < 60
    for name in ("best/model.safetensors", "best/model.json", "last/optimizer.safetensors", "last/trainer.json",
                 "config.yaml", "summary.json"):
        assert (run / name).is_file(), name


def test_metrics_go_to_csv_one_row_per_epoch_and_to_tensorboard(cli_run):
    run, _, _ = cli_run
    rows = _metrics(run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_loss", "val_loss", "val_diagnosis_accuracy", "val_blur_accuracy", "val_psnr_gain_db"} <= set(rows[0])
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "tb").iterdir())


def test_trained_model_loads_with_class_names_from_the_data(cli_run):
    run, _, _ = cli_run
    model = load_model(run / "best")
    with torch.no_grad():
        out = model(torch.rand(1, 1, 64, 64))
    assert set(out) == set(CONTRACT_OUTPUTS)
    assert model.cfg.class_names == ["DN", "IgAN", "LN", "MN"]  # sorted names found in the manifest
    assert model.cfg.blur_levels == 5


def test_trained_model_records_the_class_prior_of_its_training_split(cli_run, database):
    from ifrt.train.dataset import rows_for_split

    run, _, _ = cli_run
    rows = rows_for_split(database / "manifest.csv", "train")
    counts = [1 + sum(r.diagnosis == name for r in rows) for name in ["DN", "IgAN", "LN", "MN"]]
    assert load_model(run / "best").cfg.class_prior == pytest.approx([c / sum(counts) for c in counts])


def test_class_prior_of_counts_known_diagnoses_plus_one_per_class():
    from types import SimpleNamespace

    from ifrt.train.trainer import class_prior_of

    rows = [SimpleNamespace(diagnosis=d) for d in ("A", "A", "A", "B", None)]
    assert class_prior_of(rows, ["A", "B", "C"]) == pytest.approx([4 / 7, 2 / 7, 1 / 7])


def test_run_folder_holds_no_pickles(cli_run):
    run, _, _ = cli_run
    for path in run.rglob("*"):
        if path.is_file() and path.name != LOCK:  # the run lock holds the last run's pid
            assert path.suffix in (".safetensors", ".json", ".yaml", ".csv") or "tfevents" in path.name, path


def test_best_checkpoint_is_the_epoch_with_the_highest_validation_score(cli_run):
    run, _, _ = cli_run
    scores = [float(r["score"]) for r in _metrics(run)]
    best = json.loads((run / "best" / "model.json").read_text())
    assert best["epoch"] == 1 + scores.index(max(scores))


def test_run_stopped_mid_epoch_resumes_to_the_same_weights_as_an_uninterrupted_run(database, tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    config = {"train": {"epochs": 1, "batch_size": 2}}
    train(database, load_config(TINY, config), straight)
    train(database, load_config(TINY, {"train": {**config["train"], "stop_after_steps": 1}}), stopped)
    assert json.loads((stopped / "last" / "trainer.json").read_text())["batches_done"] == 1
    assert not (stopped / "metrics.csv").exists()  # the epoch did not finish
    train(database, load_config(TINY, config), stopped)
    a = load_file(str(straight / "last" / "model.safetensors"))
    b = load_file(str(stopped / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_resumed_mid_epoch_writes_the_metrics_of_an_uninterrupted_run(database, tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    config = {"train": {"epochs": 2, "batch_size": 2}}
    train(database, load_config(TINY, config), straight)
    train(database, load_config(TINY, {"train": {**config["train"], "stop_after_steps": 3}}), stopped)
    train(database, load_config(TINY, config), stopped)  # resumes at epoch 1, batch 3 of 4

    def without_clock(run):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in _metrics(run)]

    # train_loss and the other train_* columns average every batch of the epoch, not only those after the resume
    assert without_clock(stopped) == without_clock(straight)


def test_a_patient_in_two_splits_is_refused_before_the_run_starts(database, tmp_path):
    import shutil

    from ifrt.train.data.manifest import read_manifest, write_manifest

    leaky = shutil.copytree(database, tmp_path / "leaky")
    rows = read_manifest(leaky / "manifest.csv")
    patient = next(row.patient_id for row in rows if row.split == "val")
    next(row for row in rows if row.patient_id == patient).split = "train"  # one of its two images
    write_manifest(leaky / "manifest.csv", rows)
    with pytest.raises(ValueError, match=f"manifest.csv: patient {patient} is in splits train, val \\(1 patient\\(s\\) "
                                         f"like this\\).*`ifrt data split {leaky}`"):
        train(leaky, load_config(TINY, {"train": {"epochs": 1}}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_manifest_without_any_diagnosis_is_refused_naming_it(database, tmp_path):
    import shutil

    from ifrt.train.data.manifest import read_manifest, write_manifest

    undiagnosed = shutil.copytree(database, tmp_path / "undiagnosed")
    rows = read_manifest(undiagnosed / "manifest.csv")
    for row in rows:
        row.diagnosis = None
    write_manifest(undiagnosed / "manifest.csv", rows)
    with pytest.raises(ValueError, match=f"{undiagnosed / 'manifest.csv'}: no row has a diagnosis"):
        train(undiagnosed, load_config(TINY, {"train": {"epochs": 1}}), tmp_path / "run")


def test_single_task_config_trains_only_the_diagnosis(database, tmp_path):
    summary = train(database, load_config(TINY, {"model": {"variant": "st"}, "train": {"epochs": 1}}), tmp_path)
    assert summary["model"]["variant"] == "st"
    header = set(_metrics(tmp_path)[0])
    assert "train_loss_diagnosis" in header and "train_loss_deblur" not in header


def test_unknown_config_key_is_rejected_with_its_name(database, tmp_path):
    with pytest.raises(ValueError, match="epoks"):
        train(database, load_config(TINY, {"train": {"epoks": 1}}), tmp_path)


def test_unknown_loss_key_is_rejected_with_its_name(database, tmp_path):
    with pytest.raises(ValueError, match=r"loss.deblur_pixle is not a setting \(known: "):
        train(database, load_config(TINY, {"loss": {"deblur_pixle": "mse"}}), tmp_path)


@pytest.mark.parametrize(("normalization", "message"), [
    ({"p_hgh": 99.0}, r"model.normalization.p_hgh is not a setting \(known: clip, kind, p_high, p_low\)"),
    ({"kind": "minmax"}, r"model.normalization.kind='minmax': only 'percentile' is implemented"),
    ({"p_low": 99.9}, r"model.normalization: p_low=99.9, p_high=99.8: percentiles need 0 <= p_low < p_high <= 100"),
    ({"p_high": "99"}, r"model.normalization.p_high: expected a number, got '99'"),
    ({"clip": True}, r"model.normalization.clip=True: normalized values are never clipped"),
])
def test_a_wrong_normalization_setting_is_refused_naming_it(database, tmp_path, normalization, message):
    with pytest.raises(ValueError, match=message):
        train(database, load_config(TINY, {"model": {"normalization": normalization}}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_one_normalization_setting_keeps_the_others():
    from ifrt.train.model import model_config

    assert model_config("tiny", normalization={"p_high": 99.5}).normalization == {
        "kind": "percentile", "p_low": 1.0, "p_high": 99.5, "clip": False}


def _datasets(database, data):
    from ifrt.train.trainer import build_everything, make_datasets

    data_cfg, _, train_cfg, model_cfg, manifest = build_everything(database, load_config(TINY, {"data": data}))
    return make_datasets(database, manifest, data_cfg, train_cfg, model_cfg)


def _kinds_and_levels(dataset):
    from ifrt.train.model.network import BLUR_KINDS

    samples = [dataset[i] for i in range(len(dataset))]
    kinds = {BLUR_KINDS[int(s["blur_kind"])] for s in samples if int(s["blur_kind"]) >= 0}
    return kinds, {int(s["blur_level"]) for s in samples}


def test_validation_draws_its_own_blur_mix_and_levels_so_runs_trained_differently_validate_alike(database):
    gaussian_only = {"degrade": {"p_defocus": 0.0, "p_spatial": 0.0}, "content_diversity": 0.0}
    train_set, val_set = _datasets(database, {**gaussian_only, "val_degrade": {"p_defocus": 1.0}, "val_levels": [3]})
    assert _kinds_and_levels(train_set)[0] == {"gaussian"}
    assert _kinds_and_levels(val_set) == ({"defocus"}, {3})
    # Without val_degrade, validation follows the training mix (the run's own draw).
    assert _kinds_and_levels(_datasets(database, gaussian_only)[1])[0] == {"gaussian"}
    # Two runs trained on different mixes but validating on the same one see the very same frames.
    defocus_run = {"degrade": {"p_defocus": 1.0, "p_spatial": 0.0}, "content_diversity": 0.0}
    same = {"val_degrade": {"p_defocus": 0.5, "p_spatial": 0.25}}
    a, b = _datasets(database, {**gaussian_only, **same})[1], _datasets(database, {**defocus_run, **same})[1]
    for i in range(len(a)):
        assert torch.equal(a[i]["image"], b[i]["image"]) and torch.equal(a[i]["sharp"], b[i]["sharp"])


@pytest.mark.parametrize(("data", "message"), [
    ({"val_degrade": {"sigmas": [0.0, 2.0]}}, r"data.val_degrade.sigmas: the blur levels are the labels"),
    ({"val_degrade": {"p_defokus": 1.0}}, r"data.val_degrade.p_defokus is not a setting"),
    ({"val_degrade": {"p_defocus": 0.9}}, r"data.val_degrade: p_defocus \+ p_spatial"),
    ({"degrade": {"p_defokus": 1.0}}, r"data.degrade.p_defokus is not a setting"),
    ({"levels": [5]}, r"data.levels=\[5\]: give blur levels among 0..4"),
    ({"val_levels": []}, r"data.val_levels=\[\]: give blur levels among 0..4"),
    ({"levels": ["a"]}, r"data.levels=\['a'\]: give blur levels among 0..4"),
])
def test_bad_degradation_settings_are_refused_before_training_naming_the_setting(database, tmp_path, data, message):
    with pytest.raises(ValueError, match=message):
        train(database, load_config(TINY, {"data": data}), tmp_path)
    assert not (tmp_path / "config.yaml").exists()


def test_a_runs_own_config_trains_again_and_a_config_disagreeing_with_the_database_is_refused(
        cli_run, database, tmp_path):
    import yaml

    run_dir = cli_run[0]
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["model"]["class_names"] and saved["model"]["blur_levels"] == 5
    summary = train(database, load_config(run_dir / "config.yaml", {"train": {"epochs": 1}}), tmp_path / "again")
    assert summary["model"]["class_names"] == saved["model"]["class_names"]
    wrong = load_config(run_dir / "config.yaml", {"model": {"class_names": ["A", "B"]}})
    with pytest.raises(ValueError, match=r"model.class_names=\['A', 'B'\] in the config, but the database .* has"):
        train(database, wrong, tmp_path / "wrong")


def test_a_nested_set_changes_one_entry_of_a_mapping_and_keeps_the_rest():
    from ifrt.commands.train import parse_overrides

    overrides = parse_overrides(["loss.weights.deblur=0.2", "train.freeze=[iqa]", "loss.deblur_pixel=log_mse"])
    assert overrides == {"loss": {"weights": {"deblur": 0.2}, "deblur_pixel": "log_mse"}, "train": {"freeze": ["iqa"]}}
    s_yaml = os.path.join(os.path.dirname(TINY), "s.yaml")
    config = load_config(s_yaml, overrides)
    assert config["loss"]["weights"] == {"diagnosis": 1.0, "blur": 0.5, "quality": 1.0, "deblur": 0.2}
    assert config["loss"]["learned_weights"] is False and config["train"]["epochs"] == 30
    with pytest.raises(SystemExit, match="expected SECTION.KEY=VALUE"):
        parse_overrides(["loss..deblur=1"])
    with pytest.raises(SystemExit, match="'weights' was already set to a value"):
        parse_overrides(["loss.weights=1", "loss.weights.deblur=0.2"])


def test_two_process_ddp_with_gloo_trains_and_writes_one_run(database, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "ifrt",
           "train", "--data", str(database), "--config", TINY, "--out", str(tmp_path), "--set", "train.epochs=1",
           "--set", "train.batch_size=2", "--set", "train.threads=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["steps"] == 2  # 8 training images, 2 per batch, split over 2 processes
    assert (tmp_path / "best" / "model.safetensors").is_file()


def test_fine_tuning_starts_from_a_run_and_leaves_frozen_modules_bit_identical(cli_run, database, tmp_path):
    start, _, _ = cli_run
    frozen = ["encoder_low", "encoder_deep", "iqa", "diagnosis", "deblur.up4", "deblur.up2", "deblur.to_full"]
    train(database, load_config(TINY, {"model": {"refine_width": 6, "refine_depth": 3},
                                       "train": {"epochs": 1, "init_from": str(start), "freeze": frozen}}), tmp_path)
    before = load_file(str(start / "best" / "model.safetensors"))
    after = load_file(str(tmp_path / "last" / "model.safetensors"))
    kept = [k for k in after if not k.startswith("deblur.refine.")]
    # Weights and BatchNorm running statistics of every frozen module are exactly the starting ones.
    assert kept and all(torch.equal(after[k], before[k]) for k in kept)
    # The refinement was rebuilt wider and deeper (fresh tensors) and has trained away from its zero start.
    assert after["deblur.refine.0.weight"].shape == (6, 5, 3, 3) and "deblur.refine.4.weight" in after
    assert after["deblur.refine.4.weight"].abs().sum() > 0


def test_a_deconvolution_bank_added_by_fine_tuning_starts_from_least_squares_and_trains(cli_run, database, tmp_path,
                                                                                           capfd):
    start, _, _ = cli_run
    frozen = ["encoder_low", "encoder_deep", "iqa", "diagnosis", "deblur.up4", "deblur.up2", "deblur.to_full"]
    config = load_config(TINY, {"model": {"deblur_bank": True, "deblur_bank_span": 8},
                                "train": {"epochs": 1, "init_from": str(start), "freeze": frozen}})
    train(database, config, tmp_path)
    assert "deconvolution bank fitted by least squares to" in capfd.readouterr().err
    after = load_file(str(tmp_path / "last" / "model.safetensors"))
    assert after["deblur.bank.filters.weight"].shape == (5, 1, 8, 8)
    assert after["deblur.refine_linear.weight"].abs().sum() > 0  # started at zero, trained
    # A resumed run continues from its checkpoint: the bank is not fitted again.
    (tmp_path / "best").rename(tmp_path / "best-1")
    train(database, {**config, "train": {**config["train"], "epochs": 2}}, tmp_path)
    assert "fitted" not in capfd.readouterr().err


def test_a_blur_kind_head_added_by_fine_tuning_starts_fitted_and_trains(cli_run, database, tmp_path, capfd):
    start, _, _ = cli_run
    model = {"deblur_bank": True, "deblur_bank_span": 8, "deblur_kind": True, "deblur_bank_in_focus": False}
    config = load_config(TINY, {"model": model, "train": {"epochs": 1, "init_from": str(start),
                                                          "freeze": ["encoder_low", "encoder_deep", "iqa"]}})
    train(database, config, tmp_path / "kind")
    err = capfd.readouterr().err
    assert "deconvolution bank fitted by least squares" in err
    assert "blur-kind head fitted to" in err and "defocused training images (accuracy on them" in err
    after = load_file(str(tmp_path / "kind" / "last" / "model.safetensors"))
    assert not torch.equal(after["blur_kind.feature_std"], torch.ones(14))  # fitted to the training frames
    # Both ways the kind steers the deblurring started at zero and have trained.
    assert after["deblur.bank.mix_kind.weight"].abs().sum() > 0
    assert after["deblur.kind_film.0.to_gamma_beta.weight"].abs().sum() > 0
    # Fine-tuning on from that run keeps its kind head and bank: nothing is fitted again.
    again = load_config(TINY, {"model": model, "train": {"epochs": 1, "init_from": str(tmp_path / "kind"),
                                                         "freeze": ["encoder_low", "encoder_deep", "iqa"]}})
    train(database, again, tmp_path / "again")
    err = capfd.readouterr().err
    assert "initialised" in err and "fitted" not in err


def test_a_fresh_run_with_a_deconvolution_bank_fits_it_before_the_first_step(database, tmp_path, capfd):
    config = load_config(TINY, {"model": {"deblur_bank": True, "deblur_bank_span": 8},
                                "train": {"epochs": 1, "stop_after_steps": 1}})
    train(database, config, tmp_path)
    err = capfd.readouterr().err
    assert "initialised" not in err and "deconvolution bank fitted by least squares to" in err


def test_fine_tuning_refuses_unknown_modules_and_unrelated_weights(cli_run, database, tmp_path):
    start, _, _ = cli_run
    with pytest.raises(ValueError, match="no module 'encoder'.*encoder_low"):
        train(database, load_config(TINY, {"train": {"epochs": 1, "freeze": ["encoder"]}}), tmp_path / "a")
    with pytest.raises(ValueError, match="nothing to train"):
        everything = ["encoder_low", "encoder_deep", "deblur", "iqa", "diagnosis"]
        train(database, load_config(TINY, {"train": {"epochs": 1, "freeze": everything}}), tmp_path / "b")
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.json").write_text(json.dumps({"model": {"variant": "hier"}}))
    save_file({"classifier.weight": torch.zeros(4, 8)}, str(other / "model.safetensors"))
    with pytest.raises(ValueError, match="model.safetensors: no tensor matches"):
        train(database, load_config(TINY, {"train": {"epochs": 1, "init_from": str(other)}}), tmp_path / "c")
    with pytest.raises(FileNotFoundError, match="no model.json"):
        train(database, load_config(TINY, {"train": {"epochs": 1, "init_from": str(tmp_path)}}), tmp_path / "d")


def test_psnr_gain_selection_prefers_the_better_deblurring_and_falls_back_to_the_loss():
    from ifrt.train.trainer import selection_score

    assert selection_score({"val_psnr_gain_db": 0.9, "val_loss": 1.0}, "psnr_gain") > \
        selection_score({"val_psnr_gain_db": 0.4, "val_loss": 0.5}, "psnr_gain")
    assert selection_score({"val_loss": 0.5}, "psnr_gain") == -0.5  # a single-task run has no deblurring
    with pytest.raises(ValueError, match="psnr_gain"):
        selection_score({"val_loss": 0.5}, "best")


# ---- a database without in-focus references ---------------------------------------------------------------


def test_training_without_in_focus_references_warns_that_only_the_diagnosis_trains(database, tmp_path, capfd):
    data = without_references(database, tmp_path / "db")
    train(data, load_config(TINY, {"train": {"epochs": 1, "stop_after_steps": 1}}), tmp_path / "run")
    err = capfd.readouterr().err
    assert (f"warning: {data / 'manifest.csv'}: no training row has an in-focus reference (sharp_path), so only "
            "the diagnosis will be trained") in err
    assert "fill the manifest's sharp_path with the in-focus capture of each field (for an in-focus capture, " \
           "the image itself)" in err


def test_training_rows_lacking_a_reference_are_counted(database, tmp_path, capfd):
    data = without_references(database, tmp_path / "db", keep=3)
    train(data, load_config(TINY, {"train": {"epochs": 1, "stop_after_steps": 1}}), tmp_path / "run")
    assert "5 of 8 training rows have no in-focus reference (sharp_path)" in capfd.readouterr().err


def test_a_caller_can_take_the_warnings_instead_of_stderr(database, tmp_path, capfd):
    data = without_references(database, tmp_path / "db", keep=3)
    received = []
    train(data, load_config(TINY, {"train": {"epochs": 1, "stop_after_steps": 1}}), tmp_path / "run",
          warn=received.append)
    assert received == [f"{data / 'manifest.csv'}: 5 of 8 training rows have no in-focus reference (sharp_path) and "
                        "train only the diagnosis (and a blur_level they record); fill the manifest's sharp_path with "
                        "the in-focus capture of each field (for an in-focus capture, the image itself)"]
    assert "warning" not in capfd.readouterr().err


def test_a_single_task_run_without_references_is_not_warned(database, tmp_path, capfd):
    data = without_references(database, tmp_path / "db")
    config = load_config(TINY, {"model": {"variant": "st"}, "train": {"epochs": 1, "stop_after_steps": 1}})
    train(data, config, tmp_path / "run")
    assert "warning" not in capfd.readouterr().err


# ---- training frames that cannot share a batch ---------------------------------------------------------------


def test_a_crop_larger_than_the_training_images_is_refused_before_the_run_starts(database, tmp_path):
    with pytest.raises(ValueError, match=r"\.tif: 64x64 pixels is smaller than the training crop \(data.crop=96\); "
                                         r"set data.crop to a multiple of 32 no larger than the smallest training "
                                         r"image \(data.crop=64 fits every one\)"):
        train(database, load_config(TINY, {"data": {"crop": 96}}), tmp_path)
    assert not (tmp_path / "config.yaml").exists()


def test_whole_validation_frames_of_different_sizes_are_validated_one_at_a_time(database, tmp_path):
    import shutil

    import cv2
    import tifffile

    from ifrt.train.data.manifest import read_manifest

    data = shutil.copytree(database, tmp_path / "db")
    reference = data / next(r for r in read_manifest(data / "manifest.csv") if r.split == "val").sharp_path
    tifffile.imwrite(reference, cv2.resize(tifffile.imread(reference), (96, 96)))  # one larger validation frame
    train(data, load_config(TINY, {"train": {"epochs": 1}}), tmp_path / "run")
    assert float(_metrics(tmp_path / "run")[0]["val_loss"]) > 0


# ---- resuming --------------------------------------------------------------------------------------------------


@pytest.fixture
def stopped_run(database, tmp_path):
    """A run of the tiny config stopped after its first step, as a kill would leave it."""
    run = tmp_path / "stopped"
    train(database, load_config(TINY, {"train": {"epochs": 1, "batch_size": 2, "stop_after_steps": 1}}), run)
    return run


@pytest.mark.parametrize(("overrides", "difference"), [
    ({"train": {"lr": 0.5}}, "train.lr: 0.003 -> 0.5"),
    ({"train": {"epochs": 3}}, "train.epochs: 1 -> 3"),  # the run has not finished: its schedule would change
    ({"model": {"variant": "st"}}, "model.variant: hier -> st"),
    ({"loss": {"weights": {"deblur": 0.2}}}, "loss.weights.deblur: 1.0 -> 0.2"),
])
def test_resuming_with_other_settings_is_refused_naming_each_difference(database, stopped_run, overrides, difference):
    saved = (stopped_run / "config.yaml").read_text()
    config = load_config(TINY, {"train": {"epochs": 1, "batch_size": 2}})
    for section, values in overrides.items():
        config[section] = {**config.get(section, {}), **values}
    with pytest.raises(ValueError, match=f"{stopped_run}: cannot resume with other settings than the run's own") as e:
        train(database, config, stopped_run)
    assert difference in str(e.value)
    assert "or give another --out for a new run" in str(e.value)
    assert (stopped_run / "config.yaml").read_text() == saved
    assert json.loads((stopped_run / "last" / "trainer.json").read_text())["batches_done"] == 1


def test_resuming_on_other_data_is_refused(database, stopped_run, tmp_path):
    import shutil

    other = shutil.copytree(database, tmp_path / "other")
    with pytest.raises(ValueError, match=f"--data: {database.resolve()} -> {other.resolve()}"):
        train(other, load_config(TINY, {"train": {"epochs": 1, "batch_size": 2}}), stopped_run)


def test_a_runs_own_config_resumes_it(database, stopped_run):
    import yaml

    config = yaml.safe_load((stopped_run / "config.yaml").read_text())
    config["train"]["stop_after_steps"] = 0  # how long this process trains is not a setting of the run
    summary = train(database, config, stopped_run)
    assert summary["steps"] == 4  # 8 training images, 2 per batch


def test_a_stale_class_prior_is_refused_and_the_runs_own_one_accepted(cli_run, database, tmp_path):
    import yaml

    saved = yaml.safe_load((cli_run[0] / "config.yaml").read_text())
    stale = load_config(cli_run[0] / "config.yaml", {"model": {"class_prior": [0.7, 0.1, 0.1, 0.1]}})
    with pytest.raises(ValueError, match=r"model.class_prior=\[0.7, 0.1, 0.1, 0.1\] in the config, but the training "
                                         r"split of .* gives \[.*\]: leave model.class_prior out \(the database "
                                         r"decides it\)"):
        train(database, stale, tmp_path / "stale")
    assert not (tmp_path / "stale").exists()
    own = load_config(cli_run[0] / "config.yaml", {"train": {"epochs": 1, "stop_after_steps": 1}})
    summary = train(database, own, tmp_path / "own")
    assert summary["model"]["class_prior"] == pytest.approx(saved["model"]["class_prior"], abs=1e-12)


# ---- Ctrl-C ------------------------------------------------------------------------------------------------


def test_ctrl_c_mid_epoch_checkpoints_and_the_rerun_ends_with_the_weights_of_an_uninterrupted_run(
        database, tmp_path, monkeypatch):
    import signal

    from ifrt.train import trainer

    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    config = load_config(TINY, {"train": {"epochs": 2, "batch_size": 2}})
    train(database, config, straight)
    lr_at = trainer.lr_at
    pressed = []

    def ctrl_c_during_the_second_step(step, total, cfg):
        if step == 1 and not pressed:
            pressed.append(step)
            signal.raise_signal(signal.SIGINT)
        return lr_at(step, total, cfg)

    monkeypatch.setattr(trainer, "lr_at", ctrl_c_during_the_second_step)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(trainer.TrainingInterrupted, match="^interrupted; rerun the same command to resume at "
                                                          "epoch 1, batch 2$"):
        train(database, config, interrupted)
    assert signal.getsignal(signal.SIGINT) is handler  # the previous handler is back
    assert json.loads((interrupted / "last" / "trainer.json").read_text())["batches_done"] == 2
    monkeypatch.setattr(trainer, "lr_at", lr_at)
    train(database, config, interrupted)
    a = load_file(str(straight / "last" / "model.safetensors"))
    b = load_file(str(interrupted / "last" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
