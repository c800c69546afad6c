"""Triton model repository: layout, configs that parse as Triton's ModelConfig protobuf, and models replaced all
or none."""

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from _file_limits import file_size_limit
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from ifrt import imageio
from ifrt.export import triton
from ifrt.export.triton import write_repository


def _onnx(path, outputs, note=""):
    inp = onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["batch", 1, "height", "width"])
    outs = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in outputs]
    nodes = [onnx.helper.make_node("Identity", ["image"], [outs[0].name])]
    model = onnx.helper.make_model(onnx.helper.make_graph(nodes, "g", [inp], outs))
    entry = model.metadata_props.add()
    entry.key, entry.value = "ifrt.class_names", '["IgAN", "MN", "DN", "LN"]'
    if note:  # repeated in the Triton config's parameters, so it sets the config's size
        entry = model.metadata_props.add()
        entry.key, entry.value = "ifrt.note", note
    onnx.save(model, str(path))
    return path


@pytest.fixture
def graphs(tmp_path):
    full = _onnx(tmp_path / "full.onnx", [("diagnosis_logits", ["batch", 4]), ("quality", ["batch"]),
                                          ("deblurred", ["batch", 1, "height", "width"])])
    focus = _onnx(tmp_path / "focus.onnx", [("quality", ["batch"])])
    return {"full": full, "focus": focus}


