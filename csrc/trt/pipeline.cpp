#include "trt/pipeline.h"

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cuda/kernels.h"
#include "trt/common.h"
#include "trt/context_pool.h"
#include "trt/engine_impl.h"
#include "trt/logger.h"

namespace ifrt::trt {

namespace {

const char* const kInput = "image";
const char* const kOutputs[] = {"diagnosis_logits", "blur_logits", "quality", "quality_map", "deblurred"};

}  // namespace

struct FramePipeline::State {
  Engine::Impl& engine;
  ContextPool::Lease lease;
  ImageView frame;  // geometry, data = the device frame buffer
  PipelineOptions options;
  PipelineShapes shapes;
  cuda::Workspace workspace;
  std::map<std::string, DeviceBuffer> buffers;
  size_t frame_bytes = 0, input_bytes = 0;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;

  State(Engine::Impl& e, ContextPool::Lease l) : engine(e), lease(std::move(l)) {}

  void* buffer(const std::string& name, size_t bytes) { return buffers[name].reserve(bytes, nullptr); }
  float* f32(const std::string& name) const { return static_cast<float*>(buffers.at(name).data()); }

  // The whole chain, enqueued on `stream` (recorded when the stream is capturing).
  void enqueue(cudaStream_t stream) {
    nvinfer1::IExecutionContext& context = *lease->context;
    cuda::preprocess(frame, options.preprocess, f32(kInput), input_bytes, workspace, stream);
    if (!context.enqueueV3(stream)) fail(ErrorCode::TensorRT, engine.path + ": inference failed to launch" + tensorrt_says());
    cuda::softmax(f32("diagnosis_logits"), 1, shapes.classes, options.temperature, f32("probabilities"), stream);
    cuda::softmax(f32("blur_logits"), 1, shapes.blur_levels, 1.0f, f32("blur_probabilities"), stream);
    cuda::upsample_quality_map(f32("quality_map"), shapes.map_height, shapes.map_width, f32("quality_map_full"),
                               shapes.input_height, shapes.input_width, stream);
    if (options.deblur) {
      cuda::denormalize(f32("deblurred"), ifrt::DType::F32, shapes.input_width, shapes.resized_height,
                        shapes.resized_width, workspace.device_range(), 0.0, 0.0, buffers.at("deblurred_frame").data(), frame.dtype,
                        stream);
    }
  }

  ~State() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    cudaEventSynchronize(lease->done);  // the last launch, on the caller's stream, is done with the buffers
  }
};

