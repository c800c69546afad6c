// Engine sidecar: the cache key (same vector as tests/test_trt_sidecar.py), JSON round trip, that
// every mismatch is refused with a sentence that says why, and the durable atomic write.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "check.h"
#include "core/common.h"
#include "core/engine_sidecar.h"

#if !defined(_WIN32)
#include <signal.h>
#include <sys/resource.h>
#endif

namespace {

ifrt::EngineSidecar orin_fp16() {
  ifrt::EngineSidecar s;
  s.ifrt_version = "0.1.0";
  for (int i = 0; i < 32; ++i) s.spec.onnx_sha256 += "ab";
  s.spec.tensorrt_version = "10.3.0";
  s.spec.gpu = {"Orin", "8.7", "GPU-12345678-90ab-cdef-1234-567890abcdef"};
  s.spec.precision = "fp16";
  s.spec.profiles = {{{"image", {1, 1, 256, 256}, {1, 1, 512, 512}, {4, 1, 1024, 1024}}}};
  s.spec.workspace_bytes = 1LL << 30;
  s.spec.dla_core = -1;
  s.engine_sha256 = std::string(64, 'e');
  s.cache_key = ifrt::engine_cache_key(s.spec);
  return s;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> files_in(const std::filesystem::path& folder) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(folder)) names.push_back(e.path().filename().string());
  return names;
}

