#include "core/engine_sidecar.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/common.h"
#include "core/sha256.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <fcntl.h>
#include <io.h>
#include <process.h>
#include <sys/stat.h>
#include <windows.h>
#define ifrt_getpid _getpid
#else
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#define ifrt_getpid getpid
#endif

namespace ifrt {

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += 'x';
    out += std::to_string(shape[i]);
  }
  return out;
}

Json shape_json(const std::vector<int64_t>& shape) {
  Json arr = Json::array();
  for (const int64_t d : shape) arr.push_back(Json(d));
  return arr;
}

const Json& member(const Json& obj, const std::string& key, const std::string& where) {
  const Json* value = obj.find(key);
  if (!value) fail(ErrorCode::InvalidArgument, "engine sidecar: missing \"" + key + "\"" + where);
  return *value;
}

std::string string_member(const Json& obj, const std::string& key) {
  const Json& value = member(obj, key, "");
  if (!value.is_string()) fail(ErrorCode::InvalidArgument, "engine sidecar: \"" + key + "\" must be a string");
  return value.as_string();
}

std::vector<int64_t> shape_from_json(const Json& value, const std::string& where) {
  if (!value.is_array()) fail(ErrorCode::InvalidArgument, "engine sidecar: " + where + " must be a list of dims");
  std::vector<int64_t> shape;
  for (const auto& d : value.items()) shape.push_back(d.as_int());
  return shape;
}

std::string short_hash(const std::string& hex) { return hex.substr(0, 12); }
std::string external_data_text(const std::string& hex) {
  return hex.empty() ? "no external data" : "external data sha256 " + short_hash(hex) + "...";
}

}  // namespace

TensorRange default_image_range(const std::vector<int64_t>& dims) {
  TensorRange range{"image", dims, dims, dims};
  for (size_t d = 0; d < dims.size(); ++d) {
    if (dims[d] >= 0) continue;
    const bool batch = d == 0;
    range.min[d] = batch ? 1 : kDefaultMinSide;
    range.opt[d] = batch ? 1 : kDefaultOptSide;
    range.max[d] = batch ? kDefaultMaxBatch : kDefaultMaxSide;
  }
  return range;
}

std::string profiles_text(const std::vector<OptimizationProfile>& profiles) {
  std::string out;
  for (size_t p = 0; p < profiles.size(); ++p) {
    if (p) out += ';';
    for (size_t i = 0; i < profiles[p].size(); ++i) {
      const auto& r = profiles[p][i];
      if (i) out += ',';
      out += r.input + ':' + shape_text(r.min) + '/' + shape_text(r.opt) + '/' + shape_text(r.max);
    }
  }
  return out;
}

namespace {

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return parts;
    start = end + 1;
  }
}

std::vector<int64_t> parse_shape(const std::string& text, const std::string& whole) {
  std::vector<int64_t> shape;
  for (const auto& part : split(text, 'x')) {
    if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos || part.size() > 12) {
      fail(ErrorCode::InvalidArgument, "profile '" + whole + "': '" + text +
                                           "' is not a shape like 1x1x512x512 (positive whole numbers joined by x)");
    }
    shape.push_back(std::stoll(part));
  }
  return shape;
}

}  // namespace

std::vector<OptimizationProfile> parse_profiles_text(const std::string& text) {
  std::vector<OptimizationProfile> profiles;
  if (text.empty()) return profiles;
  for (const auto& profile_text : split(text, ';')) {
    OptimizationProfile profile;
    for (const auto& range_text : split(profile_text, ',')) {
      const size_t colon = range_text.rfind(':');
      const auto shapes = colon == std::string::npos ? std::vector<std::string>{} : split(range_text.substr(colon + 1), '/');
      if (colon == std::string::npos || colon == 0 || shapes.size() != 3) {
        fail(ErrorCode::InvalidArgument, "profile '" + range_text + "' is not INPUT:MIN/OPT/MAX "
                                         "(for example image:1x1x256x256/1x1x512x512/4x1x1024x1024)");
      }
      TensorRange range;
      range.input = range_text.substr(0, colon);
      range.min = parse_shape(shapes[0], range_text);
      range.opt = parse_shape(shapes[1], range_text);
      range.max = parse_shape(shapes[2], range_text);
      if (range.min.size() != range.opt.size() || range.opt.size() != range.max.size()) {
        fail(ErrorCode::InvalidArgument, "profile '" + range_text + "': min, opt and max must have the same rank");
      }
      for (size_t d = 0; d < range.min.size(); ++d) {
        if (range.min[d] > range.opt[d] || range.opt[d] > range.max[d]) {
          fail(ErrorCode::InvalidArgument, "profile '" + range_text + "': dim " + std::to_string(d) +
                                               " must satisfy min <= opt <= max");
        }
      }
      profile.push_back(range);
    }
    profiles.push_back(profile);
  }
  return profiles;
}

