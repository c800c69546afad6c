// SHA-256 (FIPS 180-4): identifies ONNX models and engines in the engine cache and sidecars, so an
// engine is never loaded against a model or file it was not built from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ifrt {

// Incremental hasher: update() any number of times, then hex() once.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  std::string hex();  // 64 lowercase hex digits; finishes the hash (update() after this is an error)

 private:
  void compress(const uint8_t* block);
  uint32_t state_[8];
  uint8_t block_[64];
  size_t block_used_ = 0;
  uint64_t total_bytes_ = 0;
  bool finished_ = false;
};

std::string sha256_hex(const void* data, size_t size);
inline std::string sha256_hex(const std::string& text) { return sha256_hex(text.data(), text.size()); }

// Hash of a file's bytes, read in chunks; throws ifrt::Error(Io) naming the file when unreadable.
std::string sha256_file_hex(const std::string& path);

}  // namespace ifrt
