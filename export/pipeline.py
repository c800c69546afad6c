"""`ifrt export onnx`: a trained model folder -> full.onnx + focus.onnx (+ fp16 versions), each checked
against torch on calibration images before it is kept, with a JSON report of the numbers."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import torch

from ifrt.imageio import move_staged, staging_folder
from ifrt.runlock import folder_lock

from . import calibration
from .fp16 import check_fp16_range, fp16_sidecar
from .graphs import GRAPHS, graph_module
from .int8 import quantize_int8
from .metadata import write_sidecar
from .onnx_export import OnnxExportOptions, export_graph
from .parity import compare, onnx_outputs, torch_outputs
from .trt_ops import unsupported_operators

log = logging.getLogger("ifrt.export")

# Acceptance limits, from the export contract.
FP32_MAX_ABS_DIFF = 1e-4
FP16_MIN_DIAGNOSIS_AGREEMENT = 0.995
FP16_MAX_PSNR_DRIFT_DB = 0.1
# The IQA outputs (all the focus graph has). The bundled model's fp16 graphs agree with torch on every blur level
# and stay within 0.00065 (quality) and 0.0041 (quality map) on synthetic and sample images at 64 and 256 px;
# the limits leave 8x and 5x of headroom, and a quality 0.005 off moves only images that close to the threshold.
FP16_MIN_BLUR_AGREEMENT = 0.995
FP16_MAX_QUALITY_DIFF = 0.005
FP16_MAX_QUALITY_MAP_DIFF = 0.02
# Without sharp references (--calib images) the drift cannot be measured, so the fp16 deblurred output is held
# to torch's fp32 one instead. The bundled model reaches 80-84 dB (mean over the images); at 60 dB an error
# uncorrelated with the restoration's own moves the PSNR of a restoration up to 43 dB by at most 0.1 dB.
FP16_MIN_DEBLURRED_PSNR_DB = 60.0


class ExportCheckError(RuntimeError):
    """An exported graph disagrees with torch beyond the contract's tolerance; the file is removed."""


def _check_fp32(graph: str, report: dict) -> list[str]:
    problems = [f"{graph}: {name} differs from torch by {diff:.3g} (limit {FP32_MAX_ABS_DIFF:g})"
                for name, diff in report["max_abs_diff"].items() if diff > FP32_MAX_ABS_DIFF]
    problems += [f"{graph}: argmax of {name} agrees on only {agree:.2%} of images"
                 for name, agree in report["argmax_agreement"].items() if agree < 1.0]
    return problems


def fp16_checks(report: dict) -> dict[str, dict]:
    """What an fp16 graph is held to, from its comparison with torch (`parity.compare`): each check's measured
    value with its `min` or `max`, for the outputs the graph has."""
    agreement, diff = report["argmax_agreement"], report["max_abs_diff"]
    deblurred = report.get("deblurred_psnr", {})
    checks = {}
    if "diagnosis_logits" in agreement:
        checks["diagnosis_agreement"] = {"value": agreement["diagnosis_logits"], "min": FP16_MIN_DIAGNOSIS_AGREEMENT}
    if "blur_logits" in agreement:
        checks["blur_level_agreement"] = {"value": agreement["blur_logits"], "min": FP16_MIN_BLUR_AGREEMENT}
    if "quality" in diff:
        checks["quality_max_abs_diff"] = {"value": diff["quality"], "max": FP16_MAX_QUALITY_DIFF}
    if "quality_map" in diff:
        checks["quality_map_max_abs_diff"] = {"value": diff["quality_map"], "max": FP16_MAX_QUALITY_MAP_DIFF}
    if "drift_db" in deblurred:
        checks["deblurred_psnr_drift_db"] = {"value": deblurred["drift_db"], "max": FP16_MAX_PSNR_DRIFT_DB}
    elif "test_vs_reference" in deblurred:
        checks["deblurred_psnr_vs_torch_db"] = {"value": deblurred["test_vs_reference"],
                                                "min": FP16_MIN_DEBLURRED_PSNR_DB}
    return checks


_FP16_FAILURES = {
    "diagnosis_agreement": "diagnosis agrees with fp32 on {value:.2%} of images (need {min:.1%})",
    "blur_level_agreement": "blur level agrees with fp32 on {value:.2%} of images (need {min:.1%})",
    "quality_max_abs_diff": "quality differs from fp32 by {value:.3g} (limit {max:g})",
    "quality_map_max_abs_diff": "quality_map differs from fp32 by {value:.3g} (limit {max:g})",
    "deblurred_psnr_drift_db": "deblurred PSNR drifts by {value:.3f} dB (limit {max:g} dB)",
    "deblurred_psnr_vs_torch_db": "deblurred output is {value:.1f} dB PSNR against fp32's (need {min:g} dB; the "
                                  "calibration images have no sharp references to measure the drift on)",
}