std::string default_profile_text() { return profiles_text({{default_image_range({-1, -1, -1, -1})}}); }

std::string engine_cache_key_text(const EngineBuildSpec& spec) {
  std::ostringstream text;
  text << "ifrt-engine-cache/2\n"
       << "onnx_sha256=" << spec.onnx_sha256 << '\n'
       << "external_data_sha256=" << spec.external_data_sha256 << '\n'
       << "tensorrt_version=" << spec.tensorrt_version << '\n'
       << "gpu_uuid=" << spec.gpu.uuid << '\n'
       << "precision=" << spec.precision << '\n'
       << "profiles=" << profiles_text(spec.profiles) << '\n'
       << "default_profile=" << (spec.profiles.empty() ? default_profile_text() : "") << '\n'
       << "concurrency=" << spec.concurrency << '\n'
       << "workspace_bytes=" << spec.workspace_bytes << '\n'
       << "dla_core=" << spec.dla_core << '\n';
  return text.str();
}

std::string engine_cache_key(const EngineBuildSpec& spec) { return sha256_hex(engine_cache_key_text(spec)); }

Json profiles_to_json(const std::vector<OptimizationProfile>& profiles) {
  Json out = Json::array();
  for (const auto& profile : profiles) {
    Json p = Json::object();
    for (const auto& r : profile) {
      Json& range = p[r.input];
      range["min"] = shape_json(r.min);
      range["opt"] = shape_json(r.opt);
      range["max"] = shape_json(r.max);
    }
    out.push_back(p);
  }
  return out;
}

std::vector<OptimizationProfile> profiles_from_json(const Json& json) {
  std::vector<OptimizationProfile> profiles;
  for (const auto& p : json.items()) {
    OptimizationProfile profile;
    for (const auto& [name, range] : p.members()) {
      TensorRange r;
      r.input = name;
      r.min = shape_from_json(member(range, "min", " in profile of " + name), name + ".min");
      r.opt = shape_from_json(member(range, "opt", " in profile of " + name), name + ".opt");
      r.max = shape_from_json(member(range, "max", " in profile of " + name), name + ".max");
      profile.push_back(r);
    }
    profiles.push_back(profile);
  }
  return profiles;
}

Json sidecar_to_json(const EngineSidecar& sidecar) {
  const auto& spec = sidecar.spec;
  Json j = Json::object();
  j["format"] = EngineSidecar::kFormat;
  j["ifrt_version"] = sidecar.ifrt_version;
  j["tensorrt_version"] = spec.tensorrt_version;
  Json& gpu = j["gpu"];
  gpu["name"] = spec.gpu.name;
  gpu["compute_capability"] = spec.gpu.compute_capability;
  gpu["uuid"] = spec.gpu.uuid;
  j["precision"] = spec.precision;
  j["strongly_typed"] = sidecar.strongly_typed;
  j["profiles"] = profiles_to_json(spec.profiles);
  j["concurrency"] = Json(spec.concurrency);
  j["workspace_bytes"] = Json(spec.workspace_bytes);
  j["dla_core"] = Json(spec.dla_core);
  j["onnx_sha256"] = spec.onnx_sha256;
  j["external_data_sha256"] = spec.external_data_sha256;
  j["engine_sha256"] = sidecar.engine_sha256;
  j["cache_key"] = sidecar.cache_key;
  if (!sidecar.metadata.is_null()) j["metadata"] = sidecar.metadata;
  return j;
}

EngineSidecar sidecar_from_json(const Json& j) {
  if (!j.is_object()) fail(ErrorCode::InvalidArgument, "engine sidecar: not a JSON object");
  const std::string format = string_member(j, "format");
  if (format != EngineSidecar::kFormat) {
    fail(ErrorCode::InvalidArgument, "engine sidecar: format \"" + format + "\" is not " + EngineSidecar::kFormat +
                                         " (written by a newer or different tool)");
  }
  EngineSidecar s;
  s.ifrt_version = string_member(j, "ifrt_version");
  s.spec.tensorrt_version = string_member(j, "tensorrt_version");
  const Json& gpu = member(j, "gpu", "");
  s.spec.gpu.name = string_member(gpu, "name");
  s.spec.gpu.compute_capability = string_member(gpu, "compute_capability");
  s.spec.gpu.uuid = string_member(gpu, "uuid");
  s.spec.precision = string_member(j, "precision");
  s.strongly_typed = member(j, "strongly_typed", "").as_bool();
  s.spec.profiles = profiles_from_json(member(j, "profiles", ""));
  s.spec.concurrency = static_cast<int>(member(j, "concurrency", "").as_int());
  s.spec.workspace_bytes = member(j, "workspace_bytes", "").as_int();
  s.spec.dla_core = static_cast<int>(member(j, "dla_core", "").as_int());
  s.spec.onnx_sha256 = string_member(j, "onnx_sha256");
  // Absent in sidecars written before external data was keyed: those engines' keys differ anyway.
  if (j.find("external_data_sha256")) s.spec.external_data_sha256 = string_member(j, "external_data_sha256");
  s.engine_sha256 = string_member(j, "engine_sha256");
  s.cache_key = string_member(j, "cache_key");
  if (const Json* metadata = j.find("metadata")) s.metadata = *metadata;
  return s;
}

