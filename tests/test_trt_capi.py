"""The engine C ABI in the installed libifrt, through ctypes as vendor software would call it. Without
TensorRT in the build every engine call returns IFRT_ERR_UNSUPPORTED and says what to install."""

import ctypes
import shutil
from pathlib import Path

import pytest

import ifrt

IFRT_OK, IFRT_ERR_INVALID_ARGUMENT, IFRT_ERR_UNSUPPORTED, IFRT_ERR_IO = 0, 1, 2, 3


class EngineOptions(ctypes.Structure):
    _fields_ = [("device", ctypes.c_int32), ("contexts", ctypes.c_int32), ("allow_same_model_gpu", ctypes.c_int32),
                ("precision", ctypes.c_char_p), ("profiles", ctypes.c_char_p), ("concurrency", ctypes.c_int32),
                ("workspace_bytes", ctypes.c_int64), ("timing_cache_path", ctypes.c_char_p),
                ("dla_core", ctypes.c_int32)]


class EngineTensor(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("ndim", ctypes.c_int32),
                ("shape", ctypes.c_int64 * 8), ("data", ctypes.c_void_p), ("capacity_bytes", ctypes.c_size_t),
                ("memory", ctypes.c_int)]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    # A private copy: its thread-local last error does not leak into other tests using libifrt.
    installed = next((Path(ifrt.__file__).parent / "lib").glob("libifrt.so*"))
    path = tmp_path_factory.mktemp("capi") / installed.name
    shutil.copy(installed, path)
    lib = ctypes.CDLL(str(path))
    lib.ifrt_last_error.restype = ctypes.c_char_p
    lib.ifrt_engine_create_from_engine.argtypes = [ctypes.c_char_p, ctypes.POINTER(EngineOptions),
                                                   ctypes.POINTER(ctypes.c_void_p)]
    lib.ifrt_engine_create_from_onnx.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(EngineOptions),
                                                 ctypes.POINTER(ctypes.c_void_p)]
    lib.ifrt_engine_infer.argtypes = [ctypes.c_void_p, ctypes.POINTER(EngineTensor), ctypes.c_size_t,
                                      ctypes.POINTER(EngineTensor), ctypes.c_size_t]
    lib.ifrt_engine_release.argtypes = [ctypes.c_void_p]
    return lib


@pytest.fixture
def no_tensorrt(lib):
    if lib.ifrt_has_tensorrt():
        pytest.skip("this libifrt has the TensorRT executor")


def test_options_init_gives_the_documented_defaults(lib):
    options = EngineOptions()
    lib.ifrt_engine_options_init(ctypes.byref(options))
    assert (options.device, options.contexts, options.concurrency, options.dla_core) == (0, 2, 1, -1)
    assert options.precision is None and options.profiles is None and options.workspace_bytes == 0


def test_create_from_engine_without_tensorrt_is_unsupported_and_names_what_to_install(lib, no_tensorrt):
    engine = ctypes.c_void_p(1)
    status = lib.ifrt_engine_create_from_engine(b"full.engine", None, ctypes.byref(engine))
    assert status == IFRT_ERR_UNSUPPORTED
    assert engine.value is None  # the handle is cleared on failure
    message = lib.ifrt_last_error().decode()
    assert "built without TensorRT" in message
    assert "JetPack" in message and "libnvinfer" in message and "IFRT_WITH_TENSORRT=ON" in message


def test_create_from_onnx_and_infer_without_tensorrt_are_unsupported(lib, no_tensorrt):
    engine = ctypes.c_void_p()
    options = EngineOptions()
    lib.ifrt_engine_options_init(ctypes.byref(options))
    options.profiles = b"image:1x1x256x256/1x1x512x512/4x1x1024x1024"
    assert lib.ifrt_engine_create_from_onnx(b"full.onnx", b"cache", ctypes.byref(options),
                                            ctypes.byref(engine)) == IFRT_ERR_UNSUPPORTED
    assert lib.ifrt_engine_infer(None, None, 0, None, 0) == IFRT_ERR_UNSUPPORTED
    count = ctypes.c_int32(-1)
    assert lib.ifrt_engine_tensor_count(None, ctypes.byref(count)) == IFRT_ERR_UNSUPPORTED
    assert count.value == -1


def test_null_handle_pointer_and_null_release_do_not_crash(lib, no_tensorrt):
    assert lib.ifrt_engine_create_from_engine(b"full.engine", None, None) == IFRT_ERR_UNSUPPORTED
    lib.ifrt_engine_release(None)  # void, allowed with NULL