bool contains(const std::vector<std::string>& reasons, const std::string& fragment) {
  for (const auto& r : reasons) {
    if (r.find(fragment) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

int main() {
  const auto s = orin_fp16();
  CHECK(ifrt::profiles_text(s.spec.profiles) == "image:1x1x256x256/1x1x512x512/4x1x1024x1024");
  CHECK(ifrt::engine_cache_key_text(s.spec) ==
        "ifrt-engine-cache/2\n"
        "onnx_sha256=abababababababababababababababababababababababababababababababab\n"
        "external_data_sha256=\n"
        "tensorrt_version=10.3.0\n"
        "gpu_uuid=GPU-12345678-90ab-cdef-1234-567890abcdef\n"
        "precision=fp16\n"
        "profiles=image:1x1x256x256/1x1x512x512/4x1x1024x1024\n"
        "default_profile=\n"
        "concurrency=1\n"
        "workspace_bytes=1073741824\n"
        "dla_core=-1\n");
  CHECK(s.cache_key == "d420e2e63cfcf5e301f6979bd97cce2fd31c7ce42229fc66f74389126f3b0c32");

  // The text form reads back, and a bad one is refused with the example of a good one.
  CHECK(ifrt::profiles_text(ifrt::parse_profiles_text("image:1x1x256x256/1x1x512x512/4x1x1024x1024;image:1x1x32x32/1x1x64x64/1x1x64x64")) ==
        "image:1x1x256x256/1x1x512x512/4x1x1024x1024;image:1x1x32x32/1x1x64x64/1x1x64x64");
  CHECK(ifrt::parse_profiles_text("").empty());
  std::string bad;
  try {
    ifrt::parse_profiles_text("image:1x1x512/1x1x256/1x1x1024");
  } catch (const ifrt::Error& e) {
    bad = e.what();
  }
  CHECK(bad == "profile 'image:1x1x512/1x1x256/1x1x1024': dim 2 must satisfy min <= opt <= max");
  bad.clear();
  try {
    ifrt::parse_profiles_text("image:1x1x-1/1/1");
  } catch (const ifrt::Error& e) {
    bad = e.what();
  }
  CHECK(bad.find("'1x1x-1' is not a shape like 1x1x512x512") != std::string::npos);

  // Default profile for the contract's dynamic image input: same numbers as Python's.
  CHECK(ifrt::profiles_text({{ifrt::default_image_range({-1, 1, -1, -1})}}) == "image:1x1x32x32/1x1x512x512/4x1x1024x1024");
  CHECK(ifrt::profiles_text({{ifrt::default_image_range({1, 1, 256, -1})}}) == "image:1x1x256x32/1x1x256x512/1x1x256x1024");

  // Each thing that makes an engine valid changes the key.
  auto other = s.spec;
  other.gpu.uuid = "GPU-00000000-0000-0000-0000-000000000000";
  CHECK(ifrt::engine_cache_key(other) != s.cache_key);
  other = s.spec;
  other.tensorrt_version = "10.3.1";
  CHECK(ifrt::engine_cache_key(other) != s.cache_key);
  other = s.spec;
  other.profiles[0][0].max = {8, 1, 1024, 1024};
  CHECK(ifrt::engine_cache_key(other) != s.cache_key);
  other = s.spec;
  other.concurrency = 2;
  CHECK(ifrt::engine_cache_key(other) != s.cache_key);
  other = s.spec;
  other.external_data_sha256 = std::string(64, 'f');
  CHECK(ifrt::engine_cache_key(other) != s.cache_key);

  // Without profiles the key records the default profile's rule, so new defaults rebuild the engine.
  CHECK(ifrt::default_profile_text() == "image:1x32x32x32/1x512x512x512/4x1024x1024x1024");
  other = s.spec;
  other.profiles.clear();
  CHECK(ifrt::engine_cache_key_text(other).find("\nprofiles=\ndefault_profile=image:1x32x32x32/1x512x512x512/"
                                                "4x1024x1024x1024\n") != std::string::npos);

  // JSON round trip keeps every field.
  const auto back = ifrt::sidecar_from_json(ifrt::Json::parse(ifrt::sidecar_to_json(s).dump()));
  CHECK(ifrt::engine_cache_key_text(back.spec) == ifrt::engine_cache_key_text(s.spec));
  CHECK(back.engine_sha256 == s.engine_sha256 && back.cache_key == s.cache_key && back.ifrt_version == "0.1.0");
  CHECK(back.spec.gpu.name == "Orin" && back.spec.gpu.compute_capability == "8.7" && back.spec.concurrency == 1);
  auto with_data = s;
  with_data.spec.external_data_sha256 = std::string(64, 'f');
  CHECK(ifrt::sidecar_from_json(ifrt::Json::parse(ifrt::sidecar_to_json(with_data).dump())).spec.external_data_sha256 ==
        std::string(64, 'f'));

  // The same machine and request: no mismatch.
  ifrt::SidecarExpectation here;
  here.tensorrt_version = "10.3.0";
  here.gpu = s.spec.gpu;
  here.onnx_sha256 = s.spec.onnx_sha256;
  here.engine_sha256 = s.engine_sha256;
  here.precision = "fp16";
  here.profiles = s.spec.profiles;
  here.dla_core = -1;
  CHECK(ifrt::sidecar_mismatches(s, here).empty());

  auto want = here;
  want.tensorrt_version = "11.1.0";
  auto why = ifrt::sidecar_mismatches(s, want);
  CHECK(why.size() == 1);
  CHECK(contains(why, "built with TensorRT 10.3.0, this is TensorRT 11.1.0"));

  want = here;
  want.gpu = {"NVIDIA GeForce RTX 4090", "8.9", "GPU-ffffffff-0000-0000-0000-000000000000"};
  CHECK(contains(ifrt::sidecar_mismatches(s, want), "built for compute capability 8.7 (Orin), this GPU is 8.9"));

  want = here;
  want.gpu.uuid = "GPU-ffffffff-0000-0000-0000-000000000000";
  CHECK(contains(ifrt::sidecar_mismatches(s, want), "same model, Orin"));
  want.allow_same_model_gpu = true;
  CHECK(ifrt::sidecar_mismatches(s, want).empty());

  want = here;
  want.onnx_sha256 = std::string(64, 'c');
  CHECK(contains(ifrt::sidecar_mismatches(s, want), "built from ONNX sha256 abababababab..., the ONNX given is cccccccccccc..."));

  want = here;
  want.external_data_sha256 = std::string(64, 'f');
  CHECK(ifrt::sidecar_mismatches(s, want) ==
        std::vector<std::string>{"built with no external data, the ONNX given has external data sha256 ffffffffffff... "
                                 "(the files its tensors are kept in changed)"});
  want.external_data_sha256 = "";
  CHECK(ifrt::sidecar_mismatches(s, want).empty());

  want = here;
  want.engine_sha256 = std::string(64, 'd');
  CHECK(contains(ifrt::sidecar_mismatches(s, want), "file changed after it was built"));

  want = here;
  want.precision = "fp32";
  want.dla_core = 0;
  want.concurrency = 2;
  why = ifrt::sidecar_mismatches(s, want);
  CHECK(why.size() == 3);
  CHECK(contains(why, "built for 1 concurrent context(s) per profile, asked for 2"));
  CHECK(contains(why, "built for precision fp16, fp32 was asked for"));
  CHECK(contains(why, "built for DLA core -1, asked for 0"));

  // Reading: a missing field and a foreign format are named.
  auto j = ifrt::sidecar_to_json(s);
  std::string message;
  try {
    ifrt::Json broken = ifrt::Json::parse(j.dump());
    broken["format"] = "other/2";
    ifrt::sidecar_from_json(broken);
  } catch (const ifrt::Error& e) {
    message = e.what();
  }
  CHECK(message.find("format \"other/2\" is not ifrt.engine/1") != std::string::npos);

  // Atomic write, then read back from disk; a second write replaces the first and leaves no
  // temporary file behind.
  namespace fs = std::filesystem;
  const fs::path folder = fs::absolute("test_engine_sidecar.d");
  fs::remove_all(folder);
  fs::create_directories(folder);
  const std::string path = (folder / "model.engine.json").string();
  const std::string body = j.dump();
  ifrt::write_file_atomic(path, body.data(), body.size());
  CHECK(ifrt::read_sidecar(path).cache_key == s.cache_key);
  ifrt::write_file_atomic(path, "{}", 2);
  CHECK(read_text(path) == "{}");
  CHECK(files_in(folder) == std::vector<std::string>{"model.engine.json"});

  // A folder that does not exist: the error names the file, and nothing is made.
  message.clear();
  try {
    ifrt::write_file_atomic((folder / "missing" / "model.engine").string(), "x", 1);
  } catch (const ifrt::Error& e) {
    message = e.what();
  }
  CHECK(message.find((folder / "missing" / "model.engine").string() + ".tmp.") == 0);
  CHECK(message.find("cannot create (No such file or directory; is the folder writable?)") != std::string::npos);

#if !defined(_WIN32)
  // A write the disk refuses part-way (here the file-size limit, as a full disk would): the old
  // file stays whole, the error names the file and the reason, and the temporary is removed.
  struct rlimit old_limit {};
  getrlimit(RLIMIT_FSIZE, &old_limit);
  struct rlimit small = old_limit;
  small.rlim_cur = 1000;
  signal(SIGXFSZ, SIG_IGN);  // refused writes fail with EFBIG instead of ending the process
  CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
  const std::string engine(5000, 'e');
  message.clear();
  try {
    ifrt::write_file_atomic(path, engine.data(), engine.size());
  } catch (const ifrt::Error& e) {
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old_limit);
  CHECK(message == path + ": write failed (File too large; is the disk full?)");
  CHECK(read_text(path) == "{}");
  CHECK(files_in(folder) == std::vector<std::string>{"model.engine.json"});
#endif
  fs::remove_all(folder);

  message.clear();
  try {
    ifrt::read_sidecar("missing/model.engine.json");
  } catch (const ifrt::Error& e) {
    message = e.what();
  }
  CHECK(message.find("missing/model.engine.json: engine sidecar not found") == 0);

#if !defined(_WIN32)
  // Two builders of one cached engine: the second is told it waits, and holds the lock only once
  // the first lets go.
  const std::string lock_path = "test_engine_sidecar.engine.lock";
  auto first = std::make_unique<ifrt::FileLock>(lock_path);
  CHECK(first->held());
  std::atomic<bool> waited{false}, second_held{false};
  std::thread second_builder([&] {
    const ifrt::FileLock second(lock_path, [&] { waited = true; });
    second_held = second.held();
  });
  for (int ms = 0; ms < 5000 && !waited; ++ms) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(waited);
  CHECK(!second_held);
  first.reset();
  second_builder.join();
  CHECK(second_held);
  std::remove(lock_path.c_str());

  // A cache folder where the lock file cannot be made: nothing locked, no error.
  CHECK(!ifrt::FileLock("missing/model.engine.lock").held());
#endif
  return TEST_MAIN_RESULT();
}
