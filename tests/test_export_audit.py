"""`ifrt export onnx` into folders that already hold a model, and the model folders it leaves: one model per
folder, nothing half-written, errors that name the file and the fix."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from _onnx_faults import onnx_outputs_shifted

from ifrt.export import pipeline
from ifrt.export.onnx_export import OnnxExportOptions
from ifrt.model_package import ModelPackageError, open_model, sha256_file
from ifrt.train.model import build_model, model_config, save_model

SMALL = {"calibration_count": 1, "calibration_size": 64, "options": OnnxExportOptions(example_size=64)}


def tiny_model(folder, seed, epoch=1, class_names=("IgAN", "MN", "DN", "LN")):
    torch.manual_seed(seed)
    return save_model(build_model(model_config("tiny", "hier", class_names=list(class_names))), folder,
                      extra={"epoch": epoch})


@pytest.fixture(scope="module")
def two_exports(tmp_path_factory):
    """Model A exported (focus graph, fp32 + fp16) into a/, model B (focus graph, fp32) into b/."""
    root = tmp_path_factory.mktemp("two_exports")
    tiny_model(root / "model_a", seed=0, epoch=1, class_names=("DN", "IgAN", "LN", "MN"))
    tiny_model(root / "model_b", seed=1, epoch=2)
    pipeline.export_onnx(root / "model_a", root / "a", fp16=True, graphs=("focus",), **SMALL)
    pipeline.export_onnx(root / "model_b", root / "b", graphs=("focus",), **SMALL)
    return root


def files_of(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_exporting_another_model_into_a_folder_removes_the_earlier_fp16_graph(two_exports, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(two_exports / "a", out)
    report = pipeline.export_onnx(two_exports / "model_b", out, graphs=("focus",), **SMALL)
    assert report["removed"] == ["focus.fp16.onnx", "focus.fp16.onnx.json"]
    assert sorted(p.name for p in out.iterdir()) == [".ifrt-export.lock", "export_report.json", "focus.onnx", "focus.onnx.json",
                                                      "model.json", "model.safetensors"]
    assert open_model(out).class_names == ["IgAN", "MN", "DN", "LN"]


def test_the_cli_names_the_files_an_export_removed(ifrt_cli, two_exports, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(two_exports / "a", out)
    proc = ifrt_cli("export", "onnx", str(two_exports / "model_b"), "-o", str(out), "--graphs", "focus",
                    "--calib-count", "1", "--calib-size", "64")
    assert proc.returncode == 0, proc.stderr
    assert (f"note: removed focus.fp16.onnx, focus.fp16.onnx.json of the earlier export in {out} (an export "
            "replaces the folder's graphs)") in proc.stderr


def _b_with_files_of_a(two_exports, tmp_path, *sources):
    """A copy of model b's export folder in which each of `sources` (paths in `two_exports`) replaces b's file of
    its name."""
    mixed = tmp_path / "mixed"
    shutil.copytree(two_exports / "b", mixed)
    for source in sources:
        shutil.copyfile(two_exports / source, mixed / Path(source).name)
    return mixed


def test_a_graph_exported_from_another_model_is_refused(two_exports, tmp_path):
    mixed = _b_with_files_of_a(two_exports, tmp_path, "a/focus.fp16.onnx", "a/focus.fp16.onnx.json")
    theirs = json.loads((two_exports / "a/focus.fp16.onnx.json").read_text())["metadata"]["training_config_sha256"]
    ours = json.loads((mixed / "focus.onnx.json").read_text())["metadata"]["training_config_sha256"]
    with pytest.raises(ModelPackageError) as caught:
        open_model(mixed)
    assert str(caught.value) == (
        f"{mixed / 'focus.fp16.onnx'}: exported from another model than focus.onnx (its training record sha256 "
        f"is {theirs[:12]}…, focus.onnx's {ours[:12]}…); re-export the model into this folder with "
        "`ifrt export onnx` (it replaces every graph), or copy the model folder again")


def test_a_model_json_of_another_model_beside_the_graphs_is_refused(two_exports, tmp_path):
    mixed = _b_with_files_of_a(two_exports, tmp_path, "model_a/model.json")
    with pytest.raises(ModelPackageError, match=r"model.json: describes another model than focus.onnx \(its "
                                                r"training record sha256 is [0-9a-f]{12}…, focus.onnx was exported "
                                                r"from [0-9a-f]{12}…\); re-export"):
        open_model(mixed)


def test_weights_of_another_model_beside_the_graphs_are_refused(two_exports, tmp_path):
    mixed = _b_with_files_of_a(two_exports, tmp_path, "model_a/model.safetensors")
    actual = sha256_file(mixed / "model.safetensors")
    recorded = sha256_file(two_exports / "model_b/model.safetensors")
    with pytest.raises(ModelPackageError) as caught:
        open_model(mixed)
    assert str(caught.value) == (
        f"{mixed / 'model.safetensors'}: sha256 {actual[:12]}… is not that of the weights focus.onnx was exported "
        f"from ({recorded[:12]}…); re-export the model into this folder with `ifrt export onnx` (it replaces "
        "every graph), or copy the model folder again")


def test_each_sidecar_records_the_sha256_of_the_weights_it_was_exported_from(two_exports):
    expected = sha256_file(two_exports / "model_a/model.safetensors")
    for name in ("focus.onnx", "focus.fp16.onnx"):
        sidecar = json.loads((two_exports / "a" / f"{name}.json").read_text())
        assert sidecar["metadata"]["weights_sha256"] == expected


def test_an_interrupted_export_leaves_the_earlier_export_as_it_was(two_exports, tmp_path, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(two_exports / "a", out)
    before = files_of(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "quantize_int8", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline.export_onnx(two_exports / "model_b", out, int8=True, graphs=("focus",), **SMALL)
    assert files_of(out) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # and no staging folder left


def test_the_staging_folder_of_a_killed_export_is_removed_by_the_next_export(two_exports, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(two_exports / "b", out)
    killed = out / ".ifrt-export-k1ll3d"
    killed.mkdir()
    (killed / "focus.onnx").write_bytes(b"half a graph")
    pipeline.export_onnx(two_exports / "model_b", out, graphs=("focus",), **SMALL)
    assert not killed.exists()


def test_a_graph_that_fails_its_check_leaves_no_sidecar(two_exports, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "onnx_outputs", onnx_outputs_shifted(pipeline.onnx_outputs, "quality", 1e-3))
    with pytest.raises(pipeline.ExportCheckError):
        pipeline.export_onnx(two_exports / "model_b", tmp_path, graphs=("focus",), **SMALL)
    assert not (tmp_path / "focus.onnx").exists()
    assert not (tmp_path / "focus.onnx.json").exists()


def test_an_unreadable_sidecar_is_refused_with_the_fix(two_exports, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(two_exports / "b", folder)
    (folder / "focus.onnx.json").write_text("{")
    with pytest.raises(ModelPackageError, match=r"focus.onnx.json: unreadable sidecar \(Expecting property name "
                                                r"enclosed in double quotes: line 1 column 2 \(char 1\)\); re-export "
                                                r"the model with `ifrt export onnx`$"):
        open_model(folder)


@pytest.mark.parametrize("graphs", ["", "full,bogus", "focus,focus"])
def test_graphs_other_than_full_and_focus_each_once_are_a_usage_error(ifrt_cli, two_exports, tmp_path, graphs):
    proc = ifrt_cli("export", "onnx", str(two_exports / "model_b"), "-o", str(tmp_path / "out"), "--graphs", graphs)
    assert proc.returncode == 2
    shown = graphs or "none"
    assert (f"ifrt export onnx: error: argument --graphs: graphs {shown}: expected one or more of full, focus, each "
            "once (e.g. full,focus)") in proc.stderr
    assert not (tmp_path / "out").exists()


def test_an_opset_the_exporter_cannot_write_is_refused_not_replaced(ifrt_cli, two_exports, tmp_path):
    proc = ifrt_cli("export", "onnx", str(two_exports / "model_b"), "-o", str(tmp_path / "out"), "--graphs", "focus",
                    "--opset", "7", "--calib-count", "1", "--calib-size", "64")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "ifrt export onnx: --opset 7: the exporter could not convert the focus graph to opset 7 (it wrote opset "
        "18); choose an opset it converts to, e.g. 18 (the default)")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out/focus.onnx").exists()


def test_one_image_file_is_a_calibration_source(ifrt_cli, two_exports, tmp_path):
    import numpy as np

    from ifrt.imageio import encode_image, write_bytes_atomic

    image = tmp_path / "glomerulus.tif"
    write_bytes_atomic(image, encode_image(np.random.default_rng(0).integers(0, 4096, (96, 96), np.uint16), "tiff"))
    proc = ifrt_cli("export", "onnx", str(two_exports / "model_b"), "-o", str(tmp_path / "out"), "--graphs", "focus",
                    "--calib", str(image), "--calib-count", "1", "--calib-size", "64")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out/export_report.json").read_text())
    assert report["calibration"] == {"source": str(image), "images": 1, "size": 64}


def test_an_output_that_is_a_file_is_refused_naming_it(ifrt_cli, two_exports, tmp_path):
    taken = tmp_path / "model.onnx"
    taken.write_bytes(b"")
    proc = ifrt_cli("export", "onnx", str(two_exports / "model_b"), "-o", str(taken), "--graphs", "focus",
                    "--calib-count", "1", "--calib-size", "64")
    assert proc.returncode == 2
    assert proc.stderr == f"ifrt export onnx: {taken}: is a file; give a folder for the exported model (-o)\n"


def test_int8_export_prints_only_its_summary_on_stdout(ifrt_cli, tmp_path):
    model = tmp_path / "model"
    tiny_model(model, seed=0)
    proc = ifrt_cli("export", "onnx", str(model), "-o", str(tmp_path / "out"), "--graphs", "focus", "--int8",
                    "--calib-count", "2", "--calib-size", "64")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("focus: focus.onnx (max |onnx - torch| = ")


def test_export_triton_refuses_a_graph_that_no_longer_matches_its_sidecar(ifrt_cli, two_exports, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(two_exports / "b", folder)
    shutil.copyfile(two_exports / "a/focus.onnx", folder / "focus.onnx")
    actual, recorded = sha256_file(folder / "focus.onnx"), sha256_file(two_exports / "b/focus.onnx")
    proc = ifrt_cli("export", "triton", str(folder), "-o", str(tmp_path / "repo"))
    assert proc.returncode == 2
    assert proc.stderr == (f"ifrt export triton: {folder / 'focus.onnx'}: sha256 {actual[:12]}… does not match its "
                           f"sidecar ({recorded[:12]}…): the file was modified or truncated; re-export or "
                           "re-download the model\n")
    assert not (tmp_path / "repo").exists()


def test_export_triton_refuses_zero_instances(ifrt_cli, two_exports, tmp_path):
    proc = ifrt_cli("export", "triton", str(two_exports / "b"), "-o", str(tmp_path / "repo"), "--instances", "0")
    assert proc.returncode == 2
    assert "argument --instances: must be at least 1, got 0" in proc.stderr
    assert not (tmp_path / "repo").exists()


def test_a_static_export_takes_one_image_of_the_calibration_size_and_checks_every_calibration_image(two_exports,
                                                                                                     tmp_path):
    import onnx

    report = pipeline.export_onnx(two_exports / "model_b", tmp_path, graphs=("focus",), calibration_count=3,
                                  calibration_size=64, options=OnnxExportOptions(example_size=64, dynamic_batch=False,
                                                                                 dynamic_spatial=False))
    dims = onnx.load(str(tmp_path / "focus.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 1, 64, 64]
    assert report["problems"] == [] and report["calibration"]["images"] == 3


def test_an_opset_below_18_is_exported_without_torchs_opset_notice(ifrt_cli, two_exports, tmp_path):
    import onnx

    proc = ifrt_cli("export", "onnx", str(two_exports / "model_b"), "-o", str(tmp_path / "out"), "--graphs", "focus",
                    "--opset", "17", "--calib-count", "1", "--calib-size", "64")
    assert proc.returncode == 0, proc.stderr
    assert "Setting ONNX exporter to use operator set version" not in proc.stderr
    opsets = {o.domain: o.version for o in onnx.load(str(tmp_path / "out/focus.onnx")).opset_import}
    assert opsets[""] == 17


def fp16_output_skewed(output, shift):
    """An `onnx_outputs` whose fp16 graphs give the fp32 graph's `output` plus `shift`, the rest unchanged."""
    return onnx_outputs_shifted(pipeline.onnx_outputs, output, shift, only_fp16=True)