std::string sidecar_path_for(const std::string& engine_path) { return engine_path + ".json"; }

EngineSidecar read_sidecar(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::Io, path + ": engine sidecar not found (every engine needs the JSON written beside it)");
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return sidecar_from_json(Json::parse(text.str()));
  } catch (const Error& e) {
    fail(ErrorCode::InvalidArgument, path + ": " + e.what());
  }
}

std::vector<std::string> sidecar_mismatches(const EngineSidecar& s, const SidecarExpectation& want) {
  std::vector<std::string> why;
  const auto& have = s.spec;
  if (!want.tensorrt_version.empty() && have.tensorrt_version != want.tensorrt_version) {
    why.push_back("built with TensorRT " + have.tensorrt_version + ", this is TensorRT " + want.tensorrt_version +
                  " (an engine loads only in the TensorRT version that built it)");
  }
  if (!want.gpu.compute_capability.empty() && have.gpu.compute_capability != want.gpu.compute_capability) {
    why.push_back("built for compute capability " + have.gpu.compute_capability + " (" + have.gpu.name +
                  "), this GPU is " + want.gpu.compute_capability + " (" + want.gpu.name + ")");
  } else if (!want.gpu.name.empty() && have.gpu.name != want.gpu.name) {
    why.push_back("built on a " + have.gpu.name + ", this GPU is a " + want.gpu.name);
  } else if (!want.gpu.uuid.empty() && have.gpu.uuid != want.gpu.uuid && !want.allow_same_model_gpu) {
    why.push_back("built on GPU " + have.gpu.uuid + ", this is GPU " + want.gpu.uuid + " (same model, " + want.gpu.name +
                  "; allow an engine from an identical GPU to accept it)");
  }
  if (!want.onnx_sha256.empty() && have.onnx_sha256 != want.onnx_sha256) {
    why.push_back("built from ONNX sha256 " + short_hash(have.onnx_sha256) + "..., the ONNX given is " +
                  short_hash(want.onnx_sha256) + "...");
  }
  if (want.external_data_sha256 && have.external_data_sha256 != *want.external_data_sha256) {
    why.push_back("built with " + external_data_text(have.external_data_sha256) + ", the ONNX given has " +
                  external_data_text(*want.external_data_sha256) + " (the files its tensors are kept in changed)");
  }
  if (!want.engine_sha256.empty() && s.engine_sha256 != want.engine_sha256) {
    why.push_back("engine file sha256 " + short_hash(want.engine_sha256) + "... differs from the sidecar's " +
                  short_hash(s.engine_sha256) + "... (the file changed after it was built, or is corrupt)");
  }
  if (!want.precision.empty() && have.precision != want.precision) {
    why.push_back("built for precision " + have.precision + ", " + want.precision + " was asked for");
  }
  if (want.profiles && profiles_text(have.profiles) != profiles_text(*want.profiles)) {
    why.push_back("built with profiles " + profiles_text(have.profiles) + ", asked for " + profiles_text(*want.profiles));
  }
  if (want.concurrency && have.concurrency != *want.concurrency) {
    why.push_back("built for " + std::to_string(have.concurrency) + " concurrent context(s) per profile, asked for " +
                  std::to_string(*want.concurrency));
  }
  if (want.workspace_bytes && have.workspace_bytes != *want.workspace_bytes) {
    why.push_back("built with workspace " + std::to_string(have.workspace_bytes) + " bytes, asked for " +
                  std::to_string(*want.workspace_bytes));
  }
  if (want.dla_core && have.dla_core != *want.dla_core) {
    why.push_back("built for DLA core " + std::to_string(have.dla_core) + ", asked for " + std::to_string(*want.dla_core) +
                  " (-1 means GPU only)");
  }
  return why;
}

