// Engine::from_onnx: the engine cache. An engine is valid for one ONNX (sha256, with its external-
// data files), one set of build options (the default profile when none is given), one TensorRT
// version and one GPU (UUID), so the cache file name carries the sha256 of exactly those
// (core/engine_sidecar.h); the sidecar is checked again on every load. A lock file beside the engine
// makes concurrent users of one key build it once.
#include <NvInfer.h>

#include <filesystem>
#include <system_error>

#include "core/build_info.h"
#include "core/log.h"
#include "core/onnx_external_data.h"
#include "core/sha256.h"
#include "trt/builder.h"
#include "trt/device.h"
#include "trt/engine.h"
#include "trt/engine_impl.h"

namespace ifrt::trt {

namespace fs = std::filesystem;

std::unique_ptr<Engine> Engine::from_onnx(const std::string& onnx_path, const std::string& cache_dir,
                                          const BuildOptions& build, const EngineOptions& options) {
  if (!fs::is_regular_file(onnx_path)) fail(ErrorCode::Io, onnx_path + ": ONNX model not found");
  if (cache_dir.empty()) fail(ErrorCode::InvalidArgument, "an engine cache folder is needed to build from ONNX");

  SidecarExpectation want = expectation_here(options);
  EngineSidecar sidecar;
  sidecar.ifrt_version = build_info().version;
  EngineBuildSpec& spec = sidecar.spec;
  spec.onnx_sha256 = sha256_file_hex(onnx_path);
  spec.external_data_sha256 = onnx_external_data_sha256(onnx_path);
  spec.tensorrt_version = want.tensorrt_version;
  spec.gpu = want.gpu;
  spec.precision = build.precision;
  spec.profiles = expanded_profiles(build);
  spec.concurrency = build.concurrency;
  spec.workspace_bytes = build.workspace_bytes;
  spec.dla_core = build.dla_core;
  sidecar.cache_key = engine_cache_key(spec);

  const std::string stem = fs::path(onnx_path).stem().string();
  const std::string engine_path = (fs::path(cache_dir) / (stem + "-" + sidecar.cache_key.substr(0, 16) + ".engine")).string();
  const std::string sidecar_path = sidecar_path_for(engine_path);

  // Whoever wants this engine while another process or thread builds it waits, then loads it.
  std::error_code no_folder;  // a folder that cannot be made fails below only if a build must write there
  fs::create_directories(cache_dir, no_folder);
  const FileLock building(engine_path + ".lock", [&] {
    log(LogLevel::Warning, engine_path + ": another process is building this engine; waiting for it");
  });

  if (fs::exists(engine_path)) {
    std::vector<std::string> reasons;
    std::vector<char> plan;
    EngineSidecar cached;
    try {
      cached = read_sidecar(sidecar_path);
      plan = read_binary(engine_path);
      want.onnx_sha256 = spec.onnx_sha256;
      want.external_data_sha256 = spec.external_data_sha256;
      want.engine_sha256 = sha256_hex(plan.data(), plan.size());
      want.precision = spec.precision;
      // No profiles asked for means the builder's default for this ONNX, which the key pins (the ONNX
      // fixes the input's dims, default_profile= the rule).
      if (!spec.profiles.empty()) want.profiles = spec.profiles;
      want.concurrency = spec.concurrency;
      want.workspace_bytes = spec.workspace_bytes;
      want.dla_core = spec.dla_core;
      want.allow_same_model_gpu = false;  // the cache is per GPU
      reasons = sidecar_mismatches(cached, want);
      if (reasons.empty() && cached.cache_key != sidecar.cache_key) {
        // The name carries 16 digits of the key; the sidecar all of them, and the parts no field shows.
        reasons.push_back("its sidecar records cache key " + cached.cache_key.substr(0, 12) + "..., this request's is " +
                          sidecar.cache_key.substr(0, 12) + "... (another default profile or an older ifrt)");
      }
    } catch (const Error& e) {
      reasons.push_back(e.what());
    }
    if (reasons.empty()) {
      log(LogLevel::Info, engine_path + ": cached engine matches, loading");
      try {
        return std::unique_ptr<Engine>(new Engine(Impl::open(engine_path, plan, cached, options)));
      } catch (const Error& e) {
        if (e.code() != ErrorCode::TensorRT) throw;  // out of memory, bad device: rebuilding would not help
        reasons.push_back(e.what());                   // e.g. a TensorRT build the sidecar cannot tell apart
      }
    }
    std::string message = engine_path + ": rebuilding the cached engine: ";
    for (size_t i = 0; i < reasons.size(); ++i) message += (i ? "; " : "") + reasons[i];
    log(LogLevel::Warning, message);
  }

  log(LogLevel::Warning, onnx_path + ": building a TensorRT " + spec.precision + " engine for " + spec.gpu.name +
                             " (first use with these options on this GPU; this takes minutes, later runs load " +
                             engine_path + ")");
  check_cuda(cudaSetDevice(options.device), onnx_path + ": selecting CUDA device " + std::to_string(options.device));
  const BuiltPlan plan = build_plan(onnx_path, build, spec.profiles);
  sidecar.strongly_typed = plan.strongly_typed;
  spec.profiles = plan.profiles;  // the sidecar records what was built; cache_key stays that of the request
  sidecar.engine_sha256 = sha256_hex(plan.bytes.data(), plan.bytes.size());

  fs::create_directories(cache_dir);
  // Engine first, sidecar last: a sidecar only ever describes a complete engine, and a reader that
  // races a writer sees an engine_sha256 mismatch and rebuilds rather than loading a torn pair.
  write_file_atomic(engine_path, plan.bytes.data(), plan.bytes.size());
  const std::string text = sidecar_to_json(sidecar).dump();
  write_file_atomic(sidecar_path, text.data(), text.size());
  return std::unique_ptr<Engine>(new Engine(Impl::open(engine_path, plan.bytes, sidecar, options)));
}

}  // namespace ifrt::trt