def test_the_report_records_each_fp16_check_of_the_focus_graph_with_its_limit(two_exports):
    entry = json.loads((two_exports / "a/export_report.json").read_text())["graphs"]["focus"]
    measured = entry["fp16_vs_torch"]
    assert entry["fp16_checks"] == {
        "blur_level_agreement": {"value": measured["argmax_agreement"]["blur_logits"], "min": 0.995},
        "quality_max_abs_diff": {"value": measured["max_abs_diff"]["quality"], "max": 0.005},
        "quality_map_max_abs_diff": {"value": measured["max_abs_diff"]["quality_map"], "max": 0.02}}


def test_a_focus_fp16_graph_whose_quality_map_drifts_is_refused(two_exports, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "onnx_outputs", fp16_output_skewed("quality_map", 0.05))
    with pytest.raises(pipeline.ExportCheckError) as caught:
        pipeline.export_onnx(two_exports / "model_b", tmp_path / "out", fp16=True, graphs=("focus",), **SMALL)
    assert str(caught.value) == "focus fp16: quality_map differs from fp32 by 0.05 (limit 0.02) (kept: focus.onnx)"
    assert not (tmp_path / "out/focus.fp16.onnx").exists()


def test_a_failed_fp16_graph_leaves_the_fp32_graph_that_passed_alone_in_the_folder(two_exports, tmp_path,
                                                                                     monkeypatch):
    import ifrt

    out = tmp_path / "out"
    shutil.copytree(two_exports / "a", out)  # model A's fp32 and fp16 focus graphs
    monkeypatch.setattr(pipeline, "onnx_outputs", fp16_output_skewed("deblurred", 0.1))
    with pytest.raises(pipeline.ExportCheckError, match=r"^full fp16: deblurred PSNR drifts by [0-9.]+ dB \(limit "
                                                        r"0\.1 dB\) \(kept: full\.onnx\)$"):
        pipeline.export_onnx(two_exports / "model_b", out, fp16=True, graphs=("full",), **SMALL)
    assert sorted(p.name for p in out.iterdir()) == [".ifrt-export.lock", "export_report.json", "full.onnx",
                                                      "full.onnx.json", "model.json", "model.safetensors"]
    report = json.loads((out / "export_report.json").read_text())
    assert report["removed"] == ["focus.fp16.onnx", "focus.fp16.onnx.json", "focus.onnx", "focus.onnx.json"]
    assert "fp16_file" not in report["graphs"]["full"]
    assert ifrt.Session(out, backend="ort").class_names == ["IgAN", "MN", "DN", "LN"]  # model B's


