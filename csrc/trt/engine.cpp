#include "trt/engine.h"

#include <NvInfer.h>

#include <fstream>
#include <iterator>
#include <set>

#include "core/sha256.h"
#include "trt/device.h"
#include "trt/engine_impl.h"
#include "trt/logger.h"

namespace ifrt::trt {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float32: case DType::Int32: return 4;
    case DType::Float16: case DType::BFloat16: return 2;
    case DType::Int8: case DType::UInt8: case DType::Bool: return 1;
    case DType::Int64: return 8;
    case DType::Other: return 0;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Int8: return "int8";
    case DType::UInt8: return "uint8";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::Bool: return "bool";
    case DType::Other: return "other";
  }
  return "other";
}

std::vector<char> read_binary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::Io, path + ": cannot open");
  return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// An output's shape once the input shapes are set; refused when it depends on the data (-1 until it has run).
std::vector<int64_t> output_shape(nvinfer1::IExecutionContext& context, const std::string& name, const std::string& path) {
  const std::vector<int64_t> shape = to_shape(context.getTensorShape(name.c_str()));
  for (const int64_t d : shape) {
    if (d < 0) {
      fail(ErrorCode::Unsupported, path + ": output '" + name + "' has a data-dependent shape (" + shape_string(shape) +
                                       "); the executor needs output shapes that follow from the inputs");
    }
  }
  return shape;
}

SidecarExpectation expectation_here(const EngineOptions& options) {
  SidecarExpectation want;
  want.tensorrt_version = tensorrt_runtime_version();
  want.gpu = gpu_identity(options.device);
  want.allow_same_model_gpu = options.allow_same_model_gpu;
  return want;
}

std::unique_ptr<Engine::Impl> Engine::Impl::open(const std::string& path, const std::vector<char>& plan,
                                                 EngineSidecar sidecar, const EngineOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->sidecar = std::move(sidecar);
  impl->device = options.device;
  check_cuda(cudaSetDevice(options.device), path + ": selecting CUDA device " + std::to_string(options.device));
  const TensorRTOperation operation;
  impl->runtime.reset(nvinfer1::createInferRuntime(logger()));
  if (!impl->runtime) fail(ErrorCode::TensorRT, "cannot create the TensorRT runtime" + tensorrt_says());
  if (impl->sidecar.spec.dla_core >= 0) impl->runtime->setDLACore(impl->sidecar.spec.dla_core);
  impl->engine.reset(impl->runtime->deserializeCudaEngine(plan.data(), plan.size()));
  if (!impl->engine) fail(ErrorCode::TensorRT, path + ": TensorRT could not deserialize the engine" + tensorrt_says());

  for (int32_t i = 0; i < impl->engine->getNbIOTensors(); ++i) {
    const char* name = impl->engine->getIOTensorName(i);
    TensorInfo info;
    info.name = name;
    info.is_input = impl->engine->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT;
    info.dtype = from_trt(impl->engine->getTensorDataType(name));
    info.shape = to_shape(impl->engine->getTensorShape(name));
    if (info.dtype == DType::Other) fail(ErrorCode::Unsupported, path + ": tensor '" + info.name + "' has a data type ifrt does not handle");
    impl->tensors.push_back(info);
  }
  impl->pool.emplace(*impl->engine, options.contexts, path);
  return impl;
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

const std::string& Engine::path() const { return impl_->path; }
const EngineSidecar& Engine::sidecar() const { return impl_->sidecar; }
const std::vector<TensorInfo>& Engine::tensors() const { return impl_->tensors; }
int Engine::pool_size() const { return impl_->pool->size(); }

std::unique_ptr<Engine> Engine::load(const std::string& engine_path, const EngineOptions& options) {
  const EngineSidecar sidecar = read_sidecar(sidecar_path_for(engine_path));
  const std::vector<char> plan = read_binary(engine_path);
  SidecarExpectation want = expectation_here(options);
  want.engine_sha256 = sha256_hex(plan.data(), plan.size());
  const auto reasons = sidecar_mismatches(sidecar, want);
  if (!reasons.empty()) {
    std::string message = engine_path + ": refusing to load this engine: ";
    for (size_t i = 0; i < reasons.size(); ++i) message += (i ? "; " : "") + reasons[i];
    message += ". Rebuild it here with `ifrt export trt MODEL.onnx`, or load the ONNX with a cache folder "
               "(it rebuilds by itself).";
    fail(ErrorCode::TensorRT, message);
  }
  return std::unique_ptr<Engine>(new Engine(Impl::open(engine_path, plan, sidecar, options)));
}

std::map<std::string, std::vector<int64_t>> Engine::output_shapes(
    const std::map<std::string, std::vector<int64_t>>& input_shapes) {
  const TensorRTOperation operation;
  auto slot = impl_->pool->acquire(input_shapes);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [name, shape] : input_shapes) {
    if (!slot->context->setInputShape(name.c_str(), to_dims(shape, name))) {
      fail(ErrorCode::InvalidArgument, impl_->path + ": input '" + name + "' shape " + shape_string(shape) +
                                           " not accepted" + tensorrt_says());
    }
  }
  for (const auto& info : impl_->tensors) {
    if (!info.is_input) shapes[info.name] = output_shape(*slot->context, info.name, impl_->path);
  }
  return shapes;
}

