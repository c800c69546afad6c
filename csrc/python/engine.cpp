// ifrt._native: TensorRT engines (ifrt._native.Engine), present when ifrt is built with TensorRT;
// runtime/engine.py wraps it and explains what to install when it is absent. The GIL is released
// while an engine builds, loads, waits for a context or runs, so Python threads infer in parallel.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <map>
#include <optional>

#include "python/bind.h"

#include "core/common.h"
#include "core/log.h"

#include "core/engine_sidecar.h"
#include "core/json.h"
#include "core/onnx_external_data.h"

#if IFRT_WITH_TENSORRT
#include "trt/engine.h"
#endif

namespace py = pybind11;

namespace ifrt::python {

#if IFRT_WITH_TENSORRT
namespace {

using trt::DType;

py::dtype numpy_dtype(DType dtype) {
  switch (dtype) {
    case DType::Float32: return py::dtype("float32");
    case DType::Float16: return py::dtype("float16");
    case DType::Int8: return py::dtype("int8");
    case DType::UInt8: return py::dtype("uint8");
    case DType::Int32: return py::dtype("int32");
    case DType::Int64: return py::dtype("int64");
    case DType::Bool: return py::dtype("bool");
    default: fail(ErrorCode::Unsupported, std::string("numpy has no ") + trt::dtype_name(dtype) + " arrays");
  }
}

DType engine_dtype(const py::array& array, const std::string& name) {
  const py::dtype d = array.dtype();
  const char kind = d.kind();
  const auto size = d.itemsize();
  if (kind == 'f' && size == 4) return DType::Float32;
  if (kind == 'f' && size == 2) return DType::Float16;
  if (kind == 'i' && size == 1) return DType::Int8;
  if (kind == 'u' && size == 1) return DType::UInt8;
  if (kind == 'i' && size == 4) return DType::Int32;
  if (kind == 'i' && size == 8) return DType::Int64;
  if (kind == 'b') return DType::Bool;
  fail(ErrorCode::InvalidArgument, name + ": numpy dtype " + std::string(py::str(d)) + " has no TensorRT counterpart");
}

py::dict tensor_dict(const trt::TensorInfo& t) {
  py::dict d;
  d["name"] = t.name;
  d["is_input"] = t.is_input;
  d["dtype"] = trt::dtype_name(t.dtype);
  d["shape"] = t.shape;
  return d;
}

py::dict infer(trt::Engine& engine, const py::dict& inputs, const std::optional<std::vector<std::string>>& names) {
  const py::object ascontiguous = py::module_::import("numpy").attr("ascontiguousarray");
  std::vector<py::array> keep_alive;
  std::vector<trt::TensorView> in;
  for (const auto& [key, value] : inputs) {
    const std::string name = py::cast<std::string>(key);
    py::array array = ascontiguous(value);
    trt::TensorView view;
    view.name = name;
    view.dtype = engine_dtype(array, name);
    view.shape.assign(array.shape(), array.shape() + array.ndim());
    view.data = const_cast<void*>(array.data());
    view.capacity_bytes = static_cast<size_t>(array.nbytes());
    view.memory = trt::Memory::Host;
    in.push_back(view);
    keep_alive.push_back(array);
  }
  if (names) {
    for (const auto& name : *names) {
      const auto& tensors = engine.tensors();
      const bool output = std::any_of(tensors.begin(), tensors.end(),
                                      [&](const trt::TensorInfo& t) { return !t.is_input && t.name == name; });
      if (!output) fail(ErrorCode::InvalidArgument, engine.path() + ": no output named '" + name + "'");
    }
  }
  // The arrays are made once the engine knows the output shapes, inside the call that runs it: one
  // context lease for both (with the GIL taken back only to allocate).
  py::dict result;
  const trt::Engine::OutputAllocator allocate = [&](const trt::TensorInfo& info, const std::vector<int64_t>& shape) -> void* {
    if (names && std::find(names->begin(), names->end(), info.name) == names->end()) return nullptr;
    py::gil_scoped_acquire gil;
    py::array array(numpy_dtype(info.dtype), std::vector<py::ssize_t>(shape.begin(), shape.end()));
    result[py::str(info.name)] = array;
    return array.mutable_data();
  };
  {
    py::gil_scoped_release release;
    engine.infer(in, allocate);
  }
  return result;
}

}  // namespace
#endif

namespace {

// The C++ sidecar rules, callable from Python so tests can hold them to runtime/engine.py.
std::vector<std::string> native_sidecar_mismatches(const std::string& sidecar_json, const std::string& expectation_json) {
  const EngineSidecar sidecar = sidecar_from_json(Json::parse(sidecar_json));
  const Json want_json = Json::parse(expectation_json);
  SidecarExpectation want;
  auto text = [&](const char* key) -> std::string {
    const Json* v = want_json.find(key);
    return v && !v->is_null() ? v->as_string() : std::string();
  };
  want.tensorrt_version = text("tensorrt_version");
  if (const Json* gpu = want_json.find("gpu"); gpu && !gpu->is_null()) {
    want.gpu = {gpu->find("name")->as_string(), gpu->find("compute_capability")->as_string(), gpu->find("uuid")->as_string()};
  }
  if (const Json* v = want_json.find("allow_same_model_gpu")) want.allow_same_model_gpu = v->as_bool();
  want.onnx_sha256 = text("onnx_sha256");
  if (const Json* v = want_json.find("external_data_sha256"); v && !v->is_null()) want.external_data_sha256 = v->as_string();
  want.engine_sha256 = text("engine_sha256");
  want.precision = text("precision");
  if (const Json* v = want_json.find("profiles"); v && !v->is_null()) want.profiles = profiles_from_json(*v);
  if (const Json* v = want_json.find("concurrency"); v && !v->is_null()) want.concurrency = static_cast<int>(v->as_int());
  if (const Json* v = want_json.find("workspace_bytes"); v && !v->is_null()) want.workspace_bytes = v->as_int();
  if (const Json* v = want_json.find("dla_core"); v && !v->is_null()) want.dla_core = static_cast<int>(v->as_int());
  return sidecar_mismatches(sidecar, want);
}

}  // namespace

void bind_engine(py::module_& m) {
  m.def("sidecar_mismatches", &native_sidecar_mismatches, py::arg("sidecar_json"), py::arg("expectation_json"),
        "The C++ engine-sidecar check (core/engine_sidecar.h) on JSON texts; same rules as ifrt.engine.");
  m.def("engine_cache_key", [](const std::string& sidecar_json) {
    return engine_cache_key(sidecar_from_json(Json::parse(sidecar_json)).spec);
  }, py::arg("sidecar_json"), "The C++ engine-cache key of the build spec recorded in a sidecar.");
  m.def("onnx_external_data_sha256", [](const std::string& onnx_path) {
    py::gil_scoped_release release;
    return onnx_external_data_sha256(onnx_path);
  }, py::arg("onnx_path"), "The hash of an ONNX's external-data files the C++ engine cache keys on.");

  m.def("set_log_level", [](const std::string& level) {
    if (level == "debug") set_log_level(LogLevel::Debug);
    else if (level == "info") set_log_level(LogLevel::Info);
    else if (level == "warning") set_log_level(LogLevel::Warning);
    else if (level == "error") set_log_level(LogLevel::Error);
    else fail(ErrorCode::InvalidArgument, "log level '" + level + "' is not one of debug, info, warning, error");
  }, py::arg("level"), "Level of the native ifrt log (TensorRT's messages included), printed to stderr.");

#if IFRT_WITH_TENSORRT
  py::class_<trt::Engine>(m, "Engine",
                          "A TensorRT engine with a pool of execution contexts; infer() is thread-safe.")
      .def_static("load", [](const std::string& path, int device, int contexts, bool allow_same_model_gpu) {
        trt::EngineOptions options;
        options.device = device;
        options.contexts = contexts;
        options.allow_same_model_gpu = allow_same_model_gpu;
        py::gil_scoped_release release;
        return trt::Engine::load(path, options);
      }, py::arg("path"), py::arg("device") = 0, py::arg("contexts") = 2, py::arg("allow_same_model_gpu") = false,
         "Load model.engine after checking model.engine.json against this GPU and TensorRT.")
      .def_static("from_onnx", [](const std::string& onnx, const std::string& cache_dir, const std::string& precision,
                                  const std::string& profiles, int concurrency, int64_t workspace_bytes,
                                  const std::string& timing_cache, int dla_core, int device, int contexts) {
        trt::BuildOptions build;
        build.precision = precision;
        build.profiles = parse_profiles_text(profiles);
        build.concurrency = concurrency;
        build.workspace_bytes = workspace_bytes;
        build.timing_cache_path = timing_cache;
        build.dla_core = dla_core;
        trt::EngineOptions options;
        options.device = device;
        options.contexts = contexts;
        py::gil_scoped_release release;
        return trt::Engine::from_onnx(onnx, cache_dir, build, options);
      }, py::arg("onnx"), py::arg("cache_dir"), py::arg("precision") = "fp16", py::arg("profiles") = "",
         py::arg("concurrency") = 1, py::arg("workspace_bytes") = 0, py::arg("timing_cache") = "",
         py::arg("dla_core") = -1, py::arg("device") = 0, py::arg("contexts") = 2,
         "The cached engine for this ONNX, options, TensorRT and GPU, built (minutes) on first use.")
      .def_property_readonly("path", &trt::Engine::path)
      .def_property_readonly("pool_size", &trt::Engine::pool_size)
      .def_property_readonly("sidecar", [](const trt::Engine& e) {
        return py::module_::import("json").attr("loads")(sidecar_to_json(e.sidecar()).dump(0));
      })
      .def_property_readonly("tensors", [](const trt::Engine& e) {
        py::list out;
        for (const auto& t : e.tensors()) out.append(tensor_dict(t));
        return out;
      })
      .def("infer", &infer, py::arg("inputs"), py::arg("outputs") = py::none(),
           "inputs: {name: numpy array}; returns {name: numpy array} for `outputs` (default: all).");
#endif
}

}  // namespace ifrt::python
