// The files an ONNX keeps its tensors in besides itself ("external data": models over protobuf's
// 2 GB limit, or exported with it), so that the engine cache can key on their contents too: a new
// weights file beside an unchanged model.onnx must not load the engine built from the old one.
//
// Each external tensor names its file in TensorProto.external_data, a list of
// StringStringEntryProto {1: key, 2: value}; the entry with key "location" gives a path relative to
// the ONNX's folder. The entries are found in the serialized bytes, without a protobuf library: the
// key field is always the 10 bytes 0A 08 "location", and the value field (tag 0x12, varint length)
// follows it or, in a hand-made file, precedes it. Every candidate in either position is reported,
// so no entry can be missed; a stray match inside weights only adds a name that resolves to no file
// (or, at worst, a file whose change then also rebuilds the engine). Same scan as
// external_data_locations in runtime/model_package.py, which the runtime's tests hold to what the
// onnx package itself reads.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace ifrt {

// Values longer than this are no path a file system opens (PATH_MAX), and are skipped.
constexpr size_t kMaxExternalDataLocation = 4096;

// Candidate `location` values in the bytes of a whole serialized ONNX, in file order, each cut at
// the end of the bytes; empty ones and those over kMaxExternalDataLocation bytes are left out.
std::vector<std::string> onnx_external_data_locations(const char* data, size_t size);

// The same for the ONNX file `onnx_path`, read in chunks (an ONNX with embedded weights can be
// 2 GB). Throws ifrt::Error(Io) naming the file when it cannot be read.
std::vector<std::string> onnx_external_data_locations_in_file(const std::string& onnx_path);

// sha256 of the text that lists each distinct location, in byte order, as
//   <bytes in location>:<location> <sha256 of the file, or - when it is not a regular file or the name holds a NUL>\n
// where the file is `<folder of onnx_path>/<location>`, as TensorRT's ONNX parser opens it. ""
// when the ONNX names no external data. Hashes every byte of those files (seconds for gigabytes).
std::string onnx_external_data_sha256(const std::string& onnx_path);

}  // namespace ifrt