namespace {

std::string errno_text(int error) { return std::strerror(error); }

// Creates `tmp` (which must not exist), writes `size` bytes and flushes them to the storage device,
// so that the rename after it can only ever publish complete contents. Throws naming `path`.
void write_durably(const std::string& tmp, const std::string& path, const void* data, size_t size) {
#if defined(_WIN32)
  const int fd = ::_wopen(std::filesystem::path(tmp).wstring().c_str(), _O_WRONLY | _O_CREAT | _O_EXCL | _O_BINARY,
                          _S_IREAD | _S_IWRITE);
#else
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
#endif
  if (fd < 0) fail(ErrorCode::Io, tmp + ": cannot create (" + errno_text(errno) + "; is the folder writable?)");
  const char* bytes = static_cast<const char*>(data);
  int error = 0;
  while (size > 0 && !error) {
#if defined(_WIN32)
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(size, 1u << 30));
    const int written = ::_write(fd, bytes, chunk);
#else
    const ssize_t written = ::write(fd, bytes, std::min<size_t>(size, size_t{1} << 30));
#endif
    if (written < 0) {
      if (errno != EINTR) error = errno;
      continue;
    }
    if (written == 0) error = ENOSPC;  // a regular file that takes no bytes is full
    bytes += written;
    size -= static_cast<size_t>(written);
  }
#if defined(_WIN32)
  if (!error && ::_commit(fd) != 0) error = errno;  // FlushFileBuffers
  if (::_close(fd) != 0 && !error) error = errno;
#else
  // fsync, not just close: without it a power cut after the rename can leave the new name on an
  // empty or partly written file, which the next run would have to detect and rebuild.
  while (!error && ::fsync(fd) != 0) {
    if (errno != EINTR) error = errno;
  }
  if (::close(fd) != 0 && !error && errno != EINTR) error = errno;
#endif
  if (error) {
    std::remove(tmp.c_str());
    fail(ErrorCode::Io, path + ": write failed (" + errno_text(error) + "; is the disk full?)");
  }
}

// Renames `tmp` over `path`, replacing an existing file (std::rename does not replace on Windows).
bool replace_file(const std::string& tmp, const std::string& path) {
#if defined(_WIN32)
  return ::MoveFileExW(std::filesystem::path(tmp).wstring().c_str(), std::filesystem::path(path).wstring().c_str(),
                       MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH) != 0;
#else
  return std::rename(tmp.c_str(), path.c_str()) == 0;
#endif
}

// Makes a rename in the folder of `path` durable: on POSIX a new directory entry reaches the disk
// only when the directory itself is synced. Windows has no such call; MOVEFILE_WRITE_THROUGH above
// covers it. A file system that cannot sync a directory (EINVAL) has nothing to flush.
void sync_folder_of(const std::string& path) {
#if !defined(_WIN32)
  std::string folder = std::filesystem::path(path).parent_path().string();
  if (folder.empty()) folder = ".";
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(ErrorCode::Io, folder + ": cannot open the folder to sync it (" + errno_text(errno) + ")");
  int error = 0;
  while (::fsync(fd) != 0) {
    if (errno == EINTR) continue;
    if (errno != EINVAL && errno != ENOTSUP) error = errno;
    break;
  }
  ::close(fd);
  if (error) fail(ErrorCode::Io, path + ": its folder could not be synced (" + errno_text(error) + ")");
#else
  (void)path;
#endif
}

}  // namespace

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  // pid + counter: unique across processes and across threads of this one.
  static std::atomic<unsigned> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(ifrt_getpid()) + "." + std::to_string(counter++);
  write_durably(tmp, path, data, size);
  if (!replace_file(tmp, path)) {
#if defined(_WIN32)
    const std::string why = "Windows error " + std::to_string(::GetLastError());
#else
    const std::string why = errno_text(errno);
#endif
    std::remove(tmp.c_str());
    fail(ErrorCode::Io, path + ": cannot replace with the new file (" + why + ")");
  }
  sync_folder_of(path);
}

#if defined(_WIN32)
FileLock::FileLock(const std::string&, const std::function<void()>&) {}
FileLock::~FileLock() = default;
#else
FileLock::FileLock(const std::string& path, const std::function<void()>& on_wait) {
  // flock, not fcntl locks: two descriptors of one process exclude each other too, so threads take turns.
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0 || ::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
  if (errno == EWOULDBLOCK) {
    try {
      if (on_wait) on_wait();
    } catch (...) {
      // A message about waiting must not leak the descriptor or stop the wait.
    }
    int status;
    while ((status = ::flock(fd_, LOCK_EX)) != 0 && errno == EINTR) {
    }
    if (status == 0) return;
  }
  ::close(fd_);
  fd_ = -1;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the lock
}
#endif

}  // namespace ifrt
