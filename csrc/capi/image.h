// C ABI descriptors -> core types, with the checks every entry point needs.
#pragma once

#include <cstring>
#include <string>

#include "core/image.h"
#include "ifrt/ifrt.h"

namespace ifrt::capi {

inline void require(const void* p, const char* what) {
  if (!p) fail(ErrorCode::InvalidArgument, std::string(what) + " is NULL");
}

// The integer a C caller stored in an enum field or argument. C lets an enum object hold any int; in
// C++ loading a value outside the enumerators' range is undefined, so the boundary reads the bytes.
template <typename Enum>
int enum_code(const Enum& value) {
  static_assert(sizeof(Enum) == sizeof(int), "C ABI enums are int-sized");
  int code;
  std::memcpy(&code, &value, sizeof code);
  return code;
}

inline DType dtype_from(const ifrt_dtype& t, const char* what) {
  const int code = enum_code(t);
  switch (code) {
    case IFRT_DTYPE_UINT8: return DType::U8;
    case IFRT_DTYPE_UINT16: return DType::U16;
    case IFRT_DTYPE_FLOAT32: return DType::F32;
    case IFRT_DTYPE_FLOAT16: return DType::F16;
  }
  fail(ErrorCode::InvalidArgument, std::string(what) + ": dtype code " + std::to_string(code) + " is not an ifrt_dtype");
}

// An input image (uint8, uint16 or float32), validated.
inline ImageView image_from(const ifrt_image* image, const char* what = "image") {
  require(image, what);
  ImageView v;
  v.data = image->data;
  v.dtype = dtype_from(image->dtype, what);
  v.height = image->height;
  v.width = image->width;
  v.channels = image->channels;
  v.row_stride = image->row_stride;
  v.pixel_stride = image->pixel_stride;
  return checked_input(v, what);
}

}  // namespace ifrt::capi