FramePipeline::FramePipeline(Engine& engine_handle, const ImageView& frame, const PipelineOptions& options,
                             void* cuda_stream) {
  const TensorRTOperation operation;
  Engine::Impl& engine = *engine_handle.impl_;
  const std::string& path = engine.path;
  if (!cuda_stream) {
    fail(ErrorCode::InvalidArgument, path + ": a frame pipeline is recorded on a created stream, not the default stream");
  }
  const cudaStream_t stream = static_cast<cudaStream_t>(cuda_stream);
  const ImageView geometry = checked_input(frame, "frame");
  if (options.preprocess.out_dtype != ifrt::DType::F32) {
    fail(ErrorCode::InvalidArgument, path + ": the pipeline feeds the engine float32 (the model I/O contract)");
  }
  const PreprocessPlan plan = plan_preprocess(geometry, options.preprocess);
  if (plan.batch() != 1) {
    fail(ErrorCode::InvalidArgument, path + ": the pipeline runs one tile per frame; turn tiling off, or resize the frame "
                                            "to fit the engine (" + std::to_string(plan.batch()) + " tiles requested)");
  }
  if (!(options.temperature > 0.0f)) fail(ErrorCode::InvalidArgument, path + ": temperature must be > 0");
  // The preprocessing writes float32 into the input buffer and the kernels read float32 outputs: an
  // engine with half-precision I/O would take those bytes as other numbers without any error.
  std::vector<std::pair<const char*, bool>> contract = {{kInput, true}};
  for (const char* name : kOutputs) contract.emplace_back(name, false);
  for (const auto& [name, is_input] : contract) {
    const char* role = is_input ? "input" : "output";
    bool found = false;
    for (const auto& t : engine.tensors) {
      if (t.name != name || t.is_input != is_input) continue;
      found = true;
      if (t.dtype != DType::Float32) {
        fail(ErrorCode::InvalidArgument, path + ": " + role + " '" + name + "' is " + dtype_name(t.dtype) +
                                             "; the pipeline needs the contract's float32 input and outputs");
      }
    }
    if (!found) {
      fail(ErrorCode::InvalidArgument, path + ": no " + role + " '" + std::string(name) + "' (not a model-contract engine)");
    }
  }

  // The preprocessing writes one plane (the frame's channel `preprocess.channel`) as 1x1xHxW. An
  // engine taking another channel count would otherwise be refused below as "outside every
  // optimization profile ... rebuild with a wider profile", which no profile can fix.
  for (const auto& t : engine.tensors) {
    if (t.name != kInput || !t.is_input) continue;
    if (t.shape.size() != 4 || (t.shape[1] >= 0 && t.shape[1] != 1)) {
      fail(ErrorCode::InvalidArgument, path + ": input '" + std::string(kInput) + "' has shape " + shape_string(t.shape) +
                                           "; the frame pipeline feeds it one channel (N x 1 x H x W, the model "
                                           "contract; the preprocessing picks that channel from the frame): build the "
                                           "engine from a one-channel model");
    }
  }

  check_cuda(cudaSetDevice(engine.device), path + ": selecting CUDA device " + std::to_string(engine.device));
  const std::vector<int64_t> input_shape = {1, 1, plan.frame_height, plan.frame_width};
  state_ = std::make_unique<State>(engine, engine.pool->acquire({{kInput, input_shape}}, /*pin=*/true));
  State& s = *state_;
  s.options = options;
  s.frame = geometry;
  s.shapes.input_height = plan.frame_height;
  s.shapes.input_width = plan.frame_width;
  s.shapes.resized_height = plan.resized_height;
  s.shapes.resized_width = plan.resized_width;

  nvinfer1::IExecutionContext& context = *s.lease->context;
  if (!context.setInputShape(kInput, to_dims(input_shape, kInput))) {
    fail(ErrorCode::InvalidArgument, path + ": input shape " + shape_string(input_shape) + " not accepted" + tensorrt_says());
  }
  s.frame_bytes = image_extent(geometry);
  s.frame.data = s.buffer("frame", s.frame_bytes);
  s.input_bytes = preprocess_bytes(plan, ifrt::DType::F32);
  set_tensor_address(context, kInput, s.buffer(kInput, s.input_bytes), path);
  std::map<std::string, std::vector<int64_t>> out;
  for (const char* name : kOutputs) {
    out[name] = to_shape(context.getTensorShape(name));
    for (const int64_t d : out[name]) {
      if (d < 0) fail(ErrorCode::Unsupported, path + ": output '" + name + "' has a data-dependent shape");
    }
    set_tensor_address(context, name, s.buffer(name, element_count(out[name]) * sizeof(float)), path);
  }
  s.shapes.classes = static_cast<int64_t>(element_count(out["diagnosis_logits"]));
  s.shapes.blur_levels = static_cast<int64_t>(element_count(out["blur_logits"]));
  const std::vector<int64_t>& map = out["quality_map"];
  const auto deblurred = static_cast<int64_t>(element_count(out["deblurred"]));
  if (map.size() != 4 || deblurred != plan.frame_height * plan.frame_width) {
    fail(ErrorCode::InvalidArgument, path + ": quality_map " + shape_string(map) + " or deblurred " +
                                         shape_string(out["deblurred"]) + " does not follow the model contract");
  }
  s.shapes.map_height = map[2];
  s.shapes.map_width = map[3];
  s.buffer("probabilities", sizeof(float) * static_cast<size_t>(s.shapes.classes));
  s.buffer("blur_probabilities", sizeof(float) * static_cast<size_t>(s.shapes.blur_levels));
  s.buffer("quality_map_full", sizeof(float) * static_cast<size_t>(plan.frame_height * plan.frame_width));
  if (options.deblur) {
    s.buffer("deblurred_frame", ifrt::dtype_size(geometry.dtype) * static_cast<size_t>(plan.resized_height * plan.resized_width));
  }

  // Every allocation (TensorRT's lazy ones included) happens in this first, uncaptured run.
  check_cuda(cudaMemsetAsync(const_cast<void*>(s.frame.data), 0, s.frame_bytes, stream), path + ": clearing the frame buffer");
  s.workspace.reserve(cuda_stream);
  check_cuda(cudaStreamWaitEvent(stream, s.lease->done, 0), path + ": ordering after the context's previous call");
  s.enqueue(stream);
  check_cuda(cudaStreamSynchronize(stream), path + ": first run of the frame pipeline");

  check_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), path + ": starting the CUDA graph capture");
  try {
    s.enqueue(stream);
  } catch (...) {
    cudaGraph_t partial = nullptr;
    cudaStreamEndCapture(stream, &partial);
    if (partial) cudaGraphDestroy(partial);
    throw;
  }
  check_cuda(cudaStreamEndCapture(stream, &s.graph), path + ": ending the CUDA graph capture");
  check_cuda(cudaGraphInstantiate(&s.exec, s.graph, 0), path + ": instantiating the frame pipeline's CUDA graph");
}

FramePipeline::~FramePipeline() = default;

void* FramePipeline::frame() const { return const_cast<void*>(state_->frame.data); }
size_t FramePipeline::frame_bytes() const { return state_->frame_bytes; }

void FramePipeline::launch(void* cuda_stream) {
  State& s = *state_;
  const cudaStream_t stream = static_cast<cudaStream_t>(cuda_stream);
  check_cuda(cudaGraphLaunch(s.exec, stream), s.engine.path + ": launching the frame pipeline");
  check_cuda(cudaEventRecord(s.lease->done, stream), s.engine.path + ": recording completion");
}

const PipelineShapes& FramePipeline::shapes() const { return state_->shapes; }
const float* FramePipeline::probabilities() const { return state_->f32("probabilities"); }
const float* FramePipeline::blur_probabilities() const { return state_->f32("blur_probabilities"); }
const float* FramePipeline::quality() const { return state_->f32("quality"); }
const float* FramePipeline::quality_map() const { return state_->f32("quality_map_full"); }
const void* FramePipeline::deblurred() const {
  return state_->options.deblur ? state_->buffers.at("deblurred_frame").data() : nullptr;
}

}  // namespace ifrt::trt
