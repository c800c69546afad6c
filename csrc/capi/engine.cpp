// C ABI for TensorRT engines (include/ifrt/engine.h). Without TensorRT in the build the same entry
// points exist and return IFRT_ERR_UNSUPPORTED with what to install.
#include "ifrt/engine.h"

#include <memory>
#include <string>
#include <vector>

#include "capi/guard.h"
#include "capi/image.h"
#include "core/log.h"

#include "capi/options.h"

#if IFRT_WITH_TENSORRT
#include "trt/engine.h"
#include "trt/pipeline.h"
#endif

struct ifrt_engine {
#if IFRT_WITH_TENSORRT
  std::unique_ptr<ifrt::trt::Engine> engine;
#endif
};

struct ifrt_pipeline {
#if IFRT_WITH_TENSORRT
  std::unique_ptr<ifrt::trt::FramePipeline> pipeline;
#endif
};

namespace {

using ifrt::ErrorCode;
using ifrt::fail;
using ifrt::capi::enum_code;

#if IFRT_WITH_TENSORRT

ifrt::trt::EngineOptions engine_options(const ifrt_engine_options& o) {
  ifrt::trt::EngineOptions options;
  options.device = o.device;
  options.contexts = o.contexts;
  options.allow_same_model_gpu = o.allow_same_model_gpu != 0;
  return options;
}

ifrt::trt::BuildOptions build_options(const ifrt_engine_options& o) {
  ifrt::trt::BuildOptions options;
  if (o.precision) options.precision = o.precision;
  if (o.profiles) options.profiles = ifrt::parse_profiles_text(o.profiles);
  options.concurrency = o.concurrency;
  options.workspace_bytes = o.workspace_bytes;
  if (o.timing_cache_path) options.timing_cache_path = o.timing_cache_path;
  options.dla_core = o.dla_core;
  return options;
}

ifrt::trt::DType to_dtype(const ifrt_engine_dtype& field, const std::string& tensor) {
  const int dtype = enum_code(field);  // any int a C caller stored, without loading it as the enum
  switch (dtype) {
    case IFRT_ENGINE_FLOAT32: return ifrt::trt::DType::Float32;
    case IFRT_ENGINE_FLOAT16: return ifrt::trt::DType::Float16;
    case IFRT_ENGINE_BFLOAT16: return ifrt::trt::DType::BFloat16;
    case IFRT_ENGINE_INT8: return ifrt::trt::DType::Int8;
    case IFRT_ENGINE_UINT8: return ifrt::trt::DType::UInt8;
    case IFRT_ENGINE_INT32: return ifrt::trt::DType::Int32;
    case IFRT_ENGINE_INT64: return ifrt::trt::DType::Int64;
    case IFRT_ENGINE_BOOL: return ifrt::trt::DType::Bool;
  }
  fail(ErrorCode::InvalidArgument, tensor + ": dtype " + std::to_string(dtype) + " is not an ifrt_engine_dtype");
}

ifrt_engine_dtype from_dtype(ifrt::trt::DType dtype) {
  switch (dtype) {
    case ifrt::trt::DType::Float16: return IFRT_ENGINE_FLOAT16;
    case ifrt::trt::DType::BFloat16: return IFRT_ENGINE_BFLOAT16;
    case ifrt::trt::DType::Int8: return IFRT_ENGINE_INT8;
    case ifrt::trt::DType::UInt8: return IFRT_ENGINE_UINT8;
    case ifrt::trt::DType::Int32: return IFRT_ENGINE_INT32;
    case ifrt::trt::DType::Int64: return IFRT_ENGINE_INT64;
    case ifrt::trt::DType::Bool: return IFRT_ENGINE_BOOL;
    default: return IFRT_ENGINE_FLOAT32;
  }
}

ifrt::trt::TensorView to_view(const ifrt_engine_tensor& t, const char* role, size_t index) {
  if (!t.name) fail(ErrorCode::InvalidArgument, std::string(role) + " " + std::to_string(index) + " has no name");
  const std::string name = t.name;
  if (t.ndim < 0 || t.ndim > IFRT_ENGINE_MAX_DIMS) {
    fail(ErrorCode::InvalidArgument, name + ": ndim " + std::to_string(t.ndim) + " is outside 0.." +
                                         std::to_string(IFRT_ENGINE_MAX_DIMS));
  }
  const int memory = enum_code(t.memory);
  if (memory != IFRT_ENGINE_HOST && memory != IFRT_ENGINE_DEVICE) {
    fail(ErrorCode::InvalidArgument, name + ": memory must be IFRT_ENGINE_HOST or IFRT_ENGINE_DEVICE");
  }
  ifrt::trt::TensorView view;
  view.name = name;
  view.dtype = to_dtype(t.dtype, name);
  view.shape.assign(t.shape, t.shape + t.ndim);
  for (const int64_t d : view.shape) {
    if (d < 0) fail(ErrorCode::InvalidArgument, name + ": negative dim " + std::to_string(d));
  }
  view.data = t.data;
  view.capacity_bytes = t.capacity_bytes;
  view.memory = memory == IFRT_ENGINE_DEVICE ? ifrt::trt::Memory::Device : ifrt::trt::Memory::Host;
  return view;
}

#else

[[noreturn]] void no_tensorrt() {
  fail(ErrorCode::Unsupported,
       "this ifrt was built without TensorRT. Install TensorRT 10 or newer with its ONNX parser (desktop: NVIDIA's "
       "TensorRT packages, e.g. libnvinfer-dev and libnvonnxparser-dev; Jetson: JetPack 6, which ships TensorRT 10.3) "
       "and the CUDA toolkit, then rebuild ifrt (pip install . or cmake -DIFRT_WITH_TENSORRT=ON "
       "-DTENSORRT_ROOT=<prefix>). Without TensorRT, run the ONNX model with onnxruntime.");
}

#endif

struct CallbackTarget {
  ifrt_log_callback callback = nullptr;
  void* user = nullptr;
};
CallbackTarget g_callback;  // only changed while no sink points at it

void forward_to_callback(ifrt::LogLevel level, const char* message, void* user) {
  const auto* target = static_cast<const CallbackTarget*>(user);
  target->callback(static_cast<int32_t>(level), message, target->user);
}

const ifrt_engine_options& or_defaults(const ifrt_engine_options* options, ifrt_engine_options& storage) {
  if (options) return *options;
  ifrt_engine_options_init(&storage);
  return storage;
}

}  // namespace

