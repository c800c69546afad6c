// Image descriptors shared by every kernel: a strided view of H x W pixels of C channels.
//
// Layout: pixel (y, x), channel c lives at  data + y*row_stride + x*pixel_stride + c*elem_size
// (strides in bytes), so camera buffers with padded rows and interleaved channels are read in place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/common.h"

namespace ifrt {

enum class DType : int { U8 = 1, U16 = 2, F32 = 3, F16 = 4 };

IFRT_HD int64_t dtype_size(DType t) { return t == DType::U8 ? 1 : (t == DType::F32 ? 4 : 2); }
const char* dtype_name(DType t);

struct ImageView {
  const void* data = nullptr;
  DType dtype = DType::U16;
  int64_t height = 0;
  int64_t width = 0;
  int64_t channels = 1;
  int64_t row_stride = 0;    // bytes between rows; 0 means width * pixel_stride
  int64_t pixel_stride = 0;  // bytes between pixels; 0 means channels * element size
};

// Fills the default strides and checks the descriptor; throws Error(InvalidArgument) naming `what`
// and the problem. Input images accept uint8, uint16 and float32.
ImageView checked_input(ImageView image, const char* what = "image");

// Bytes a checked view spans, from its first pixel's first byte to its last pixel's last byte (what a
// copy of the view must move; strides as checked_input resolved them).
inline size_t image_extent(const ImageView& im) {
  return static_cast<size_t>((im.height - 1) * im.row_stride + (im.width - 1) * im.pixel_stride +
                             im.channels * dtype_size(im.dtype));
}

// Whether the byte ranges [a, a + a_bytes) and [b, b + b_bytes) share a byte: an output over an input that
// the kernels still read. A null pointer overlaps nothing.
inline bool bytes_overlap(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  if (!a || !b) return false;
  const auto x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
  return x < y + b_bytes && y < x + a_bytes;
}

// A packed float32 H x W plane (dark frame, flat field, tiles, quality maps).
struct PlaneF {
  const float* data = nullptr;
  int64_t height = 0;
  int64_t width = 0;
};

// Reads channel `channel` of pixel (y, x) as float (exact for uint8/uint16).
template <typename T>
IFRT_HD float load_as_float(const unsigned char* base, int64_t row_stride, int64_t pixel_stride, int64_t y,
                            int64_t x) {
  return static_cast<float>(*reinterpret_cast<const T*>(base + y * row_stride + x * pixel_stride));
}

}  // namespace ifrt