def _parse(path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_repository_has_one_versioned_model_per_graph(graphs, tmp_path):
    configs = write_repository(graphs, tmp_path / "repo", max_batch_size=16)
    assert sorted(c.parent.name for c in configs) == ["ifrt_focus", "ifrt_full"]
    assert (tmp_path / "repo/ifrt_full/1/model.onnx").read_bytes() == graphs["full"].read_bytes()


def test_config_parses_as_triton_model_config_with_dynamic_spatial_dims(graphs, tmp_path):
    write_repository(graphs, tmp_path / "repo", max_batch_size=16)
    config = _parse(tmp_path / "repo/ifrt_full/config.pbtxt")
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 16
    assert list(config.input[0].dims) == [1, -1, -1]
    outputs = {o.name: o for o in config.output}
    assert list(outputs["diagnosis_logits"].dims) == [4]
    assert list(outputs["quality"].dims) == [1] and list(outputs["quality"].reshape.shape) == []
    assert list(outputs["deblurred"].dims) == [1, -1, -1]
    assert config.parameters["ifrt.class_names"].string_value == '["IgAN", "MN", "DN", "LN"]'
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000


def test_an_engine_is_served_as_a_tensorrt_plan(graphs, tmp_path):
    engine = tmp_path / "full.engine"
    engine.write_bytes(np.arange(64, dtype=np.uint8).tobytes())
    write_repository(graphs, tmp_path / "repo", engines={"full": engine})
    assert _parse(tmp_path / "repo/ifrt_full/config.pbtxt").platform == "tensorrt_plan"
    assert (tmp_path / "repo/ifrt_full/1/model.plan").read_bytes() == engine.read_bytes()
    assert _parse(tmp_path / "repo/ifrt_focus/config.pbtxt").platform == "onnxruntime_onnx"


def test_zero_batch_size_is_rejected(graphs, tmp_path):
    with pytest.raises(ValueError, match="max_batch_size=0"):
        write_repository(graphs, tmp_path / "repo", max_batch_size=0)


def test_config_of_exported_graphs_matches_the_onnx_names_and_shapes(tiny_package, tmp_path):
    graphs = {"full": tiny_package / "full.onnx", "focus": tiny_package / "focus.onnx"}
    write_repository(graphs, tmp_path / "repo", max_batch_size=4)
    for graph, path in graphs.items():
        model = onnx.load(str(path))
        config = _parse(tmp_path / f"repo/ifrt_{graph}/config.pbtxt")
        expected = {v.name: [d.dim_value or -1 for d in v.type.tensor_type.shape.dim[1:]] or [1]
                    for v in list(model.graph.output)}
        assert {o.name: list(o.dims) for o in config.output} == expected
        assert [i.name for i in config.input] == ["image"] and list(config.input[0].dims) == [1, -1, -1]
        assert config.parameters["ifrt.graph"].string_value == graph


# ---- an export replaces its models all or none -------------------------------------------------------------

def _files_in(repo):
    return {str(p.relative_to(repo)): p.read_bytes() for p in sorted(repo.rglob("*"))
            if p.is_file() and p.name != ".ifrt-export.lock"}


WRITE_IN_A_CHILD = """
import sys
from pathlib import Path
from ifrt.cli import error_message
from ifrt.export.triton import write_repository
full, focus, engine, repo = map(Path, sys.argv[1:])
try:
    write_repository({"full": full, "focus": focus}, repo, engines={"focus": engine})
except OSError as exc:
    sys.exit(error_message(exc))
"""


def test_a_write_refused_after_a_model_file_leaves_the_earlier_repository_whole_and_names_the_file(graphs,
                                                                                                    tmp_path):
    """A real short write in a child process whose files cannot pass 20 kB: the new ifrt_full (under 2 kB) and
    ifrt_focus's engine (64 bytes) are written, then ifrt_focus's config (over 40 kB, from its graph's metadata)
    is refused."""
    repo = tmp_path / "repo"
    write_repository(graphs, repo, max_batch_size=4)
    before = _files_in(repo)
    new = tmp_path / "new"
    new.mkdir()
    full = _onnx(new / "full.onnx", [("quality", ["batch"])])
    focus = _onnx(new / "focus.onnx", [("quality", ["batch"])], note="x" * 40_000)
    engine = new / "focus.engine"
    engine.write_bytes(bytes(64))
    refused = subprocess.run([sys.executable, "-c", WRITE_IN_A_CHILD, str(full), str(focus), str(engine), str(repo)],
                             capture_output=True, text=True, timeout=120, preexec_fn=file_size_limit(20_000))
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == f"{repo / 'ifrt_focus' / 'config.pbtxt'}: File too large"
    assert _files_in(repo) == before
    assert sorted(p.name for p in repo.iterdir()) == [".ifrt-export.lock", "ifrt_focus", "ifrt_full"]


def test_an_export_over_an_earlier_one_leaves_none_of_the_earlier_models_files(graphs, tmp_path):
    engine = tmp_path / "full.engine"
    engine.write_bytes(bytes(64))
    write_repository(graphs, tmp_path / "repo", engines={"full": engine})
    write_repository(graphs, tmp_path / "repo")
    assert sorted(_files_in(tmp_path / "repo")) == ["ifrt_focus/1/model.onnx", "ifrt_focus/config.pbtxt",
                                                    "ifrt_full/1/model.onnx", "ifrt_full/config.pbtxt"]


def test_models_of_other_names_in_the_repository_are_left_alone(graphs, tmp_path):
    (tmp_path / "repo" / "resnet" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "resnet" / "config.pbtxt").write_text("another server model")
    write_repository(graphs, tmp_path / "repo")
    assert (tmp_path / "repo" / "resnet" / "config.pbtxt").read_text() == "another server model"


@pytest.mark.parametrize("killed", ["repo/.ifrt-export-staging", ".repo.ifrt-export-staging"],
                         ids=["inside", "beside"])
def test_the_staging_folder_of_a_killed_export_is_removed_by_the_next_one(graphs, tmp_path, killed):
    (tmp_path / killed / "ifrt_full").mkdir(parents=True)
    (tmp_path / killed / "ifrt_full" / "config.pbtxt").write_text("half a config")
    write_repository(graphs, tmp_path / "repo")
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == [".ifrt-export.lock", "ifrt_focus", "ifrt_full"]
    assert not (tmp_path / killed).exists()


def test_an_export_without_a_focus_graph_removes_the_earlier_exports_focus_model_and_says_so(graphs, tmp_path):
    write_repository(graphs, tmp_path / "repo")
    said = []
    configs = write_repository({"full": graphs["full"]}, tmp_path / "repo", warn=said.append)
    assert [c.parent.name for c in configs] == ["ifrt_full"]
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == [".ifrt-export.lock", "ifrt_full"]
    assert said == [f"removed {tmp_path / 'repo' / 'ifrt_focus'}: an earlier export's model, for which this "
                    "export has no focus graph"]


# ---- a Triton server polling the repository during an export -----------------------------------------------

def _names_in_repository_while_models_are_written(monkeypatch, tmp_path):
    """Record, at each model file copied into the staging folder, the names in REPO and whether its parent holds
    the staging folder beside it."""
    seen, copy = [], triton.copy_atomic

    def copy_and_look(source, target):
        copy(source, target)
        seen.append((sorted(p.name for p in (tmp_path / "repo").iterdir()),
                     (tmp_path / ".repo.ifrt-export-staging").is_dir()))

    monkeypatch.setattr(triton, "copy_atomic", copy_and_look)
    return seen


def test_during_an_export_the_repository_holds_only_its_models_and_the_lock(graphs, tmp_path, monkeypatch):
    write_repository(graphs, tmp_path / "repo")
    seen = _names_in_repository_while_models_are_written(monkeypatch, tmp_path)
    write_repository(graphs, tmp_path / "repo")
    assert seen == [([".ifrt-export.lock", "ifrt_focus", "ifrt_full"], True)] * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["focus.onnx", "full.onnx", "repo"]


@pytest.mark.skipif(imageio._renameat2() is None, reason="no renameat2 here")
def test_an_export_over_an_earlier_one_never_leaves_a_model_folder_missing(graphs, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    write_repository(graphs, repo)
    present_after_each_rename, real_replace = [], os.replace

    def replace(source, destination):
        real_replace(source, destination)
        present_after_each_rename.append(((repo / "ifrt_full").is_dir(), (repo / "ifrt_focus").is_dir()))

    monkeypatch.setattr(os, "replace", replace)
    write_repository(graphs, repo)
    assert set(present_after_each_rename) == {(True, True)}


def test_without_the_swap_an_export_over_an_earlier_one_gives_the_same_repository(graphs, tmp_path, monkeypatch):
    engine = tmp_path / "full.engine"
    engine.write_bytes(bytes(64))
    for repo in (tmp_path / "swapped", tmp_path / "renamed"):
        write_repository(graphs, repo, engines={"full": engine})
    write_repository(graphs, tmp_path / "swapped")
    monkeypatch.setattr(imageio, "_renameat2", lambda: None)
    write_repository(graphs, tmp_path / "renamed")
    assert _files_in(tmp_path / "renamed") == _files_in(tmp_path / "swapped")
    assert sorted(_files_in(tmp_path / "renamed")) == ["ifrt_focus/1/model.onnx", "ifrt_focus/config.pbtxt",
                                                       "ifrt_full/1/model.onnx", "ifrt_full/config.pbtxt"]


def _a_mount_point(monkeypatch, tmp_path):
    file_system = triton.file_system
    monkeypatch.setattr(triton, "file_system",
                        lambda path: -1 if path == (tmp_path / "repo").resolve() else file_system(path))


def _a_read_only_parent(monkeypatch, tmp_path):
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kwargs: False if path == tmp_path.resolve()
                        and mode & os.W_OK else access(path, mode, **kwargs))


@pytest.mark.parametrize("parent", [_a_mount_point, _a_read_only_parent], ids=["mount-point", "read-only-parent"])
def test_a_repository_whose_parent_cannot_hold_the_staging_folder_stages_inside_as_before(graphs, tmp_path,
                                                                                          monkeypatch, parent):
    write_repository(graphs, tmp_path / "repo")
    parent(monkeypatch, tmp_path)
    seen = _names_in_repository_while_models_are_written(monkeypatch, tmp_path)
    write_repository(graphs, tmp_path / "repo")
    assert seen == [([".ifrt-export-staging", ".ifrt-export.lock", "ifrt_focus", "ifrt_full"], False)] * 2
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == [".ifrt-export.lock", "ifrt_focus", "ifrt_full"]
