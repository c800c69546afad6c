#include "core/onnx_external_data.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/common.h"
#include "core/sha256.h"

namespace ifrt {

namespace {

const std::string kLocationKey("\x0a\x08location", 10);
constexpr size_t kMaxVarint = 10;  // bytes of a 64-bit varint
// Bytes a key occurrence needs around it: a value, its 0x12 tag and its length before it; after it
// the 0x12 tag, a varint of any encoding and a value of the longest length kept.
constexpr size_t kBefore = kMaxExternalDataLocation + 3;
constexpr size_t kAfter = 10 + 1 + kMaxVarint + kMaxExternalDataLocation + 1;

// Protobuf varint at `pos`: the value and the position after it, or false when it does not end
// within 64 bits or the bytes.
bool read_varint(const std::string& data, size_t pos, uint64_t& value, size_t& end) {
  value = 0;
  for (unsigned shift = 0; pos < data.size() && shift < 64; shift += 7) {
    const auto byte = static_cast<uint8_t>(data[pos++]);
    value |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if (!(byte & 0x80)) {
      end = pos;
      return true;
    }
  }
  return false;
}

std::string varint(size_t value) {
  std::string out;
  do {
    out += static_cast<char>((value & 0x7F) | (value > 0x7F ? 0x80 : 0));
    value >>= 7;
  } while (value);
  return out;
}

void keep(std::vector<std::string>& found, std::string value) {
  if (!value.empty() && value.size() <= kMaxExternalDataLocation) found.push_back(std::move(value));
}

// The candidates around the key occurrence at `start` of `data` (see the header).
void candidates_at(const std::string& data, size_t start, std::vector<std::string>& found) {
  const size_t after = start + kLocationKey.size();
  uint64_t length = 0;
  size_t value = 0;
  if (after < data.size() && data[after] == '\x12' && read_varint(data, after + 1, length, value)) {
    // Cut at the end of the bytes, as a slice is; a longer value cannot be a path and is dropped.
    const size_t available = data.size() - std::min(value, data.size());
    keep(found, data.substr(std::min(value, data.size()), static_cast<size_t>(std::min<uint64_t>(length, available))));
  }
  for (size_t length_before = 0; length_before < std::min(start, kMaxExternalDataLocation); ++length_before) {
    const std::string prefix = "\x12" + varint(length_before);
    if (start < length_before + prefix.size()) continue;
    const size_t at = start - length_before - prefix.size();
    if (data.compare(at, prefix.size(), prefix) == 0) keep(found, data.substr(start - length_before, length_before));
  }
}

}  // namespace

std::vector<std::string> onnx_external_data_locations(const char* data, size_t size) {
  const std::string bytes(data, size);
  std::vector<std::string> found;
  for (size_t start = bytes.find(kLocationKey); start != std::string::npos;
       start = bytes.find(kLocationKey, start + kLocationKey.size())) {
    candidates_at(bytes, start, found);
  }
  return found;
}

std::vector<std::string> onnx_external_data_locations_in_file(const std::string& onnx_path) {
  std::ifstream in(onnx_path, std::ios::binary);
  if (!in) fail(ErrorCode::Io, onnx_path + ": cannot open the ONNX model");
  // A sliding window over the file: key occurrences are looked at once the window holds kAfter
  // bytes past them (or the file has ended), and kBefore bytes before the next one stay behind.
  // The window's start is kept at a file offset where a value before a key may begin, or at 0.
  std::string window;
  size_t next = 0;   // key occurrences starting before this window offset are done
  std::vector<char> chunk(16 << 20);
  std::vector<std::string> found;
  while (true) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const auto got = static_cast<size_t>(in.gcount());
    if (in.bad()) fail(ErrorCode::Io, onnx_path + ": read error while looking for external data");
    window.append(chunk.data(), got);
    const bool end = !in;
    // A value cut by the window's end looks cut by the file's: only the last read may look there.
    const size_t limit = end ? window.size() : (window.size() > kAfter ? window.size() - kAfter : 0);
    for (size_t start = window.find(kLocationKey, next); start != std::string::npos && start < limit;
         start = window.find(kLocationKey, start + kLocationKey.size())) {
      candidates_at(window, start, found);
    }
    if (end) return found;
    next = std::max(next, limit);
    const size_t drop = next > kBefore ? next - kBefore : 0;
    window.erase(0, drop);
    next -= drop;
  }
}

std::string onnx_external_data_sha256(const std::string& onnx_path) {
  const std::vector<std::string> listed = onnx_external_data_locations_in_file(onnx_path);
  if (listed.empty()) return "";
  const std::set<std::string> locations(listed.begin(), listed.end());
  std::string folder = std::filesystem::path(onnx_path).parent_path().string();
  if (folder.empty()) folder = ".";
  std::string text;
  for (const auto& location : locations) {
    // Joined as text, not with path::operator/, which would drop the folder for an absolute name:
    // the parser prepends the folder whatever the location says.
    const std::string file = folder + "/" + location;
    std::error_code error;  // a name with a NUL byte is no file (the system would read up to the NUL)
    const bool regular = location.find('\0') == std::string::npos && std::filesystem::is_regular_file(file, error);
    text += std::to_string(location.size()) + ":" + location + " " + (regular ? sha256_file_hex(file) : "-") + "\n";
  }
  return sha256_hex(text);
}

}  // namespace ifrt