extern "C" {

IFRT_API void ifrt_engine_options_init(ifrt_engine_options* options) {
  if (!options) return;
  *options = ifrt_engine_options{};
  options->device = 0;
  options->contexts = 2;
  options->allow_same_model_gpu = 0;
  options->precision = nullptr;
  options->profiles = nullptr;
  options->concurrency = 1;
  options->workspace_bytes = 0;
  options->timing_cache_path = nullptr;
  options->dla_core = -1;
}

IFRT_API ifrt_status ifrt_engine_create_from_engine(const char* engine_path, const ifrt_engine_options* options,
                                                    ifrt_engine** engine) {
  if (engine) *engine = nullptr;
  return ifrt::capi::guarded([&] {
#if IFRT_WITH_TENSORRT
    if (!engine_path || !engine) fail(ErrorCode::InvalidArgument, "ifrt_engine_create_from_engine: engine_path and engine must not be NULL");
    ifrt_engine_options defaults;
    const auto& o = or_defaults(options, defaults);
    auto handle = std::make_unique<ifrt_engine>();
    handle->engine = ifrt::trt::Engine::load(engine_path, engine_options(o));
    *engine = handle.release();
#else
    (void)engine_path;
    (void)options;
    no_tensorrt();
#endif
  });
}

IFRT_API ifrt_status ifrt_engine_create_from_onnx(const char* onnx_path, const char* cache_dir,
                                                  const ifrt_engine_options* options, ifrt_engine** engine) {
  if (engine) *engine = nullptr;
  return ifrt::capi::guarded([&] {
#if IFRT_WITH_TENSORRT
    if (!onnx_path || !cache_dir || !engine) {
      fail(ErrorCode::InvalidArgument, "ifrt_engine_create_from_onnx: onnx_path, cache_dir and engine must not be NULL");
    }
    ifrt_engine_options defaults;
    const auto& o = or_defaults(options, defaults);
    auto handle = std::make_unique<ifrt_engine>();
    handle->engine = ifrt::trt::Engine::from_onnx(onnx_path, cache_dir, build_options(o), engine_options(o));
    *engine = handle.release();
#else
    (void)onnx_path;
    (void)cache_dir;
    (void)options;
    no_tensorrt();
#endif
  });
}

IFRT_API ifrt_status ifrt_engine_tensor_count(const ifrt_engine* engine, int32_t* count) {
  return ifrt::capi::guarded([&] {
#if IFRT_WITH_TENSORRT
    if (!engine || !count) fail(ErrorCode::InvalidArgument, "ifrt_engine_tensor_count: engine and count must not be NULL");
    *count = static_cast<int32_t>(engine->engine->tensors().size());
#else
    (void)engine;
    (void)count;
    no_tensorrt();
#endif
  });
}

IFRT_API ifrt_status ifrt_engine_tensor_info(const ifrt_engine* engine, int32_t index, ifrt_engine_tensor* info,
                                             int32_t* is_input) {
  return ifrt::capi::guarded([&] {
#if IFRT_WITH_TENSORRT
    if (!engine || !info || !is_input) {
      fail(ErrorCode::InvalidArgument, "ifrt_engine_tensor_info: engine, info and is_input must not be NULL");
    }
    const auto& tensors = engine->engine->tensors();
    if (index < 0 || static_cast<size_t>(index) >= tensors.size()) {
      fail(ErrorCode::InvalidArgument, "tensor index " + std::to_string(index) + " is outside 0.." +
                                           std::to_string(static_cast<int>(tensors.size()) - 1));
    }
    const auto& t = tensors[static_cast<size_t>(index)];
    if (t.shape.size() > IFRT_ENGINE_MAX_DIMS) fail(ErrorCode::Unsupported, t.name + ": rank above IFRT_ENGINE_MAX_DIMS");
    *info = ifrt_engine_tensor{};
    info->name = t.name.c_str();
    info->dtype = from_dtype(t.dtype);
    info->ndim = static_cast<int32_t>(t.shape.size());
    for (size_t d = 0; d < t.shape.size(); ++d) info->shape[d] = t.shape[d];
    info->memory = IFRT_ENGINE_HOST;
    *is_input = t.is_input ? 1 : 0;
#else
    (void)engine;
    (void)index;
    (void)info;
    (void)is_input;
    no_tensorrt();
#endif
  });
}

IFRT_API ifrt_status ifrt_engine_infer(ifrt_engine* engine, const ifrt_engine_tensor* inputs, size_t num_inputs,
                                       ifrt_engine_tensor* outputs, size_t num_outputs) {
  return ifrt::capi::guarded([&] {
#if IFRT_WITH_TENSORRT
    if (!engine) fail(ErrorCode::InvalidArgument, "ifrt_engine_infer: engine is NULL");
    if ((num_inputs && !inputs) || (num_outputs && !outputs)) {
      fail(ErrorCode::InvalidArgument, "ifrt_engine_infer: inputs/outputs are NULL with a non-zero count");
    }
    std::vector<ifrt::trt::TensorView> in, out;
    for (size_t i = 0; i < num_inputs; ++i) in.push_back(to_view(inputs[i], "input", i));
    for (size_t i = 0; i < num_outputs; ++i) out.push_back(to_view(outputs[i], "output", i));
    engine->engine->infer(in, out);
    for (size_t i = 0; i < num_outputs; ++i) {
      if (out[i].shape.size() > IFRT_ENGINE_MAX_DIMS) fail(ErrorCode::Unsupported, out[i].name + ": rank above IFRT_ENGINE_MAX_DIMS");
      outputs[i].ndim = static_cast<int32_t>(out[i].shape.size());
      for (size_t d = 0; d < out[i].shape.size(); ++d) outputs[i].shape[d] = out[i].shape[d];
    }
#else
    (void)engine;
    (void)inputs;
    (void)num_inputs;
    (void)outputs;
    (void)num_outputs;
    no_tensorrt();
#endif
  });
}

IFRT_API void ifrt_engine_release(ifrt_engine* engine) {
  try {
    delete engine;
  } catch (...) {
    // Destruction only frees CUDA/TensorRT resources; nothing to report through a void call.
  }
}

IFRT_API void ifrt_set_log_level(int32_t level) {
  if (level < 0) level = 0;
  if (level > 3) level = 3;
  ifrt::set_log_level(static_cast<ifrt::LogLevel>(level));
}

IFRT_API void ifrt_set_log_callback(ifrt_log_callback callback, void* user) {
  if (!callback) {
    ifrt::set_log_sink(nullptr, nullptr);
    return;
  }
  ifrt::set_log_sink(nullptr, nullptr);  // detach before changing the target the sink reads
  g_callback = {callback, user};
  ifrt::set_log_sink(forward_to_callback, &g_callback);
}

IFRT_API ifrt_status ifrt_pipeline_create(ifrt_engine* engine, const ifrt_image* frame,
                                          const ifrt_preprocess_options* options, float temperature, int32_t deblur,
                                          void* cuda_stream, ifrt_pipeline** pipeline) {
  if (pipeline) *pipeline = nullptr;
  return ifrt::capi::guarded([&] {
#if IFRT_WITH_TENSORRT
    if (!engine || !engine->engine || !pipeline) {
      fail(ErrorCode::InvalidArgument, "ifrt_pipeline_create: engine and pipeline must not be NULL");
    }
    ifrt::trt::PipelineOptions o;
    o.preprocess = ifrt::capi::options_from(options);
    o.temperature = temperature;
    o.deblur = deblur != 0;
    auto handle = std::make_unique<ifrt_pipeline>();
    handle->pipeline = std::make_unique<ifrt::trt::FramePipeline>(*engine->engine, ifrt::capi::image_from(frame), o,
                                                                  cuda_stream);
    *pipeline = handle.release();
#else
    (void)engine, (void)frame, (void)options, (void)temperature, (void)deblur, (void)cuda_stream;
    no_tensorrt();
#endif
  });
}

IFRT_API ifrt_status ifrt_pipeline_buffers_get(const ifrt_pipeline* pipeline, ifrt_pipeline_buffers* buffers) {
  return ifrt::capi::guarded([&] {
#if IFRT_WITH_TENSORRT
    if (!pipeline || !pipeline->pipeline || !buffers) {
      fail(ErrorCode::InvalidArgument, "ifrt_pipeline_buffers_get: pipeline and buffers must not be NULL");
    }
    const ifrt::trt::FramePipeline& p = *pipeline->pipeline;
    const ifrt::trt::PipelineShapes& s = p.shapes();
    *buffers = ifrt_pipeline_buffers{};
    buffers->frame = p.frame();
    buffers->frame_bytes = p.frame_bytes();
    buffers->probabilities = p.probabilities();
    buffers->classes = s.classes;
    buffers->blur_probabilities = p.blur_probabilities();
    buffers->blur_levels = s.blur_levels;
    buffers->quality = p.quality();
    buffers->quality_map = p.quality_map();
    buffers->map_height = s.map_height;
    buffers->map_width = s.map_width;
    buffers->input_height = s.input_height;
    buffers->input_width = s.input_width;
    buffers->height = s.resized_height;
    buffers->width = s.resized_width;
    buffers->deblurred = p.deblurred();
#else
    (void)pipeline, (void)buffers;
    no_tensorrt();
#endif
  });
}

IFRT_API ifrt_status ifrt_pipeline_launch(ifrt_pipeline* pipeline, void* cuda_stream) {
  return ifrt::capi::guarded([&] {
#if IFRT_WITH_TENSORRT
    if (!pipeline || !pipeline->pipeline) fail(ErrorCode::InvalidArgument, "ifrt_pipeline_launch: pipeline is NULL");
    pipeline->pipeline->launch(cuda_stream);
#else
    (void)pipeline, (void)cuda_stream;
    no_tensorrt();
#endif
  });
}

IFRT_API void ifrt_pipeline_release(ifrt_pipeline* pipeline) { delete pipeline; }

}  // extern "C"
