// ifrt._native: postprocess kernels (softmax, tile blending, inverse normalization, quality-map
// upsampling) on the CPU, and the CUDA path with host copies.
#include <pybind11/stl.h>

#include "core/half.h"
#include "core/postprocess.h"
#include "python/arrays.h"
#include "python/bind.h"
#if IFRT_WITH_CUDA
#include "cuda/kernels.h"
#endif

namespace ifrt::python {

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

FloatArray float_array(const py::object& o, int ndim, const char* what) {
  auto a = FloatArray::ensure(o);
  if (!a) fail(ErrorCode::InvalidArgument, std::string(what) + ": expected a numeric array");
  if (a.ndim() != ndim) {
    fail(ErrorCode::InvalidArgument, std::string(what) + ": expected " + std::to_string(ndim) + " dimensions, got " +
                                         std::to_string(a.ndim()));
  }
  return a;
}

py::array out_or_new(py::object out, const py::dtype& dt, const std::vector<py::ssize_t>& shape, const char* what) {
  if (out.is_none()) return py::array(dt, shape);
  auto a = out.cast<py::array>();
  check_out(a, dt, shape, what);
  return a;
}

py::array softmax_run(const py::object& logits, float temperature, py::object out, bool on_cuda) {
  auto l = float_array(logits, 2, "softmax logits");
  py::array p = out_or_new(out, py::dtype::of<float>(), {l.shape(0), l.shape(1)}, "softmax");
  const float* src = l.data();
  float* dst = static_cast<float*>(p.mutable_data());
  const int64_t n = l.shape(0), k = l.shape(1);
  py::gil_scoped_release release;
  if (on_cuda) {
#if IFRT_WITH_CUDA
    cuda::host::softmax(src, n, k, temperature, dst);
#endif
  } else {
    softmax(src, n, k, temperature, dst);
  }
  return p;
}

// tiles [N, 1, th, tw] or [N, th, tw]
py::array blend_run(const py::object& tiles, int64_t frame_height, int64_t frame_width, int64_t overlap,
                    int64_t height, int64_t width, py::object out, bool on_cuda) {
  auto t = FloatArray::ensure(tiles);
  if (!t || (t.ndim() != 3 && !(t.ndim() == 4 && t.shape(1) == 1))) {
    fail(ErrorCode::InvalidArgument, "blend_tiles: tiles must be [N, 1, h, w] or [N, h, w] float32");
  }
  const int64_t th = t.shape(t.ndim() - 2), tw = t.shape(t.ndim() - 1);
  const TileGrid g = make_tile_grid(frame_height, frame_width, th, tw, overlap);
  if (t.shape(0) != g.tiles_y * g.tiles_x) {
    fail(ErrorCode::InvalidArgument, "blend_tiles: " + std::to_string(t.shape(0)) + " tiles given, the grid has " +
                                         std::to_string(g.tiles_y * g.tiles_x));
  }
  if (height <= 0) height = frame_height;
  if (width <= 0) width = frame_width;
  py::array o = out_or_new(out, py::dtype::of<float>(), {height, width}, "blend_tiles");
  const float* src = t.data();
  float* dst = static_cast<float*>(o.mutable_data());
  py::gil_scoped_release release;
  if (on_cuda) {
#if IFRT_WITH_CUDA
    cuda::host::blend_tiles(src, g, dst, height, width);
#endif
  } else {
    blend_tiles(src, g, dst, height, width);
  }
  return o;
}

py::array denormalize_run(const py::array& y, double lo, double hi, const std::string& dtype, int64_t height,
                          int64_t width, py::object out, bool on_cuda) {
  py::array in = native_byte_order(y);
  if (in.ndim() == 4 && in.shape(0) == 1 && in.shape(1) == 1) in = in.attr("reshape")(in.shape(2), in.shape(3));
  if (in.ndim() != 2) fail(ErrorCode::InvalidArgument, "denormalize: expected an H x W (or 1x1xHxW) array");
  DType in_t;
  if (has_dtype(in, DType::F32)) {
    in_t = DType::F32;
  } else if (has_dtype(in, DType::F16)) {
    in_t = DType::F16;
  } else {
    fail(ErrorCode::InvalidArgument, "denormalize: " + dtype_str(in) + " input is not supported (expected float32 or float16)");
  }
  // Rows may be strided (a crop of a padded frame); pixels must be adjacent.
  const bool rows_apart = in.shape(0) == 1 || in.strides(0) >= in.shape(1) * in.itemsize();
  if ((in.shape(1) > 1 && in.strides(1) != in.itemsize()) || !rows_apart || in.strides(0) % in.itemsize() != 0) {
    in = py::array::ensure(in, py::array::c_style);
  }
  const DType out_t = dtype_from_name(dtype, "denormalize");
  if (height <= 0) height = in.shape(0);
  if (width <= 0) width = in.shape(1);
  if (height > in.shape(0) || width > in.shape(1)) {
    fail(ErrorCode::InvalidArgument, "denormalize: crop " + std::to_string(height) + "x" + std::to_string(width) +
                                         " is larger than the input");
  }
  py::array o = out_or_new(out, numpy_dtype(out_t), {height, width}, "denormalize");
  const int64_t stride = in.shape(0) > 1 ? in.strides(0) / in.itemsize() : in.shape(1);
  const void* src = in.data();
  void* dst = o.mutable_data();
  py::gil_scoped_release release;
  if (on_cuda) {
#if IFRT_WITH_CUDA
    cuda::host::denormalize(src, in_t, stride, height, width, lo, hi, dst, out_t);
#endif
  } else {
    denormalize(src, in_t, stride, height, width, lo, hi, dst, out_t);
  }
  return o;
}

py::array upsample_run(const py::object& map, int64_t height, int64_t width, py::object out, bool on_cuda) {
  auto q = FloatArray::ensure(map);
  if (!q) fail(ErrorCode::InvalidArgument, "upsample_quality_map: expected a numeric array");
  if (q.ndim() == 4 && q.shape(0) == 1 && q.shape(1) == 1) q = FloatArray::ensure(q.attr("reshape")(q.shape(2), q.shape(3)));
  if (q.ndim() != 2) fail(ErrorCode::InvalidArgument, "upsample_quality_map: expected [h, w] or [1, 1, h, w]");
  py::array o = out_or_new(out, py::dtype::of<float>(), {height, width}, "upsample_quality_map");
  const float* src = q.data();
  float* dst = static_cast<float*>(o.mutable_data());
  const int64_t mh = q.shape(0), mw = q.shape(1);
  py::gil_scoped_release release;
  if (on_cuda) {
#if IFRT_WITH_CUDA
    cuda::host::upsample_quality_map(src, mh, mw, dst, height, width);
#endif
  } else {
    upsample_quality_map(src, mh, mw, dst, height, width);
  }
  return o;
}

}  // namespace

