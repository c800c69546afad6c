"""How the trt backend chooses what to build from and where to keep it; runs without TensorRT (the engines
themselves are tested by tests/test_backend_trt.py on a GPU)."""

import shutil
from pathlib import Path

import pytest

from ifrt.backends import BackendUnavailableError, engine_cache_dir, trt_onnx_precision
from ifrt.model_package import open_model


@pytest.fixture
def no_cache_settings(monkeypatch, tmp_path):
    monkeypatch.delenv("IFRT_ENGINE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_engines_are_cached_under_the_users_cache_folder_by_default(no_cache_settings):
    assert engine_cache_dir() == no_cache_settings / ".cache" / "ifrt" / "engines"


def test_the_xdg_cache_folder_is_followed(no_cache_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert engine_cache_dir() == tmp_path / "xdg" / "ifrt" / "engines"


def test_the_variable_and_the_argument_take_precedence_with_the_home_folder_expanded(no_cache_settings,
                                                                                     monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("IFRT_ENGINE_CACHE", "~/engines")
    assert engine_cache_dir() == no_cache_settings / "engines"
    assert engine_cache_dir(tmp_path / "mine") == tmp_path / "mine"


def test_an_empty_variable_counts_as_unset_not_as_the_current_folder(no_cache_settings, monkeypatch):
    monkeypatch.setenv("IFRT_ENGINE_CACHE", "")
    assert engine_cache_dir() == no_cache_settings / ".cache" / "ifrt" / "engines"


def test_each_engine_is_built_from_the_graphs_own_export_of_its_precision(tiny_package, tmp_path):
    package = open_model(tiny_package)
    assert [trt_onnx_precision(package, graph, p) for graph in ("full", "focus") for p in ("fp32", "fp16")] == \
        ["fp32", "fp16", "fp32", "fp16"]
    fp32_only = tmp_path / "fp32-only"
    shutil.copytree(tiny_package, fp32_only, ignore=shutil.ignore_patterns("*.fp16.onnx*"))
    assert trt_onnx_precision(open_model(fp32_only), "full", "fp16") == "fp32"


def test_int8_without_quantized_graphs_says_how_to_export_them(tiny_package):
    root = Path(open_model(tiny_package).root)
    with pytest.raises(BackendUnavailableError) as info:
        trt_onnx_precision(open_model(tiny_package), "full", "int8")
    assert str(info.value) == (f"{root}: no full.int8.onnx here, and TensorRT builds INT8 only from Q/DQ graphs; "
                               f"export them with `ifrt export onnx {root} -o {root} --int8`")
