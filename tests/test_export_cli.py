"""`ifrt export onnx|triton` as a user runs them."""

import json

import torch

from ifrt.train.model import build_model, model_config, save_model


def report_of(folder):
    return json.loads((folder / "export_report.json").read_text())


def test_export_onnx_then_triton_from_the_command_line(ifrt_cli, tmp_path):
    torch.manual_seed(0)
    save_model(build_model(model_config("tiny", "hier")), tmp_path / "model")
    proc = ifrt_cli("export", "onnx", str(tmp_path / "model"), "-o", str(tmp_path / "onnx"), "--graphs", "focus",
                    "--calib-count", "2", "--calib-size", "64", "--int8")
    assert proc.returncode == 0, proc.stderr
    assert "focus: focus.onnx (max |onnx - torch| =" in proc.stdout and ", focus.int8.onnx" in proc.stdout
    report = report_of(tmp_path / "onnx")
    assert report["problems"] == [] and report["calibration"]["images"] == 2
    # An untrained model's zero-initialized layers give activations constant on every image, for which no
    # percentile histogram can be built: the fallback to min-max ranges is recorded and shown, not hidden.
    fallback = report["calibration"]["int8"]["focus"]
    assert fallback["method"] == "minmax" and "Too many bins" in fallback["fallback_reason"]
    assert ", int8 calibration: min-max ranges, percentile calibration failed: Too many bins" in proc.stdout
    sidecar = json.loads((tmp_path / "onnx/focus.int8.onnx.json").read_text())
    assert sidecar["int8_calibration"] == {"source": "synthetic (seed 0)", "images": 2, "size": 64, **fallback}
    assert "torchvision" not in proc.stderr  # the exporter's notices on operators the graphs do not use
    assert {"model.json", "model.safetensors"} <= set(report["model_files"])

    proc = ifrt_cli("export", "triton", str(tmp_path / "onnx"), "-o", str(tmp_path / "repo"), "--max-batch", "4")
    assert proc.returncode == 0, proc.stderr
    config = (tmp_path / "repo/ifrt_focus/config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "max_batch_size: 4" in config


def test_export_onnx_of_a_missing_model_folder_exits_2_naming_it(ifrt_cli, tmp_path):
    proc = ifrt_cli("export", "onnx", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "nowhere" in proc.stderr and "model.json" in proc.stderr


def test_export_triton_without_onnx_files_exits_2(ifrt_cli, tmp_path):
    proc = ifrt_cli("export", "triton", str(tmp_path), "-o", str(tmp_path / "repo"))
    assert proc.returncode == 2
    assert "run `ifrt export onnx` first" in proc.stderr


def test_export_onnx_of_a_run_folder_exports_its_best_checkpoint(ifrt_cli, tmp_path):
    torch.manual_seed(0)
    save_model(build_model(model_config("tiny", "hier")), tmp_path / "run" / "best")
    proc = ifrt_cli("export", "onnx", str(tmp_path / "run"), "-o", str(tmp_path / "onnx"), "--graphs", "focus",
                    "--calib-count", "1", "--calib-size", "64")
    assert proc.returncode == 0, proc.stderr
    assert (f"note: {tmp_path / 'run'} is a run folder; exporting its best checkpoint "
            f"{tmp_path / 'run' / 'best'}") in proc.stderr
    assert "ifrt export onnx:" not in proc.stderr  # the prefix of errors
    assert (tmp_path / "onnx/focus.onnx").is_file()


def test_the_help_states_the_limits_the_export_checks(capsys):
    import pytest

    from ifrt import cli
    from ifrt.export import pipeline

    with pytest.raises(SystemExit):
        cli.main(["export", "onnx", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert pipeline.FP32_MAX_ABS_DIFF == 1e-4  # the help writes it "1e-4"
    for number in ("<= 1e-4", f">= {pipeline.FP16_MIN_DIAGNOSIS_AGREEMENT:.1%}",
                   f"within {pipeline.FP16_MAX_QUALITY_DIFF:g}", f"within {pipeline.FP16_MAX_QUALITY_MAP_DIFF:g}",
                   f"<= {pipeline.FP16_MAX_PSNR_DRIFT_DB:g} dB", f">= {pipeline.FP16_MIN_DEBLURRED_PSNR_DB:g} dB"):
        assert number in text, number
    assert pipeline.FP16_MIN_BLUR_AGREEMENT == pipeline.FP16_MIN_DIAGNOSIS_AGREEMENT  # one number in the help
