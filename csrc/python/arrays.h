// numpy <-> native views for the kernel bindings: zero-copy where the strides allow it.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "core/common.h"
#include "core/image.h"

namespace ifrt::python {

namespace py = pybind11;

// An image view over a numpy array, with the array (or the contiguous copy made for it) kept alive.
struct ImageArg {
  ImageView view;
  py::array keep;
};

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// The same numpy type in this machine's byte order (dtype objects need not be identical: astype and
// newbyteorder make new ones).
inline bool same_dtype(const py::dtype& a, const py::dtype& b) {
  return a.num() == b.num() && a.attr("isnative").cast<bool>();
}

inline bool has_dtype(const py::array& a, DType t) {
  switch (t) {
    case DType::U8: return same_dtype(a.dtype(), py::dtype::of<uint8_t>());
    case DType::U16: return same_dtype(a.dtype(), py::dtype::of<uint16_t>());
    case DType::F32: return same_dtype(a.dtype(), py::dtype::of<float>());
    case DType::F16: return same_dtype(a.dtype(), py::dtype("float16"));
  }
  return false;
}

inline DType dtype_from_name(const std::string& name, const char* what) {
  if (name == "uint8") return DType::U8;
  if (name == "uint16") return DType::U16;
  if (name == "float32") return DType::F32;
  if (name == "float16") return DType::F16;
  fail(ErrorCode::InvalidArgument, std::string(what) + ": unknown dtype '" + name + "'");
}

inline py::dtype numpy_dtype(DType t) {
  switch (t) {
    case DType::U8: return py::dtype::of<uint8_t>();
    case DType::U16: return py::dtype::of<uint16_t>();
    case DType::F32: return py::dtype::of<float>();
    case DType::F16: return py::dtype("float16");
  }
  return py::dtype::of<float>();
}

// A 3-D image is H x W x C. More than 16 channels, and more channels than rows, is a channels-first stack
// (C x H x W; tifffile returns 1 x H x W for some single pages) read the wrong way round: refuse it by name.
inline void check_channels_last(int64_t height, int64_t width, int64_t channels, const char* what) {
  if (channels > 16 && channels > height) {
    fail(ErrorCode::InvalidArgument,
         std::string(what) + ": shape " + std::to_string(height) + "x" + std::to_string(width) + "x" +
             std::to_string(channels) + " would be " + std::to_string(channels) +
             " channels of " + std::to_string(height) + "x" + std::to_string(width) +
             " pixels; a channels-first stack (C x H x W) must be passed as image[0] (one plane) or "
             "np.moveaxis(image, 0, -1)");
  }
}

// Whether byte strides describe an image the kernels read in place (core/image.h): channels adjacent,
// pixels at least a pixel apart, rows at least a row apart. Negative, broadcast (0) and column-major
// strides are not; such images are copied (or refused, on a device).
inline bool strides_readable(int64_t height, int64_t width, int64_t channels, int64_t element, int64_t row,
                             int64_t pixel, int64_t channel) {
  if (channels > 1 && channel != element) return false;
  if (width > 1 && pixel < channels * element) return false;
  const int64_t row_bytes = (width > 1 ? (width - 1) * pixel : 0) + channels * element;
  return height == 1 || row >= row_bytes;
}

// The array itself when its bytes are in this machine's order, else a copy that is (a big-endian '>u2'
// from a FITS or TIFF reader reads as the numbers it holds).
inline py::array native_byte_order(const py::array& a) {
  if (a.dtype().attr("isnative").cast<bool>()) return a;
  return a.attr("astype")(a.dtype().attr("newbyteorder")("="));
}

// H x W or H x W x C uint8/uint16/float32; rows and pixels may be strided (camera buffers, crops); other
// layouts (column-major, negative or broadcast strides, channels apart) are read from a contiguous copy.
inline ImageArg image_arg(const py::array& input, const char* what = "image") {
  const py::array a = native_byte_order(input);
  if (a.ndim() != 2 && a.ndim() != 3) {
    fail(ErrorCode::InvalidArgument, std::string(what) + ": expected an H x W or H x W x C array, got " +
                                         std::to_string(a.ndim()) + " dimension(s)");
  }
  DType t;
  if (has_dtype(a, DType::U8)) {
    t = DType::U8;
  } else if (has_dtype(a, DType::U16)) {
    t = DType::U16;
  } else if (has_dtype(a, DType::F32)) {
    t = DType::F32;
  } else {
    fail(ErrorCode::InvalidArgument, std::string(what) + ": " + dtype_str(a) +
                                         " pixels are not supported (expected uint8, uint16 or float32)");
  }
  ImageArg arg;
  arg.keep = a;
  if (a.ndim() == 3) check_channels_last(a.shape(0), a.shape(1), a.shape(2), what);
  const int64_t channels = a.ndim() == 3 ? a.shape(2) : 1;
  if (!strides_readable(a.shape(0), a.shape(1), channels, a.itemsize(), a.strides(0), a.strides(1),
                        a.ndim() == 3 ? a.strides(2) : a.itemsize())) {
    arg.keep = py::array::ensure(a, py::array::c_style);
  }
  const py::array& b = arg.keep;
  ImageView& v = arg.view;
  v.data = b.data();
  v.dtype = t;
  v.height = b.shape(0);
  v.width = b.shape(1);
  v.channels = b.ndim() == 3 ? b.shape(2) : 1;
  v.row_stride = b.strides(0);
  v.pixel_stride = b.strides(1);
  // numpy gives arbitrary strides for axes of length 1; normalize them so validation passes.
  if (v.width == 1) v.pixel_stride = v.channels * dtype_size(t);
  if (v.height == 1) v.row_stride = v.width * v.pixel_stride;
  if (v.height == 0 || v.width == 0 || v.channels == 0) {
    fail(ErrorCode::InvalidArgument, std::string(what) + ": image of shape " + std::to_string(v.height) + "x" +
                                         std::to_string(v.width) + " is empty");
  }
  return arg;
}

// A C-contiguous float32 array of exactly `count` elements (converted when needed).
inline py::array_t<float, py::array::c_style> float_plane(const py::object& o, int64_t h, int64_t w, const char* what) {
  auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(o);
  if (!a) fail(ErrorCode::InvalidArgument, std::string(what) + ": expected a numeric array");
  if (a.ndim() != 2 || a.shape(0) != h || a.shape(1) != w) {
    std::string shape;
    for (py::ssize_t i = 0; i < a.ndim(); ++i) shape += (i ? "x" : "") + std::to_string(a.shape(i));
    fail(ErrorCode::InvalidArgument, std::string(what) + ": shape " + shape + " does not match the image " +
                                         std::to_string(h) + "x" + std::to_string(w));
  }
  return a;
}

// Checks a caller-provided output array: C-contiguous, writeable, dtype and shape as expected.
inline void check_out(const py::array& out, const py::dtype& dt, const std::vector<py::ssize_t>& shape,
                      const char* what) {
  std::string want, got;
  for (size_t i = 0; i < shape.size(); ++i) want += (i ? "x" : "") + std::to_string(shape[i]);
  for (py::ssize_t i = 0; i < out.ndim(); ++i) got += (i ? "x" : "") + std::to_string(out.shape(i));
  if (!same_dtype(out.dtype(), dt)) {
    fail(ErrorCode::InvalidArgument, std::string(what) + ": output dtype " + dtype_str(out) + " should be " +
                                         py::str(dt).cast<std::string>());
  }
  if (want != got) fail(ErrorCode::InvalidArgument, std::string(what) + ": output shape " + got + " should be " + want);
  if (!(out.flags() & py::array::c_style)) fail(ErrorCode::InvalidArgument, std::string(what) + ": output must be C-contiguous");
  if (!out.writeable()) fail(ErrorCode::InvalidArgument, std::string(what) + ": output array is read-only");
}

inline void check_out(const py::array& out, DType t, const std::vector<py::ssize_t>& shape, const char* what) {
  check_out(out, numpy_dtype(t), shape, what);
}

}  // namespace ifrt::python