void bind_postprocess(py::module_& m) {
  const py::object none = py::none();
  for (const bool cuda : {false, true}) {
#if !IFRT_WITH_CUDA
    if (cuda) break;
#endif
    const std::string prefix = cuda ? "cuda_" : "";
    const char* note = cuda ? " (CUDA path, host arrays in and out)" : "";
    m.def((prefix + "softmax").c_str(), [cuda](const py::object& logits, float temperature, py::object out) {
      return softmax_run(logits, temperature, out, cuda);
    }, py::arg("logits"), py::arg("temperature") = 1.0f, py::arg("out") = none,
    (std::string("Softmax of [N, K] logits at a temperature; out: optional float32 [N, K].") + note).c_str());
    m.def((prefix + "blend_tiles").c_str(), [cuda](const py::object& tiles, int64_t frame_height, int64_t frame_width,
                                                    int64_t overlap, int64_t height, int64_t width, py::object out) {
      return blend_run(tiles, frame_height, frame_width, overlap, height, width, out, cuda);
    }, py::arg("tiles"), py::arg("frame_height"), py::arg("frame_width"), py::arg("overlap"), py::arg("height") = 0,
    py::arg("width") = 0, py::arg("out") = none,
    (std::string("Blend overlapping tiles into the frame (cropped to height x width).") + note).c_str());
    m.def((prefix + "denormalize").c_str(), [cuda](const py::array& y, double lo, double hi, const std::string& dtype,
                                                    int64_t height, int64_t width, py::object out) {
      return denormalize_run(y, lo, hi, dtype, height, width, out, cuda);
    }, py::arg("y"), py::arg("lo"), py::arg("hi"), py::arg("dtype") = "float32", py::arg("height") = 0,
    py::arg("width") = 0, py::arg("out") = none,
    (std::string("Inverse normalization back to dtype, cropped to height x width.") + note).c_str());
    m.def((prefix + "upsample_quality_map").c_str(), [cuda](const py::object& map, int64_t height, int64_t width,
                                                             py::object out) {
      return upsample_run(map, height, width, out, cuda);
    }, py::arg("quality_map"), py::arg("height"), py::arg("width"), py::arg("out") = none,
    (std::string("Bilinear upsampling of a quality map to height x width.") + note).c_str());
  }
}

}  // namespace ifrt::python
