// What makes a TensorRT engine valid, written beside it as a JSON sidecar (`model.engine.json`),
// and the checks that refuse a stale engine. TensorRT-free, so the rules are tested on any machine;
// runtime/engine.py implements the same format, key and checks for Python.
//
// An engine is valid only for: the ONNX it was built from (sha256, and that of its external-data
// files), the TensorRT version that built it, the GPU model (name + compute capability; the cache
// also keys on the GPU's UUID), and the build options (precision, optimization profiles, workspace,
// DLA core; without profiles, the default profile ifrt builds with).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"

namespace ifrt {

// Shapes one dynamic input may take under one optimization profile.
struct TensorRange {
  std::string input;
  std::vector<int64_t> min, opt, max;
};
using OptimizationProfile = std::vector<TensorRange>;  // one range per dynamic input

struct GpuIdentity {
  std::string name;                // "NVIDIA A100-SXM4-80GB", "Orin"
  std::string compute_capability;  // "8.7"
  std::string uuid;                // "GPU-..."
};

struct EngineBuildSpec {
  std::string onnx_sha256;
  std::string external_data_sha256;  // onnx_external_data_sha256 (core/onnx_external_data.h); "" when none
  std::string tensorrt_version;  // "10.3.0" (major.minor.patch): engines load only in the TensorRT that built them
  GpuIdentity gpu;
  std::string precision = "fp16";  // fp32 | fp16 | int8
  std::vector<OptimizationProfile> profiles;  // as built: each requested profile `concurrency` times
  int concurrency = 1;  // contexts that may run one shape range at once (matters when no profile is given)
  int64_t workspace_bytes = 0;  // 0: TensorRT's default (the device's memory)
  int dla_core = -1;            // -1: GPU only
};

struct EngineSidecar {
  static constexpr const char* kFormat = "ifrt.engine/1";
  EngineBuildSpec spec;
  bool strongly_typed = false;
  std::string ifrt_version;
  std::string engine_sha256;
  std::string cache_key;
  Json metadata;  // the model's metadata (class names, normalization, ...) when the writer had it
};

// The profile used when none is given and the model's input `image` ([N,C,H,W], the ifrt model
// contract) has dynamic dims (-1 in `dims`): N 1/1/4, H and W 32/512/1024 (min/opt/max), static
// dims kept. Larger frames are tiled by the runtime. Same as default_image_profile in Python.
constexpr int64_t kDefaultMaxBatch = 4, kDefaultMinSide = 32, kDefaultOptSide = 512, kDefaultMaxSide = 1024;
TensorRange default_image_range(const std::vector<int64_t>& dims);

// "image:1x1x256x256/1x1x512x512/4x1x1024x1024" (inputs joined by ",", profiles by ";").
std::string profiles_text(const std::vector<OptimizationProfile>& profiles);

// The default profile's rule, as the cache key records it for a build without profiles: the range
// default_image_range gives an input whose every dim is dynamic, so that a change to the defaults
// changes the key ("image:1x32x32x32/1x512x512x512/4x1024x1024x1024").
std::string default_profile_text();

// The inverse of profiles_text, for command lines and the C ABI; throws ifrt::Error(InvalidArgument)
// quoting the part it cannot read. "" gives no profiles.
std::vector<OptimizationProfile> parse_profiles_text(const std::string& text);

// The text the cache key hashes, one `name=value` line per field that makes an engine valid, and
// `default_profile=` with default_profile_text() when `spec.profiles` is empty (else empty).
std::string engine_cache_key_text(const EngineBuildSpec& spec);
// sha256 of engine_cache_key_text: the engine cache stores `<stem>-<key[:16]>.engine`.
std::string engine_cache_key(const EngineBuildSpec& spec);

Json sidecar_to_json(const EngineSidecar& sidecar);
// Profiles as the sidecar stores them: [{"image": {"min": [...], "opt": [...], "max": [...]}}, ...].
Json profiles_to_json(const std::vector<OptimizationProfile>& profiles);
std::vector<OptimizationProfile> profiles_from_json(const Json& json);
// Throws ifrt::Error(InvalidArgument) naming the missing or malformed field.
EngineSidecar sidecar_from_json(const Json& json);

std::string sidecar_path_for(const std::string& engine_path);  // engine path + ".json"
// Reads and parses; errors name the file.
EngineSidecar read_sidecar(const std::string& path);

// What the running process has and wants; empty/absent fields are not checked.
struct SidecarExpectation {
  std::string tensorrt_version;      // the loaded TensorRT library
  GpuIdentity gpu;                   // the device the engine will run on
  bool allow_same_model_gpu = false; // accept another GPU of the same name and compute capability
  std::string onnx_sha256;           // the ONNX the caller wants an engine for
  std::optional<std::string> external_data_sha256;  // and its external data ("" when it has none)
  std::string engine_sha256;         // the engine file's actual hash
  std::string precision;
  std::optional<std::vector<OptimizationProfile>> profiles;
  std::optional<int> concurrency;
  std::optional<int64_t> workspace_bytes;
  std::optional<int> dla_core;
};

// Every reason the engine must not be used here, each a full sentence ("built with TensorRT
// 10.3.0, this is TensorRT 10.7.0"); empty when it may be loaded.
std::vector<std::string> sidecar_mismatches(const EngineSidecar& sidecar, const SidecarExpectation& expected);

// Write through a temporary file in the same folder, flushed to the disk (fsync), renamed over
// `path` (replacing it, on Windows too), then the folder synced: readers never see a half-written
// engine or sidecar, and after a power cut `path` holds either the old file or the whole new one.
// Throws ifrt::Error(Io) naming the file and the system's reason; no temporary file is left.
void write_file_atomic(const std::string& path, const void* data, size_t size);

// An exclusive lock on the file `path` (created when missing) for the object's life, so that the
// processes and threads wanting one cached engine take turns: the first builds it, the others wait
// and then find it, instead of each building it (minutes, and gigabytes on a Jetson) and racing to
// write the engine and sidecar. `on_wait` is called once before blocking when another holder has
// it. Where the file cannot be created or locked (a read-only cache, Windows), nothing is locked
// and held() is false: callers go on unlocked.
class FileLock {
 public:
  explicit FileLock(const std::string& path, const std::function<void()>& on_wait = {});
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace ifrt