def _check_fp16(graph: str, checks: dict[str, dict]) -> list[str]:
    return [f"{graph} fp16: " + _FP16_FAILURES[name].format(**check) for name, check in checks.items()
            if check["value"] < check.get("min", -float("inf")) or check["value"] > check.get("max", float("inf"))]


def load_calibration(source: str | Path | None, count: int, size: int) -> calibration.CalibrationSet:
    if source:
        return calibration.from_files(source, count, size)
    return calibration.synthetic(count, size)


MODEL_FILES = ("model.json", "model.safetensors")
GRAPH_FILES = tuple(f"{graph}{suffix}" for graph in GRAPHS for suffix in (".onnx", ".fp16.onnx", ".int8.onnx"))
REPORT = "export_report.json"
# The folder inside the output folder where an export writes and checks its files before they replace the
# earlier export's (`ifrt.imageio.staging_folder`); one that a killed export left is removed by the next export
# into that folder, as are those of any other name with the prefix (earlier versions named theirs at random).
STAGING_PREFIX = ".ifrt-export-"
STAGING = STAGING_PREFIX + "staging"
# Held while an export writes the folder: a second export into it would remove the first's staging folder as a
# killed export's, or publish its graphs among the first's.
LOCK = ".ifrt-export.lock"


def _discard(path: Path) -> None:
    """Remove a graph that failed its check, and its sidecar."""
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".json").unlink(missing_ok=True)


def copy_model_files(model_dir: Path, out_dir: Path) -> dict[str, str]:
    """Copy the weights and their config beside the exported graphs, so that the output folder is a complete
    model folder (the torch backend, `ifrt eval` and the torch baseline of `ifrt bench infer` read them).
    Returns {file name: sha256} for the report."""
    from ifrt.model_package import sha256_file

    copied = {}
    for name in MODEL_FILES:
        shutil.copyfile(model_dir / name, out_dir / name)
        copied[name] = sha256_file(out_dir / name)
    return copied


def export_files(folder: Path, model_files: bool) -> list[str]:
    """The files of an export present in `folder`, in the order they are removed: the report, the graphs
    of either name at every precision, their sidecars and, with `model_files`, model.json and
    model.safetensors."""
    names = [REPORT, *GRAPH_FILES, *(f"{name}.json" for name in GRAPH_FILES), *(MODEL_FILES if model_files else ())]
    return [name for name in names if (folder / name).is_file()]


def publish(staging: Path, out_dir: Path, model_files: bool) -> None:
    """Replace what an earlier export left in `out_dir` with the files in `staging`.

    An export replaces the folder's whole set (`export_files`). A graph it did not write again (the fp16
    graph of a model exported before, a focus graph when only `full` is asked for) would otherwise stay
    beside the new ones, loadable, and labelled with the new model's class names. Each file moves by a
    rename (`ifrt.imageio.move_staged`), the model files first, a graph's sidecar before it and the report
    last, so a folder caught in between holds no graph without its sidecar."""
    for name in export_files(out_dir, model_files):
        (out_dir / name).unlink()
    order = [*MODEL_FILES, *(f"{name}.json" for name in GRAPH_FILES), *GRAPH_FILES, REPORT]
    move_staged(staging, out_dir, sorted(export_files(staging, model_files), key=order.index))
    for leftover in out_dir.glob(f"{STAGING_PREFIX}*"):  # a killed export's, under another name
        if leftover != staging:
            shutil.rmtree(leftover, ignore_errors=True)