def test_without_sharp_references_the_fp16_deblurred_output_is_held_to_torchs(two_exports, tmp_path, monkeypatch):
    import numpy as np

    from ifrt.imageio import encode_image, write_bytes_atomic

    image = tmp_path / "glomerulus.tif"
    write_bytes_atomic(image, encode_image(np.random.default_rng(0).integers(0, 4096, (96, 96), np.uint16), "tiff"))
    monkeypatch.setattr(pipeline, "onnx_outputs", fp16_output_skewed("deblurred", 0.1))
    with pytest.raises(pipeline.ExportCheckError) as caught:
        pipeline.export_onnx(two_exports / "model_b", tmp_path / "out", fp16=True, graphs=("full",),
                             calibration_source=image, **SMALL)
    assert str(caught.value) == (
        "full fp16: deblurred output is 20.0 dB PSNR against fp32's (need 60 dB; the calibration images have no "
        "sharp references to measure the drift on) (kept: full.onnx)")
    check = json.loads((tmp_path / "out/export_report.json").read_text())["graphs"]["full"]["fp16_checks"]
    assert check["deblurred_psnr_vs_torch_db"]["min"] == 60.0
    assert check["deblurred_psnr_vs_torch_db"]["value"] == pytest.approx(20.0, abs=0.01)
