#include "trt/builder.h"

#include <NvInfer.h>
#include <NvOnnxParser.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/log.h"
#include "trt/common.h"
#include "trt/logger.h"

namespace ifrt::trt {

namespace {

using nvinfer1::BuilderFlag;
using nvinfer1::DataType;
using nvinfer1::LayerType;
using nvinfer1::NetworkDefinitionCreationFlag;

struct NetworkTypes {
  bool has_half = false;  // an FP16 ONNX: some layer computes in half precision
  bool has_qdq = false;   // a Q/DQ-quantized ONNX
};

NetworkTypes inspect(const nvinfer1::INetworkDefinition& network) {
  NetworkTypes types;
  for (int32_t i = 0; i < network.getNbLayers(); ++i) {
    const nvinfer1::ILayer* layer = network.getLayer(i);
    if (layer->getType() == LayerType::kQUANTIZE || layer->getType() == LayerType::kDEQUANTIZE) types.has_qdq = true;
    for (int32_t o = 0; o < layer->getNbOutputs(); ++o) {
      if (layer->getOutput(o)->getType() == DataType::kHALF) types.has_half = true;
    }
  }
  return types;
}

struct ParsedNetwork {
  TrtPtr<nvinfer1::INetworkDefinition> network;
  TrtPtr<nvonnxparser::IParser> parser;  // owns weights the network refers to: keep until built
};

ParsedNetwork parse(nvinfer1::IBuilder& builder, const std::string& onnx_path, bool strongly_typed) {
  nvinfer1::NetworkDefinitionCreationFlags flags = 0;
#if NV_TENSORRT_MAJOR < 11
  if (strongly_typed) flags |= 1U << static_cast<uint32_t>(NetworkDefinitionCreationFlag::kSTRONGLY_TYPED);
#else
  (void)strongly_typed;  // TensorRT 11: every network is strongly typed
#endif
  ParsedNetwork parsed;
  parsed.network.reset(builder.createNetworkV2(flags));
  if (!parsed.network) fail(ErrorCode::TensorRT, "cannot create a TensorRT network" + tensorrt_says());
  parsed.parser.reset(nvonnxparser::createParser(*parsed.network, logger()));
  if (!parsed.parser) fail(ErrorCode::TensorRT, "cannot create the TensorRT ONNX parser" + tensorrt_says());

  std::ifstream in(onnx_path, std::ios::binary);
  if (!in) fail(ErrorCode::Io, onnx_path + ": cannot open the ONNX model");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The path lets the parser find external weight files next to the model.
  const std::string absolute = std::filesystem::absolute(onnx_path).string();
  if (!parsed.parser->parse(bytes.data(), bytes.size(), absolute.c_str())) {
    std::string errors;
    for (int32_t i = 0; i < parsed.parser->getNbErrors(); ++i) {
      const auto* error = parsed.parser->getError(i);
      errors += std::string("\n  ") + error->desc() + " (node " + std::to_string(error->node()) + ")";
    }
    fail(ErrorCode::TensorRT, onnx_path + ": the TensorRT ONNX parser rejected the model:" + errors);
  }
  return parsed;
}

// Adds `profiles` (or the default one, `concurrency` times, when none is given) to `config`;
// returns the profiles added.
std::vector<OptimizationProfile> add_profiles(nvinfer1::IBuilder& builder, nvinfer1::INetworkDefinition& network,
                                              nvinfer1::IBuilderConfig& config, std::vector<OptimizationProfile> profiles,
                                              int concurrency, const std::string& onnx_path) {
  std::vector<std::string> dynamic_inputs;
  std::string input_names;
  const nvinfer1::ITensor* image = nullptr;
  for (int32_t i = 0; i < network.getNbInputs(); ++i) {
    const nvinfer1::ITensor* input = network.getInput(i);
    input_names += std::string(i ? ", " : "") + input->getName();
    const auto dims = to_shape(input->getDimensions());
    if (std::any_of(dims.begin(), dims.end(), [](int64_t d) { return d < 0; })) {
      dynamic_inputs.push_back(std::string(input->getName()) + " (" + shape_string(dims) + ")");
      if (std::string(input->getName()) == "image" && dims.size() == 4) image = input;
    }
  }
  if (profiles.empty()) {
    if (dynamic_inputs.empty()) return profiles;
    if (dynamic_inputs.size() != 1 || !image) {
      std::string names;
      for (const auto& n : dynamic_inputs) names += (names.empty() ? "" : ", ") + n;
      fail(ErrorCode::InvalidArgument, onnx_path + ": inputs with dynamic dims need an optimization profile "
                                       "(min/opt/max shapes, e.g. image:1x1x256x256/1x1x512x512/4x1x1024x1024): " + names);
    }
    const TensorRange range = default_image_range(to_shape(image->getDimensions()));
    log(LogLevel::Info, onnx_path + ": no optimization profile given, using image " + shape_string(range.min) + " .. " +
                            shape_string(range.max) + " (opt " + shape_string(range.opt) + ")");
    profiles.assign(static_cast<size_t>(std::max(1, concurrency)), OptimizationProfile{range});
  }
  for (size_t p = 0; p < profiles.size(); ++p) {
    nvinfer1::IOptimizationProfile* profile = builder.createOptimizationProfile();
    for (const auto& range : profiles[p]) {
      const nvinfer1::ITensor* input = nullptr;
      for (int32_t i = 0; i < network.getNbInputs(); ++i) {
        if (range.input == network.getInput(i)->getName()) input = network.getInput(i);
      }
      if (!input) {
        fail(ErrorCode::InvalidArgument, onnx_path + ": profile names input '" + range.input +
                                             "', the model's inputs are: " + input_names);
      }
      using nvinfer1::OptProfileSelector;
      if (!profile->setDimensions(range.input.c_str(), OptProfileSelector::kMIN, to_dims(range.min, range.input)) ||
          !profile->setDimensions(range.input.c_str(), OptProfileSelector::kOPT, to_dims(range.opt, range.input)) ||
          !profile->setDimensions(range.input.c_str(), OptProfileSelector::kMAX, to_dims(range.max, range.input))) {
        fail(ErrorCode::InvalidArgument, onnx_path + ": profile " + std::to_string(p) + " for '" + range.input +
                                             "' is invalid (need min <= opt <= max, rank " +
                                             std::to_string(input->getDimensions().nbDims) + ", static dims kept)" +
                                             tensorrt_says());
      }
    }
    if (config.addOptimizationProfile(profile) < 0) {
      fail(ErrorCode::InvalidArgument, onnx_path + ": optimization profile " + std::to_string(p) +
                                           " does not cover every dynamic input" + tensorrt_says());
    }
  }
  return profiles;
}

std::vector<char> read_file_if_present(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Loads the timing cache (tactic timings: rebuilds take seconds instead of minutes). A cache from
// another GPU or TensorRT is set aside with a warning, never trusted.
TrtPtr<nvinfer1::ITimingCache> attach_timing_cache(nvinfer1::IBuilderConfig& config, const std::string& path) {
  if (path.empty()) return nullptr;
  std::vector<char> blob = read_file_if_present(path);
  TrtPtr<nvinfer1::ITimingCache> cache(config.createTimingCache(blob.data(), blob.size()));
  if (!cache && !blob.empty()) {
    log(LogLevel::Warning, path + ": timing cache unreadable, starting a new one" + tensorrt_says());
    cache.reset(config.createTimingCache(nullptr, 0));
  }
  if (!cache) fail(ErrorCode::TensorRT, "cannot create a timing cache" + tensorrt_says());
  if (!config.setTimingCache(*cache, /*ignoreMismatch=*/false)) {
    log(LogLevel::Warning, path + ": timing cache was made by another GPU or TensorRT version, starting a new one");
    cache.reset(config.createTimingCache(nullptr, 0));
    if (!cache || !config.setTimingCache(*cache, false)) fail(ErrorCode::TensorRT, "cannot set a timing cache" + tensorrt_says());
  }
  return cache;
}

void save_timing_cache(const nvinfer1::IBuilderConfig& config, const std::string& path) {
  if (path.empty()) return;
  const nvinfer1::ITimingCache* cache = config.getTimingCache();
  if (!cache) return;
  TrtPtr<nvinfer1::IHostMemory> blob(cache->serialize());
  if (!blob) return;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  write_file_atomic(path, blob->data(), blob->size());
}

}  // namespace

std::vector<OptimizationProfile> expanded_profiles(const BuildOptions& options) {
  if (options.concurrency < 1) {
    fail(ErrorCode::InvalidArgument, "concurrency must be >= 1, got " + std::to_string(options.concurrency));
  }
  std::vector<OptimizationProfile> out;
  for (int copy = 0; copy < options.concurrency; ++copy) out.insert(out.end(), options.profiles.begin(), options.profiles.end());
  return out;
}

BuiltPlan build_plan(const std::string& onnx_path, const BuildOptions& options,
                     const std::vector<OptimizationProfile>& profiles) {
  const std::string& precision = options.precision;
  if (precision != "fp32" && precision != "fp16" && precision != "int8") {
    fail(ErrorCode::InvalidArgument, "precision '" + precision + "' is not one of fp32, fp16, int8");
  }
  const TensorRTOperation operation;
  TrtPtr<nvinfer1::IBuilder> builder(nvinfer1::createInferBuilder(logger()));
  if (!builder) fail(ErrorCode::TensorRT, "cannot create a TensorRT builder" + tensorrt_says());

  BuiltPlan plan;
#if NV_TENSORRT_MAJOR >= 11
  ParsedNetwork parsed = parse(*builder, onnx_path, true);
  const NetworkTypes types = inspect(*parsed.network);
  plan.strongly_typed = true;
  if (precision == "fp16" && !types.has_half) {
    fail(ErrorCode::InvalidArgument, onnx_path + ": is a fp32 model; TensorRT " + std::to_string(NV_TENSORRT_MAJOR) +
                                         " takes FP16 from the model's own types: export an FP16 ONNX "
                                         "(`ifrt export onnx --fp16`) and build from that");
  }
#else
  ParsedNetwork parsed = parse(*builder, onnx_path, false);
  const NetworkTypes types = inspect(*parsed.network);
  if (types.has_half) {
    // An FP16 ONNX already says where half precision is safe: build it as typed, like TensorRT 11.
    parsed.parser.reset();  // the parser refers to its network: release it first
    parsed.network.reset();
    parsed = parse(*builder, onnx_path, true);
    plan.strongly_typed = true;
  }
#endif
  if (precision == "int8" && !types.has_qdq) {
    fail(ErrorCode::InvalidArgument, onnx_path + ": int8 needs a Q/DQ-quantized ONNX (QuantizeLinear/DequantizeLinear "
                                     "nodes calibrated offline); TensorRT 11 has no INT8 calibrator");
  }
  if (precision == "fp32" && types.has_half) {
    fail(ErrorCode::InvalidArgument, onnx_path + ": is an FP16 model; ask for precision fp16, or build from the fp32 ONNX");
  }
  if (precision != "int8" && types.has_qdq) {
    // Q/DQ nodes place INT8 whatever is asked (TensorRT 11 builds every network as typed): the engine would
    // be INT8 under another precision's name, in its sidecar and in the cache key.
    fail(ErrorCode::InvalidArgument, onnx_path + ": is an INT8 (Q/DQ) model; ask for precision int8, or build from "
                                     "the fp32 or fp16 ONNX");
  }

  TrtPtr<nvinfer1::IBuilderConfig> config(builder->createBuilderConfig());
  if (!config) fail(ErrorCode::TensorRT, "cannot create a TensorRT builder config" + tensorrt_says());
#if NV_TENSORRT_MAJOR < 11
  if (!plan.strongly_typed) {
    if (precision == "fp16" || precision == "int8") config->setFlag(BuilderFlag::kFP16);
    if (precision == "int8") config->setFlag(BuilderFlag::kINT8);  // Q/DQ nodes place INT8; no calibrator
  }
#endif
  if (options.workspace_bytes > 0) {
    config->setMemoryPoolLimit(nvinfer1::MemoryPoolType::kWORKSPACE, static_cast<size_t>(options.workspace_bytes));
  }
  if (options.dla_core >= 0) {
    const int32_t cores = builder->getNbDLACores();
    if (options.dla_core >= cores) {
      fail(ErrorCode::InvalidArgument, "DLA core " + std::to_string(options.dla_core) + " asked for, this device has " +
                                           std::to_string(cores) + " (DLA exists on Jetson AGX Orin / Xavier)");
    }
    if (precision == "fp32") fail(ErrorCode::InvalidArgument, "DLA runs fp16 or int8 only; ask for precision fp16");
    config->setDefaultDeviceType(nvinfer1::DeviceType::kDLA);
    config->setDLACore(options.dla_core);
    config->setFlag(BuilderFlag::kGPU_FALLBACK);  // layers DLA cannot run go to the GPU
  }
  plan.profiles = add_profiles(*builder, *parsed.network, *config, profiles, options.concurrency, onnx_path);
  const TrtPtr<nvinfer1::ITimingCache> timing_cache = attach_timing_cache(*config, options.timing_cache_path);

  TrtPtr<nvinfer1::IHostMemory> serialized(builder->buildSerializedNetwork(*parsed.network, *config));
  if (!serialized || serialized->size() == 0) {
    fail(ErrorCode::TensorRT, onnx_path + ": TensorRT could not build an engine" + tensorrt_says());
  }
  save_timing_cache(*config, options.timing_cache_path);
  const auto* data = static_cast<const char*>(serialized->data());
  plan.bytes.assign(data, data + serialized->size());
  return plan;
}

}  // namespace ifrt::trt