void Engine::infer(const std::vector<TensorView>& inputs, std::vector<TensorView>& outputs) {
  impl_->run(inputs, outputs, nullptr, true);
}

void Engine::infer(const std::vector<TensorView>& inputs, const OutputAllocator& allocate) {
  std::vector<TensorView> none;
  impl_->run(inputs, none, nullptr, true, &allocate);
}

void Engine::enqueue(const std::vector<TensorView>& inputs, std::vector<TensorView>& outputs, void* cuda_stream) {
  for (const auto* list : {&inputs, static_cast<const std::vector<TensorView>*>(&outputs)}) {
    for (const auto& t : *list) {
      if (t.memory != Memory::Device) {
        fail(ErrorCode::InvalidArgument, impl_->path + ": enqueue takes device memory only ('" + t.name +
                                             "' is host memory; use infer for host tensors)");
      }
    }
  }
  impl_->run(inputs, outputs, static_cast<cudaStream_t>(cuda_stream), false);
}

namespace {

const TensorInfo& find_tensor(const std::vector<TensorInfo>& tensors, const std::string& name, bool input,
                              const std::string& path) {
  std::string names;
  for (const auto& t : tensors) {
    if (t.is_input != input) continue;
    if (t.name == name) return t;
    names += (names.empty() ? "" : ", ") + t.name;
  }
  fail(ErrorCode::InvalidArgument, path + ": no " + (input ? "input" : "output") + " named '" + name +
                                       "' (the engine's " + (input ? "inputs" : "outputs") + ": " + names + ")");
}

}  // namespace

