// ifrt._native: normalization ranges and preprocessing (CPU, and the CUDA path with host copies).
// Options arrive as one dict (built by ifrt.preprocess), documented there once.
#include <pybind11/stl.h>

#include <set>

#include "core/normalize.h"
#include "core/parallel.h"
#include "core/preprocess.h"
#include "python/arrays.h"
#include "python/bind.h"
#if IFRT_WITH_CUDA
#include "cuda/bench.h"
#include "cuda/kernels.h"
#endif

namespace ifrt::python {

namespace {

// Options plus the arrays that back dark/flat, kept alive while the kernel runs.
struct ParsedOptions {
  PreprocessOptions options;
  py::array dark, flat;
};

template <typename T>
T get(const py::dict& d, const char* key, T fallback) {
  return d.contains(key) && !d[key].is_none() ? d[key].cast<T>() : fallback;
}

ParsedOptions parse_options(const py::dict& d, const ImageView& im) {
  static const std::set<std::string> known = {"channel", "dark", "flat", "norm", "p_low", "p_high", "lo", "hi",
                                              "out_height", "out_width", "resize", "pad_multiple", "pad",
                                              "tile_height", "tile_width", "overlap", "dtype"};
  for (auto item : d) {
    const auto key = item.first.cast<std::string>();
    if (!known.count(key)) fail(ErrorCode::InvalidArgument, "unknown preprocess option '" + key + "'");
  }
  ParsedOptions p;
  PreprocessOptions& o = p.options;
  o.channel = get<int64_t>(d, "channel", 0);
  const auto norm = get<std::string>(d, "norm", "percentile");
  if (norm == "percentile") {
    o.norm.mode = NormMode::Percentile;
  } else if (norm == "minmax") {
    o.norm.mode = NormMode::MinMax;
  } else if (norm == "fixed") {
    o.norm.mode = NormMode::Fixed;
    if (!d.contains("lo") || !d.contains("hi")) fail(ErrorCode::InvalidArgument, "norm='fixed' needs lo and hi");
  } else {
    fail(ErrorCode::InvalidArgument, "unknown norm '" + norm + "' (expected percentile, minmax or fixed)");
  }
  o.norm.p_low = get<double>(d, "p_low", 1.0);
  o.norm.p_high = get<double>(d, "p_high", 99.8);
  o.norm.lo = get<double>(d, "lo", 0.0);
  o.norm.hi = get<double>(d, "hi", 1.0);
  o.out_height = get<int64_t>(d, "out_height", 0);
  o.out_width = get<int64_t>(d, "out_width", 0);
  const auto resize = get<std::string>(d, "resize", "none");
  if (resize == "none") {
    o.resize = ResizeMode::None;
  } else if (resize == "bilinear") {
    o.resize = ResizeMode::Bilinear;
  } else if (resize == "area") {
    o.resize = ResizeMode::Area;
  } else {
    fail(ErrorCode::InvalidArgument, "unknown resize '" + resize + "' (expected none, bilinear or area)");
  }
  o.pad_multiple = get<int64_t>(d, "pad_multiple", 32);
  const auto pad = get<std::string>(d, "pad", "reflect");
  if (pad == "reflect") {
    o.pad = PadMode::Reflect;
  } else if (pad == "edge") {
    o.pad = PadMode::Edge;
  } else if (pad == "zero") {
    o.pad = PadMode::Zero;
  } else {
    fail(ErrorCode::InvalidArgument, "unknown pad '" + pad + "' (expected reflect, edge or zero)");
  }
  o.tile_height = get<int64_t>(d, "tile_height", 0);
  o.tile_width = get<int64_t>(d, "tile_width", 0);
  o.tile_overlap = get<int64_t>(d, "overlap", 0);
  o.out_dtype = dtype_from_name(get<std::string>(d, "dtype", "float32"), "dtype");
  if (d.contains("dark") && !d["dark"].is_none()) {
    p.dark = float_plane(d["dark"], im.height, im.width, "dark");
    o.dark = static_cast<const float*>(p.dark.data());
  }
  if (d.contains("flat") && !d["flat"].is_none()) {
    p.flat = float_plane(d["flat"], im.height, im.width, "flat");
    o.flat = static_cast<const float*>(p.flat.data());
  }
  return p;
}

std::vector<py::ssize_t> out_shape(const PreprocessPlan& plan) {
  return {plan.batch(), 1, plan.tile_height, plan.tile_width};
}

py::dict plan_dict(const PreprocessPlan& p) {
  py::dict d;
  d["src_height"] = p.src_height;
  d["src_width"] = p.src_width;
  d["resized_height"] = p.resized_height;
  d["resized_width"] = p.resized_width;
  d["frame_height"] = p.frame_height;
  d["frame_width"] = p.frame_width;
  d["tile_height"] = p.tile_height;
  d["tile_width"] = p.tile_width;
  d["overlap"] = p.tile_overlap;
  d["tiles_y"] = p.tiles_y;
  d["tiles_x"] = p.tiles_x;
  d["shape"] = py::tuple(py::cast(out_shape(p)));
  return d;
}

py::tuple run(const py::array& image, const py::dict& options, py::object out, bool on_cuda) {
  const ImageArg img = image_arg(image);
  const ParsedOptions po = parse_options(options, img.view);
  const PreprocessPlan plan = plan_preprocess(img.view, po.options);
  py::array result;
  if (out.is_none()) {
    result = py::array(numpy_dtype(po.options.out_dtype), out_shape(plan));
  } else {
    result = out.cast<py::array>();
    check_out(result, po.options.out_dtype, out_shape(plan), "preprocess");
  }
  void* dst = result.mutable_data();
  const size_t bytes = preprocess_bytes(plan, po.options.out_dtype);
  NormRange range;
  {
    py::gil_scoped_release release;
    if (on_cuda) {
#if IFRT_WITH_CUDA
      range = cuda::host::preprocess(img.view, po.options, dst, bytes);
#endif
    } else {
      range = preprocess(img.view, po.options, dst, bytes);
    }
  }
  return py::make_tuple(result, range.lo, range.hi);
}

}  // namespace

PreprocessOptions preprocess_options_from(const py::dict& options, const ImageView& image, py::list& keep_alive) {
  ParsedOptions po = parse_options(options, image);
  if (po.dark) keep_alive.append(po.dark);
  if (po.flat) keep_alive.append(po.flat);
  return po.options;
}

void bind_preprocess(py::module_& m) {
  m.def("percentile_range", [](const py::array& image, double p_low, double p_high, int64_t channel) {
    const ImageArg img = image_arg(image);
    NormRange r;
    {
      py::gil_scoped_release release;
      r = percentile_range(img.view, channel, p_low, p_high);
    }
    return py::make_tuple(r.lo, r.hi);
  }, py::arg("image"), py::arg("p_low") = 1.0, py::arg("p_high") = 99.8, py::arg("channel") = 0,
  "(lo, hi): numpy.percentile(image[..., channel], [p_low, p_high], method='linear'), exactly.");

  m.def("minmax_range", [](const py::array& image, int64_t channel) {
    const ImageArg img = image_arg(image);
    NormRange r;
    {
      py::gil_scoped_release release;
      r = minmax_range(img.view, channel);
    }
    return py::make_tuple(r.lo, r.hi);
  }, py::arg("image"), py::arg("channel") = 0, "(lo, hi): smallest and largest pixel of the channel.");

  m.def("preprocess_plan", [](const py::array& image, const py::dict& options) {
    const ImageArg img = image_arg(image);
    const ParsedOptions po = parse_options(options, img.view);
    return plan_dict(plan_preprocess(img.view, po.options));
  }, py::arg("image"), py::arg("options"), "Output geometry for these options (see ifrt.preprocess).");

  m.def("preprocess", [](const py::array& image, const py::dict& options) {
    return run(image, options, py::none(), false);
  }, py::arg("image"), py::arg("options"), "(tensor [N,1,h,w], lo, hi): see ifrt.preprocess.preprocess.");

  m.def("preprocess_into", [](const py::array& image, const py::array& out, const py::dict& options) {
    return run(image, options, out, false);
  }, py::arg("image"), py::arg("out"), py::arg("options"), "As preprocess, writing into `out`.");

  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Worker threads of the CPU kernels (0: default).");
  m.def("num_threads", &num_threads, "Worker threads of the CPU kernels.");

  m.def("has_cuda_kernels", [] { return bool(IFRT_WITH_CUDA); }, "True when the CUDA kernels are built in.");
#if IFRT_WITH_CUDA
  m.def("cuda_preprocess", [](const py::array& image, const py::dict& options) {
    return run(image, options, py::none(), true);
  }, py::arg("image"), py::arg("options"), "The CUDA path of preprocess, host arrays in and out (for tests).");

  m.def("cuda_preprocess_graph", [](const py::array& image, const py::dict& options, int replays) {
    const ImageArg img = image_arg(image);
    const ParsedOptions po = parse_options(options, img.view);
    const PreprocessPlan plan = plan_preprocess(img.view, po.options);
    py::array result(numpy_dtype(po.options.out_dtype), out_shape(plan));
    void* dst = result.mutable_data();
    const size_t bytes = preprocess_bytes(plan, po.options.out_dtype);
    NormRange range;
    {
      py::gil_scoped_release release;
      range = cuda::host::preprocess_graph(img.view, po.options, dst, bytes, replays);
    }
    return py::make_tuple(result, range.lo, range.hi);
  }, py::arg("image"), py::arg("options"), py::arg("replays") = 3,
  "preprocess through a captured CUDA graph replayed `replays` times, host arrays in and out (for tests).");

  m.def("cuda_bench", [](const py::array_t<uint16_t, py::array::c_style | py::array::forcecast>& frame, int repeat) {
    if (frame.ndim() != 2) fail(ErrorCode::InvalidArgument, "cuda_bench: expected an H x W uint16 frame");
    cuda::KernelTimes t;
    {
      py::gil_scoped_release release;
      t = cuda::bench_kernels(frame.data(), frame.shape(0), frame.shape(1), repeat);
    }
    py::dict d;
    d["memcpy_ms"] = t.memcpy_ms;
    d["memcpy_gbps"] = t.memcpy_bytes / (t.memcpy_ms * 1e-3) / 1e9;
    d["preprocess_ms"] = t.preprocess_ms;
    d["preprocess_gbps"] = t.preprocess_bytes / (t.preprocess_ms * 1e-3) / 1e9;
    d["normalize_only_ms"] = t.normalize_only_ms;
    d["normalize_only_gbps"] = t.preprocess_bytes / (t.normalize_only_ms * 1e-3) / 1e9;
    d["focus_ms"] = t.focus_ms;
    d["focus_gbps"] = t.focus_bytes / (t.focus_ms * 1e-3) / 1e9;
    return d;
  }, py::arg("frame"), py::arg("repeat") = 20,
  "Device timings (CUDA events) of preprocess and focus on a uint16 frame, with a device copy's bandwidth.");
#endif
}

}  // namespace ifrt::python
