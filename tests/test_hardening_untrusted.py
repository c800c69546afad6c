"""Untrusted files: a model folder, its weights and engines may come from anywhere, so loading them
must never run code from them or read files outside the folder, and a file that does not match its
recorded sha256 is refused."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import numpy as np
import pytest

from ifrt.engine import external_data_sha256
from ifrt.model_package import (
    ModelPackageError,
    check_external_data,
    external_data_locations,
    onnx_external_data_locations,
    open_model,
    sha256_file,
)

REPO = Path(__file__).resolve().parents[1]
onnx = pytest.importorskip("onnx")


# ---- ONNX external data stays inside the model folder ----------------------------------------------------

def write_model_with_external_data(folder: Path, location: str) -> Path:
    """full.onnx whose one initializer lives in external file `location`, with a matching sidecar
    (a hostile package is self-consistent: whoever wrote the ONNX wrote its sidecar too)."""
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    weights = numpy_helper.from_array(np.arange(4, dtype=np.float32), name="w")
    weights.ClearField("raw_data")
    weights.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], initializer=[weights])
    path = folder / "full.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    sidecar = {"sha256": sha256_file(path), "metadata": {"class_names": ["IgAN", "MN"], "blur_levels": 5}}
    (folder / "full.onnx.json").write_text(json.dumps(sidecar))
    return path


@pytest.mark.parametrize("location", ["../secret.bin", "../../etc/passwd", "sub/../../secret.bin",
                                      "/etc/passwd", "..\\secret.bin", "C:\\Windows\\win.ini"])
def test_onnx_external_data_outside_the_model_folder_is_refused(tmp_path, location):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    write_model_with_external_data(tmp_path / "model", location)
    with pytest.raises(ModelPackageError, match=r"full.onnx: external data location .* refusing to load it"):
        open_model(tmp_path / "model")


def test_onnx_external_data_through_a_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    folder = tmp_path / "model"
    write_model_with_external_data(folder, "weights.bin")
    os.symlink(tmp_path / "secret.bin", folder / "weights.bin")
    with pytest.raises(ModelPackageError, match="outside the model folder"):
        open_model(folder)


def test_onnx_external_data_inside_the_model_folder_is_accepted(tmp_path):
    folder = tmp_path / "model"
    write_model_with_external_data(folder, "data/weights.bin")
    (folder / "data").mkdir()
    (folder / "data" / "weights.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    package = open_model(folder)
    assert package.graph("full") == folder / "full.onnx"


def test_byte_scan_finds_exactly_the_locations_onnx_reads(tmp_path):
    path = write_model_with_external_data(tmp_path / "model", "../secret.bin")
    model = onnx.load(str(path), load_external_data=False)
    by_onnx = [e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"]
    assert by_onnx == ["../secret.bin"]
    assert external_data_locations(path.read_bytes()) == [b"../secret.bin"]


def test_onnx_scans_map_the_file_instead_of_reading_it_whole(tmp_path, monkeypatch):
    # An ONNX with embedded weights can be near 2 GB: the checks page it in through a memory map.
    path = write_model_with_external_data(tmp_path / "model", "../secret.bin")
    (tmp_path / "secret.bin").write_bytes(b"weights")

    def refused(self):
        raise AssertionError(f"{self} was read whole into memory")

    monkeypatch.setattr(Path, "read_bytes", refused)
    assert onnx_external_data_locations(path) == [b"../secret.bin"]
    with pytest.raises(ModelPackageError, match="climbs out of the model folder"):
        check_external_data(path)
    assert external_data_sha256(path) != ""


def test_mapped_scan_finds_what_the_byte_scan_finds_up_to_the_last_byte(tmp_path):
    value = b"w.bin"
    key_last = b"\x12" + bytes([len(value)]) + value + b"\x0a\x08location"  # the file ends with the key
    cut_value = b"\x0a\x08location\x12\x40" + value  # a value cut short by the end of the file
    for name, data in {"empty": b"", "key_last": b"\x08\x01" + key_last, "cut": cut_value}.items():
        (tmp_path / name).write_bytes(data)
        assert onnx_external_data_locations(tmp_path / name) == external_data_locations(data), name
    assert onnx_external_data_locations(tmp_path / "key_last") == [value]


def test_byte_scan_also_finds_a_value_written_before_its_key():
    # A hand-made StringStringEntryProto with field 2 (value) ahead of field 1 (key) is still valid protobuf.
    value = b"../../outside.bin"
    entry = b"\x12" + bytes([len(value)]) + value + b"\x0a\x08location"
    tensor_field = b"\x6a" + bytes([len(entry)]) + entry
    assert external_data_locations(b"\x08\x01" + tensor_field) == [value]


# ---- weights never come from a pickle --------------------------------------------------------------------

def _python_files():
    for folder in ("runtime", "train", "export"):
        yield from sorted((REPO / folder).rglob("*.py"))


def test_no_product_code_imports_pickle_or_loads_torch_files_without_weights_only():
    offenders = []
    for path in _python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(n and n.split(".")[0] in ("pickle", "cPickle", "dill", "joblib", "shelve") for n in names):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} imports a pickle module")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                keywords = {k.arg: k.value for k in node.keywords}
                if node.func.attr == "load" and ast.unparse(node.func.value) == "torch":
                    safe = keywords.get("weights_only")
                    if not (isinstance(safe, ast.Constant) and safe.value is True):
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno} torch.load without weights_only=True")
                allow = keywords.get("allow_pickle")
                if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} allow_pickle")
    assert offenders == []


def test_model_weights_are_read_with_safetensors_only(tmp_path):
    torch = pytest.importorskip("torch")
    from ifrt.train.model import build_model, load_model, model_config, save_model

    source = (REPO / "train" / "model" / "io.py").read_text()
    assert "load_file(" in source and "torch.load" not in source
    model = build_model(model_config("tiny", "hier", class_names=["IgAN", "MN"]))
    save_model(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]
    # A pickle put where the weights belong is not unpickled: safetensors rejects its header.
    torch.save(model.state_dict(), tmp_path / "model.safetensors")
    with pytest.raises(Exception, match="(?i)header|safetensor|deserializ"):
        load_model(tmp_path)


# ---- engines: a file that no longer matches its sidecar's sha256 is refused --------------------------------

def test_engine_whose_file_changed_after_it_was_built_is_refused(tmp_path, monkeypatch):
    from ifrt import engine as engine_module
    from ifrt.engine import EngineBuildSpec, GpuIdentity, check_engine, make_sidecar, sidecar_path

    gpu = GpuIdentity("NVIDIA H100", "9.0", "GPU-11111111-2222-3333-4444-555555555555")
    monkeypatch.setattr(engine_module, "gpu_identity", lambda device=0: gpu)
    path = tmp_path / "full.engine"
    path.write_bytes(b"serialized engine " * 64)
    spec = EngineBuildSpec(onnx_sha256="ab" * 32, tensorrt_version="10.3.0", gpu=gpu, precision="fp16")
    sidecar = make_sidecar(spec, engine_sha256=sha256_file(path), strongly_typed=False, ifrt_version="0.1.0")
    sidecar_path(path).write_text(json.dumps(sidecar))
    assert check_engine(path, tensorrt_version="10.3.0") == []

    with open(path, "r+b") as f:  # one flipped byte, as a bad copy or a tampered download leaves it
        f.seek(100)
        f.write(b"X")
    reasons = check_engine(path, tensorrt_version="10.3.0")
    assert len(reasons) == 1
    assert "differs from the sidecar's" in reasons[0] and "changed after it was built, or is corrupt" in reasons[0]