void Engine::Impl::run(const std::vector<TensorView>& inputs, std::vector<TensorView>& outputs, cudaStream_t user_stream,
                       bool wait, const Engine::OutputAllocator* allocate) {
  const TensorRTOperation operation;
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& view : inputs) {
    const TensorInfo& info = find_tensor(tensors, view.name, true, path);
    if (view.dtype != info.dtype) {
      fail(ErrorCode::InvalidArgument, path + ": input '" + view.name + "' is " + dtype_name(view.dtype) +
                                           ", the engine takes " + dtype_name(info.dtype));
    }
    if (view.shape.size() != info.shape.size()) {
      fail(ErrorCode::InvalidArgument, path + ": input '" + view.name + "' has shape " + shape_string(view.shape) +
                                           ", the engine takes rank " + std::to_string(info.shape.size()) + " (" +
                                           shape_string(info.shape) + ")");
    }
    if (!view.data) fail(ErrorCode::InvalidArgument, path + ": input '" + view.name + "' has no data");
    if (!shapes.emplace(view.name, view.shape).second) {
      fail(ErrorCode::InvalidArgument, path + ": input '" + view.name + "' given twice");
    }
  }
  for (const auto& info : tensors) {
    if (info.is_input && !shapes.count(info.name)) fail(ErrorCode::InvalidArgument, path + ": input '" + info.name + "' missing");
  }
  std::set<std::string> asked;
  for (const auto& view : outputs) {
    const TensorInfo& info = find_tensor(tensors, view.name, false, path);
    if (view.dtype != info.dtype) {
      fail(ErrorCode::InvalidArgument, path + ": output '" + view.name + "' is " + dtype_name(info.dtype) +
                                           ", the buffer given is " + dtype_name(view.dtype));
    }
    if (!asked.insert(view.name).second) fail(ErrorCode::InvalidArgument, path + ": output '" + view.name + "' asked twice");
  }

  check_cuda(cudaSetDevice(device), path + ": selecting CUDA device " + std::to_string(device));
  auto slot = pool->acquire(shapes);
  nvinfer1::IExecutionContext& context = *slot->context;
  const cudaStream_t stream = wait ? slot->stream : user_stream;
  // The context's activation memory may still be in use by its previous call on another stream.
  check_cuda(cudaStreamWaitEvent(stream, slot->done, 0), path + ": ordering after the context's previous call");

  for (const auto& view : inputs) {
    const size_t bytes = element_count(view.shape) * dtype_size(view.dtype);
    if (!context.setInputShape(view.name.c_str(), to_dims(view.shape, view.name))) {
      fail(ErrorCode::InvalidArgument, path + ": input '" + view.name + "' shape " + shape_string(view.shape) +
                                           " not accepted" + tensorrt_says());
    }
    void* address = view.data;
    if (view.memory == Memory::Host) {
      address = slot->staging[view.name].reserve(bytes, slot->done);
      check_cuda(cudaMemcpyAsync(address, view.data, bytes, cudaMemcpyHostToDevice, stream),
                 path + ": copying input '" + view.name + "' to the device");
    }
    set_tensor_address(context, view.name, address, path);
  }
  if (!context.allInputDimensionsSpecified()) fail(ErrorCode::InvalidArgument, path + ": not every input shape is set");

  struct HostCopy {
    TensorView* view;
    void* device;
    size_t bytes;
  };
  std::vector<HostCopy> host_copies;
  std::vector<TensorView> allocated;
  allocated.reserve(tensors.size());  // host_copies points into it
  for (const auto& info : tensors) {
    if (info.is_input) continue;
    const std::vector<int64_t> shape = output_shape(context, info.name, path);
    const size_t bytes = element_count(shape) * dtype_size(info.dtype);
    TensorView* view = nullptr;
    for (auto& v : outputs) {
      if (v.name == info.name) view = &v;
    }
    if (!view && allocate) {
      if (void* host = (*allocate)(info, shape)) {
        allocated.push_back(TensorView{info.name, info.dtype, shape, host, bytes, Memory::Host});
        view = &allocated.back();
      }
    }
    void* address = nullptr;
    if (view) {
      if (!view->data || view->capacity_bytes < bytes) {
        fail(ErrorCode::InvalidArgument, path + ": output '" + info.name + "' needs " + std::to_string(bytes) +
                                             " bytes (" + shape_string(shape) + " " + dtype_name(info.dtype) + "), the buffer has " +
                                             std::to_string(view->capacity_bytes));
      }
      view->shape = shape;
      if (view->memory == Memory::Device) {
        address = view->data;
      } else {
        address = slot->staging[info.name].reserve(bytes, slot->done);
        host_copies.push_back({view, address, bytes});
      }
    } else {
      address = slot->staging[info.name].reserve(bytes, slot->done);  // computed, then dropped
    }
    set_tensor_address(context, info.name, address, path);
  }

  if (!context.enqueueV3(stream)) fail(ErrorCode::TensorRT, path + ": inference failed to launch" + tensorrt_says());
  for (const auto& copy : host_copies) {
    check_cuda(cudaMemcpyAsync(copy.view->data, copy.device, copy.bytes, cudaMemcpyDeviceToHost, stream),
               path + ": copying output '" + copy.view->name + "' to the host");
  }
  check_cuda(cudaEventRecord(slot->done, stream), path + ": recording completion");
  if (wait) check_cuda(cudaStreamSynchronize(stream), path + ": running the engine");
}

}  // namespace ifrt::trt
