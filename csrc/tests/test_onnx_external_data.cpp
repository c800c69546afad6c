// ONNX external data (core/onnx_external_data.h): the `location` entries found in serialized bytes,
// the same entries when the file is read in chunks, and the hash the engine cache keys on.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "check.h"
#include "core/onnx_external_data.h"
#include "core/sha256.h"

namespace {

namespace fs = std::filesystem;
using Locations = std::vector<std::string>;

const std::string kKey("\x0a\x08location", 10);

// A StringStringEntryProto as every writer lays it out: key field, then value field.
std::string entry(const std::string& location) { return kKey + "\x12" + static_cast<char>(location.size()) + location; }

void write(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

Locations scan(const std::string& bytes) { return ifrt::onnx_external_data_locations(bytes.data(), bytes.size()); }

}  // namespace

int main() {
  // Key then value, as onnx writes it; value then key, as a hand-made file may; each once.
  CHECK(scan("\x08\x01" + entry("weights.bin") + "\x22\x00") == Locations{"weights.bin"});
  CHECK(scan(std::string("\x12\x0bweights.bin", 13) + kKey) == Locations{"weights.bin"});
  // Back to back, the first value also sits right before the second key: found twice, hashed once.
  CHECK(scan(entry("a.bin") + entry("b.bin")) == (Locations{"a.bin", "b.bin", "a.bin"}));
  CHECK(scan("no external data here").empty());
  // A value cut by the end of the bytes is cut there; an empty one names no file.
  CHECK(scan(kKey + "\x12\x10short") == Locations{"short"});
  CHECK(scan(kKey + std::string("\x12\x00", 2)).empty());
  // Longer than any path: skipped.
  const std::string too_long(ifrt::kMaxExternalDataLocation + 1, 'x');
  CHECK(scan(kKey + "\x12" + "\x81\x20" + too_long).empty());

  const fs::path folder = fs::absolute("test_onnx_external_data.d");
  fs::remove_all(folder);
  fs::create_directories(folder);

  // The file is read in 16 MiB chunks: an entry whose value (before its key) straddles the first
  // chunk's end and one whose key straddles the second's are found, in file order, as in one buffer.
  const size_t chunk = 16u << 20;
  std::string bytes = entry("first.bin");
  bytes.resize(chunk - 5, '\0');
  bytes += std::string("\x12\x07", 2) + "mid.bin" + kKey;
  bytes.resize(2 * chunk - 4, '\0');
  bytes += entry("edge.bin");
  bytes.resize(2 * chunk + 100, '\0');
  bytes += entry("last.bin");
  write(folder / "big.onnx", bytes);
  CHECK(scan(bytes) == (Locations{"first.bin", "mid.bin", "edge.bin", "last.bin"}));
  CHECK(ifrt::onnx_external_data_locations_in_file((folder / "big.onnx").string()) == scan(bytes));

  // The hash: "" without external data; changes with a file's content; a name that is no file
  // counts as such (it may become one).
  write(folder / "plain.onnx", "\x08\x07graph");
  CHECK(ifrt::onnx_external_data_sha256((folder / "plain.onnx").string()).empty());
  write(folder / "model.onnx", "\x08\x07" + entry("model.weights") + entry("model.weights") + entry("absent.bin"));
  write(folder / "model.weights", "weights v1");
  const std::string v1 = ifrt::onnx_external_data_sha256((folder / "model.onnx").string());
  CHECK(v1 == ifrt::sha256_hex("10:absent.bin -\n13:model.weights " + ifrt::sha256_hex(std::string("weights v1")) + "\n"));
  write(folder / "model.weights", "weights v2");
  const std::string v2 = ifrt::onnx_external_data_sha256((folder / "model.onnx").string());
  CHECK(v2 != v1 && v2.size() == 64);
  write(folder / "absent.bin", "");
  CHECK(ifrt::onnx_external_data_sha256((folder / "model.onnx").string()) != v2);
  // Relative to the ONNX's folder, not the working directory.
  fs::create_directories(folder / "sub");
  fs::copy_file(folder / "model.onnx", folder / "sub" / "model.onnx");
  CHECK(ifrt::onnx_external_data_sha256((folder / "sub" / "model.onnx").string()) ==
        ifrt::sha256_hex(std::string("10:absent.bin -\n13:model.weights -\n")));

  std::string message;
  try {
    ifrt::onnx_external_data_sha256((folder / "missing.onnx").string());
  } catch (const std::exception& e) {
    message = e.what();
  }
  CHECK(message.find("missing.onnx: cannot open the ONNX model") != std::string::npos);

  fs::remove_all(folder);
  return TEST_MAIN_RESULT();
}