def export_onnx(model_dir: str | Path, out_dir: str | Path, *, fp16: bool = False, int8: bool = False,
                calibration_source: str | Path | None = None, calibration_count: int = 16, calibration_size: int = 256,
                graphs: tuple[str, ...] = GRAPHS, options: OnnxExportOptions | None = None) -> dict:
    """Export, verify and report. Raises ExportCheckError (after removing the failing file; a failing fp16
    graph leaves its fp32 graph, which passed, and the rest of the export in place) when a graph breaks the
    parity contract, Fp16RangeError when FP16 would overflow. With `int8`, also a Q/DQ INT8
    graph calibrated on the calibration images; its agreement with torch is reported, not enforced
    (INT8 trades accuracy for speed, and the trade is the user's to judge). When `out_dir` is not the model
    folder, the model's weights and config are copied into it (see `copy_model_files`).

    Everything is written and checked in a staging folder inside `out_dir` and replaces what an earlier
    export left there only at the end (`publish`), so an export that stops on an error or an interruption
    leaves the earlier export as it was. The report lists under `removed` the earlier export's files that
    this one did not write again."""
    import onnx

    from ifrt.imageio import write_text_atomic
    from ifrt.model_package import check_graph_names, sha256_file
    from ifrt.train.model import load_model, read_model_record

    check_graph_names(graphs)
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: is a file; give a folder for the exported model (-o)")
    model, record = load_model(model_dir), read_model_record(model_dir)
    weights_sha256 = sha256_file(model_dir / "model.safetensors")
    calib = load_calibration(calibration_source, calibration_count, calibration_size)
    report: dict = {"model": os.path.relpath(model_dir, out_dir), "calibration": {"source": calib.source, "images": len(calib.images),
                                                              "size": calibration_size}, "graphs": {}}
    # Each graph's own range (the focus graph runs only part of the network), all measured before any file
    # is written, so an FP16 refusal leaves nothing behind.
    activations = {graph: check_fp16_range(graph_module(model, graph).network, torch.from_numpy(calib.images))
                   for graph in graphs} if fp16 else {}
    in_place = out_dir.resolve() == model_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock(out_dir, LOCK, "ifrt export onnx", "export into another -o folder"):
        with staging_folder(out_dir, out_dir / STAGING) as staging:
            if not in_place:
                report["model_files"] = copy_model_files(model_dir, staging)
            problems: list[str] = []
            for graph in graphs:
                path = export_graph(model, record, graph, staging / f"{graph}.onnx", options,
                                    weights_sha256=weights_sha256)
                reference = torch_outputs(model, graph, calib.images)
                fp32 = compare(reference, onnx_outputs(path, calib.images))
                entry = {"file": path.name, "fp32_vs_torch": fp32,
                         "unsupported_by_tensorrt": unsupported_operators(onnx.load(str(path)))}
                found = _check_fp32(graph, fp32)
                if fp16 and not found:
                    range_check = fp16_sidecar(activations[graph])
                    path16 = export_graph(model, record, graph, staging / f"{graph}.fp16.onnx", options, "fp16",
                                          range_check, weights_sha256)
                    fp16_report = compare(reference, onnx_outputs(path16, calib.images), calib.sharp)
                    entry["fp16_vs_torch"] = fp16_report
                    entry["fp16_checks"] = fp16_checks(fp16_report)
                    entry.update(range_check)  # the same record as the fp16 sidecar's
                    fp16_problems = _check_fp16(graph, entry["fp16_checks"])
                    if fp16_problems:  # the fp32 graph passed its own check and is kept
                        _discard(path16)
                        problems += fp16_problems
                    else:
                        entry["fp16_file"] = path16.name
                if int8 and not found:
                    int8_graph = quantize_int8(path, staging / f"{graph}.int8.onnx", calib.images)
                    path8 = int8_graph.path
                    report["calibration"].setdefault("int8", {})[graph] = int8_graph.calibration
                    shared = {k: v for k, v in report["calibration"].items() if k != "int8"}
                    write_sidecar(path8, {p.key: p.value for p in onnx.load(str(path8)).metadata_props},
                                  {"int8_calibration": {**shared, **int8_graph.calibration}})
                    entry["int8_vs_torch"] = compare(reference, onnx_outputs(path8, calib.images), calib.sharp)
                    entry["int8_file"] = path8.name
                if found:
                    _discard(path)
                report["graphs"][graph] = entry
                problems += found
            report["problems"] = problems
            written = {REPORT, *export_files(staging, model_files=not in_place)}
            report["removed"] = sorted(set(export_files(out_dir, model_files=not in_place)) - written)
            write_text_atomic(staging / REPORT, json.dumps(report, indent=2) + "\n")
            publish(staging, out_dir, model_files=not in_place)
    if problems:
        kept = [name for entry in report["graphs"].values() for name in
                (entry.get(key) for key in ("file", "fp16_file", "int8_file")) if name and (out_dir / name).is_file()]
        raise ExportCheckError("; ".join(problems) + (f" (kept: {', '.join(kept)})" if kept else ""))
    return report

