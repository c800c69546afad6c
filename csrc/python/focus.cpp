// ifrt._native: classical focus metrics, global and per tile (CPU, and CUDA with host copies).
#include <pybind11/stl.h>

#include "core/focus.h"
#include "python/arrays.h"
#include "python/bind.h"
#if IFRT_WITH_CUDA
#include "cuda/kernels.h"
#endif

namespace ifrt::python {

namespace {

const char* const kNames[kFocusMetricCount] = {"var_laplacian", "tenengrad", "brenner", "normalized_variance",
                                                "vollath_f4"};

void metrics_to(const FocusMetrics& m, double* out) {
  out[0] = m.var_laplacian;
  out[1] = m.tenengrad;
  out[2] = m.brenner;
  out[3] = m.normalized_variance;
  out[4] = m.vollath_f4;
}

py::dict metrics_dict(const FocusMetrics& m) {
  double v[kFocusMetricCount];
  metrics_to(m, v);
  py::dict d;
  for (int i = 0; i < kFocusMetricCount; ++i) d[kNames[i]] = v[i];
  return d;
}

py::tuple run(const py::array& image, int64_t channel, int64_t tile_height, int64_t tile_width, py::object out,
              bool on_cuda) {
  const ImageArg img = image_arg(image);
  int64_t th = tile_height, tw = tile_width, ty = 0, tx = 0;
  focus_grid(img.view.height, img.view.width, &th, &tw, &ty, &tx);
  const std::vector<py::ssize_t> shape = {ty, tx, kFocusMetricCount};
  py::array_t<double> tiles;
  if (out.is_none()) {
    tiles = py::array_t<double>(shape);
  } else {
    auto a = out.cast<py::array>();
    check_out(a, py::dtype::of<double>(), shape, "focus");
    tiles = py::reinterpret_borrow<py::array_t<double>>(a);
  }
  FocusResult r;
  {
    py::gil_scoped_release release;
    if (on_cuda) {
#if IFRT_WITH_CUDA
      r = cuda::host::focus(img.view, channel, tile_height, tile_width);
#endif
    } else {
      r = focus(img.view, channel, tile_height, tile_width);
    }
  }
  double* dst = tiles.mutable_data();
  for (size_t t = 0; t < r.tiles.size(); ++t) metrics_to(r.tiles[t], dst + t * kFocusMetricCount);
  return py::make_tuple(metrics_dict(r.global), tiles);
}

}  // namespace

void bind_focus(py::module_& m) {
  py::list names;
  for (const char* n : kNames) names.append(n);
  m.attr("FOCUS_METRICS") = py::tuple(names);
  m.def("focus", [](const py::array& image, int64_t channel, int64_t tile_height, int64_t tile_width) {
    return run(image, channel, tile_height, tile_width, py::none(), false);
  }, py::arg("image"), py::arg("channel") = 0, py::arg("tile_height") = 0, py::arg("tile_width") = 0,
  "(global metrics dict, tiles [ty, tx, 5] float64 in FOCUS_METRICS order): see ifrt.focus.");
  m.def("focus_into", [](const py::array& image, const py::array& out, int64_t channel, int64_t tile_height,
                         int64_t tile_width) {
    const py::tuple result = run(image, channel, tile_height, tile_width, out, false);
    return py::object(result[0]);
  }, py::arg("image"), py::arg("out"), py::arg("channel") = 0, py::arg("tile_height") = 0, py::arg("tile_width") = 0,
  "As focus, writing the per-tile metrics into `out`; returns the global metrics.");
#if IFRT_WITH_CUDA
  m.def("cuda_focus", [](const py::array& image, int64_t channel, int64_t tile_height, int64_t tile_width) {
    return run(image, channel, tile_height, tile_width, py::none(), true);
  }, py::arg("image"), py::arg("channel") = 0, py::arg("tile_height") = 0, py::arg("tile_width") = 0,
  "The CUDA path of focus, host arrays in and out (for tests).");
#endif
}

}  // namespace ifrt::python
