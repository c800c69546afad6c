#include "core/normalize.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <sstream>
#include <tuple>
#include <utility>
#include <vector>

#include "core/parallel.h"

namespace ifrt {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::U8: return "uint8";
    case DType::U16: return "uint16";
    case DType::F32: return "float32";
    case DType::F16: return "float16";
  }
  return "unknown";
}

ImageView checked_input(ImageView image, const char* what) {
  std::ostringstream msg;
  msg << what << ": ";
  if (!image.data) fail(ErrorCode::InvalidArgument, msg.str() + "data pointer is null");
  if (image.dtype != DType::U8 && image.dtype != DType::U16 && image.dtype != DType::F32) {
    if (image.dtype == DType::F16) {
      msg << "float16 pixels are not supported (expected uint8, uint16 or float32)";
    } else {
      msg << "dtype code " << static_cast<int>(image.dtype) << " is not supported (expected uint8, uint16 or float32)";
    }
    fail(ErrorCode::InvalidArgument, msg.str());
  }
  if (image.height <= 0 || image.width <= 0 || image.channels <= 0) {
    msg << "size " << image.height << "x" << image.width << "x" << image.channels
        << " is empty (height, width and channels must be >= 1)";
    fail(ErrorCode::InvalidArgument, msg.str());
  }
  const int64_t es = dtype_size(image.dtype);
  // Every offset below and in the kernels is int64_t: a descriptor whose pixels span more than 2^63
  // bytes describes no real buffer and would overflow them, so it is refused first.
  constexpr int64_t max = std::numeric_limits<int64_t>::max();
  const auto fits = [](int64_t a, int64_t b) { return b == 0 || a <= max / b; };  // a * b, both >= 0
  const auto too_large = [&] {
    msg << "size " << image.height << "x" << image.width << "x" << image.channels << " with pixel stride "
        << image.pixel_stride << " and row stride " << image.row_stride << " bytes spans more than 2^63 bytes";
    fail(ErrorCode::InvalidArgument, msg.str());
  };
  if (!fits(image.channels, es)) too_large();
  if (image.pixel_stride == 0) image.pixel_stride = image.channels * es;
  if (image.pixel_stride < image.channels * es || image.pixel_stride % es != 0) {
    msg << "pixel stride " << image.pixel_stride << " bytes is invalid for " << image.channels << " "
        << dtype_name(image.dtype) << " channels (must be a multiple of " << es << " and >= " << image.channels * es
        << ")";
    fail(ErrorCode::InvalidArgument, msg.str());
  }
  if (image.row_stride == 0 && !fits(image.width, image.pixel_stride)) too_large();
  if (image.row_stride == 0) image.row_stride = image.width * image.pixel_stride;
  // One row's bytes, then all rows': both must be representable.
  if (!fits(image.width - 1, image.pixel_stride) || (image.width - 1) * image.pixel_stride > max - image.channels * es) {
    too_large();
  }
  const int64_t row_bytes = (image.width - 1) * image.pixel_stride + image.channels * es;
  if (image.height > 1 && image.row_stride > 0 &&
      (!fits(image.height - 1, image.row_stride) || (image.height - 1) * image.row_stride > max - row_bytes)) {
    too_large();
  }
  if (image.row_stride % es != 0 || (image.height > 1 && image.row_stride < row_bytes)) {
    msg << "row stride " << image.row_stride << " bytes is invalid for width " << image.width << " (must be a multiple of "
        << es << " and >= " << row_bytes << ")";
    fail(ErrorCode::InvalidArgument, msg.str());
  }
  if (reinterpret_cast<uintptr_t>(image.data) % static_cast<uintptr_t>(es) != 0) {
    msg << "data pointer is not aligned to " << es << " bytes for " << dtype_name(image.dtype);
    fail(ErrorCode::InvalidArgument, msg.str());
  }
  return image;
}

void check_norm_spec(const NormSpec& spec) {
  std::ostringstream msg;
  switch (spec.mode) {
    case NormMode::Percentile:
      if (!(spec.p_low >= 0.0 && spec.p_low < spec.p_high && spec.p_high <= 100.0)) {
        msg << "percentiles must satisfy 0 <= p_low < p_high <= 100, got p_low=" << spec.p_low
            << ", p_high=" << spec.p_high;
        fail(ErrorCode::InvalidArgument, msg.str());
      }
      return;
    case NormMode::MinMax: return;
    case NormMode::Fixed:
      make_range(spec.lo, spec.hi);
      return;
  }
  fail(ErrorCode::InvalidArgument, "unknown normalization mode " + std::to_string(static_cast<int>(spec.mode)));
}

NormRange make_range(double lo, double hi) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || hi < lo) {
    std::ostringstream msg;
    msg << "normalization range must be finite with hi >= lo, got lo=" << lo << ", hi=" << hi;
    fail(ErrorCode::InvalidArgument, msg.str());
  }
  NormRange r;
  r.lo = lo;
  r.hi = hi;
  r.lo32 = static_cast<float>(lo);
  r.scale32 = norm_scale(lo, hi);
  return r;
}

namespace {

void check_channel(const ImageView& image, int64_t channel) {
  if (channel < 0 || channel >= image.channels) {
    fail(ErrorCode::InvalidArgument, "channel " + std::to_string(channel) + " is out of range for an image with " +
                                         std::to_string(image.channels) + " channel(s)");
  }
}

template <typename T>
void load_row_t(const ImageView& im, int64_t channel, const float* dark, const float* flat, int64_t y, float* out) {
  const auto* base = static_cast<const unsigned char*>(im.data) + channel * sizeof(T) + y * im.row_stride;
  const int64_t w = im.width;
  const int64_t off = y * w;
  if (im.pixel_stride == static_cast<int64_t>(sizeof(T))) {
    const T* row = reinterpret_cast<const T*>(base);
    if (!dark && !flat) {
      for (int64_t x = 0; x < w; ++x) out[x] = static_cast<float>(row[x]);
    } else {
      for (int64_t x = 0; x < w; ++x) out[x] = correct_value(static_cast<float>(row[x]), dark, flat, off + x);
    }
  } else {
    for (int64_t x = 0; x < w; ++x) {
      const float raw = load_as_float<T>(base, 0, im.pixel_stride, 0, x);
      out[x] = correct_value(raw, dark, flat, off + x);
    }
  }
}

// Counts of pixel values over rows [y0, y1), added to 64-bit totals.
template <typename T>
void count_rows(const ImageView& im, int64_t channel, int64_t y0, int64_t y1, int64_t bins, int64_t* totals) {
  // 32-bit counters, flushed into the totals before they could overflow. For 256 bins, four
  // interleaved tables keep runs of equal values from serializing on one counter; 65536 bins use
  // one table (256 KiB) so that it stays in L2.
  const int lanes = bins <= 4096 ? 4 : 1;
  std::vector<uint32_t> part(static_cast<size_t>(bins * lanes), 0);
  int64_t pending = 0;
  auto flush = [&] {
    for (int l = 0; l < lanes; ++l)
      for (int64_t b = 0; b < bins; ++b) totals[b] += part[l * bins + b];
    std::fill(part.begin(), part.end(), 0u);
    pending = 0;
  };
  uint32_t* lane[4] = {part.data(), part.data() + (lanes > 1 ? bins : 0), part.data() + (lanes > 1 ? 2 * bins : 0),
                       part.data() + (lanes > 1 ? 3 * bins : 0)};
  for (int64_t y = y0; y < y1; ++y) {
    const auto* base = static_cast<const unsigned char*>(im.data) + y * im.row_stride + channel * sizeof(T);
    if (pending + im.width > (int64_t(1) << 31)) flush();
    pending += im.width;
    const T* row = reinterpret_cast<const T*>(base);
    const int64_t w = im.width;
    if (im.pixel_stride != static_cast<int64_t>(sizeof(T))) {
      for (int64_t x = 0; x < w; ++x) ++lane[x & 3][*reinterpret_cast<const T*>(base + x * im.pixel_stride)];
    } else if (lanes == 1) {
      for (int64_t x = 0; x < w; ++x) ++lane[0][row[x]];
    } else {
      int64_t x = 0;
      for (; x + 4 <= w; x += 4) {
        ++lane[0][row[x]];
        ++lane[1][row[x + 1]];
        ++lane[2][row[x + 2]];
        ++lane[3][row[x + 3]];
      }
      for (; x < w; ++x) ++lane[0][row[x]];
    }
  }
  flush();
}

template <typename T>
std::vector<int64_t> histogram(const ImageView& im, int64_t channel, int64_t bins) {
  std::vector<int64_t> hist(static_cast<size_t>(bins), 0);
  std::mutex merge;
  // One chunk per thread: every chunk pays for clearing and merging a table.
  const int64_t per_thread = (im.height + num_threads() - 1) / num_threads();
  parallel_for(im.height, std::max<int64_t>(64, per_thread), [&](int64_t y0, int64_t y1) {
    std::vector<int64_t> local(static_cast<size_t>(bins), 0);
    count_rows<T>(im, channel, y0, y1, bins, local.data());
    std::lock_guard<std::mutex> lock(merge);
    for (int64_t b = 0; b < bins; ++b) hist[b] += local[b];
  });
  return hist;
}

// The bin holding order statistic k and k's rank inside it.
std::pair<int64_t, int64_t> find_rank(const int64_t* hist, int64_t k) {
  int64_t cum = 0, b = 0;
  while (cum + hist[b] <= k) cum += hist[b++];
  return {b, k - cum};
}

// Exact order statistics of integer pixels from one histogram pass (256 or 65536 bins). A radix
// selection (high byte, then low byte) keeps the tables in L1 but reads the image twice, which
// measured slower on 2048x2048 frames.
template <typename T>
NormRange percentile_hist(const ImageView& im, int64_t channel, double p_low, double p_high) {
  const int64_t n = im.height * im.width;
  const PercentileIndex il = percentile_index(n, p_low), ih = percentile_index(n, p_high);
  const int64_t want[4] = {il.prev, il.next, ih.prev, ih.next};
  T value[4] = {};
  const std::vector<int64_t> hist = histogram<T>(im, channel, int64_t(1) << (8 * sizeof(T)));
  for (int i = 0; i < 4; ++i) value[i] = static_cast<T>(find_rank(hist.data(), want[i]).first);
  return make_range(percentile_lerp<T>(value[0], value[1], il.gamma), percentile_lerp<T>(value[2], value[3], ih.gamma));
}

NormRange percentile_select(std::vector<float>& v, double p_low, double p_high) {
  const int64_t n = static_cast<int64_t>(v.size());
  const PercentileIndex il = percentile_index(n, p_low), ih = percentile_index(n, p_high);
  auto at = [&](int64_t k) { return v.begin() + k; };
  std::nth_element(v.begin(), at(ih.prev), v.end());
  const float hi_prev = v[ih.prev];
  const float hi_next = ih.next > ih.prev ? *std::min_element(at(ih.prev + 1), v.end()) : hi_prev;
  std::nth_element(v.begin(), at(il.prev), at(ih.prev));  // elements before ih.prev are <= hi_prev
  float lo_prev, lo_next;
  if (il.prev == ih.prev) {
    lo_prev = hi_prev;
    lo_next = hi_next;
  } else {
    lo_prev = v[il.prev];
    lo_next = il.next > il.prev ? *std::min_element(at(il.prev + 1), at(ih.prev + 1)) : lo_prev;
  }
  return make_range(percentile_lerp<float>(lo_prev, lo_next, il.gamma),
                    percentile_lerp<float>(hi_prev, hi_next, ih.gamma));
}

void require_finite(const float* v, int64_t count, int64_t y) {
  for (int64_t x = 0; x < count; ++x) {
    if (!std::isfinite(v[x])) {
      fail(ErrorCode::InvalidArgument, "pixel (" + std::to_string(y) + ", " + std::to_string(x) +
                                           ") is not finite; normalization needs finite values (after dark/flat "
                                           "correction)");
    }
  }
}

}  // namespace

void load_corrected_row(const ImageView& im, int64_t channel, const float* dark, const float* flat, int64_t y,
                        float* out) {
  switch (im.dtype) {
    case DType::U8: load_row_t<uint8_t>(im, channel, dark, flat, y, out); return;
    case DType::U16: load_row_t<uint16_t>(im, channel, dark, flat, y, out); return;
    case DType::F32: load_row_t<float>(im, channel, dark, flat, y, out); return;
    default: fail(ErrorCode::InvalidArgument, "unsupported input dtype");
  }
}

NormRange percentile_range(const ImageView& image, int64_t channel, double p_low, double p_high, const float* dark,
                           const float* flat) {
  const ImageView im = checked_input(image);
  check_channel(im, channel);
  NormSpec spec;
  spec.p_low = p_low;
  spec.p_high = p_high;
  check_norm_spec(spec);
  if (!dark && !flat && im.dtype == DType::U8) return percentile_hist<uint8_t>(im, channel, p_low, p_high);
  if (!dark && !flat && im.dtype == DType::U16) return percentile_hist<uint16_t>(im, channel, p_low, p_high);
  std::vector<float> values(static_cast<size_t>(im.height * im.width));
  parallel_for(im.height, 64, [&](int64_t y0, int64_t y1) {
    for (int64_t y = y0; y < y1; ++y) {
      float* row = values.data() + y * im.width;
      load_corrected_row(im, channel, dark, flat, y, row);
      require_finite(row, im.width, y);
    }
  });
  return percentile_select(values, p_low, p_high);
}

NormRange minmax_range(const ImageView& image, int64_t channel, const float* dark, const float* flat) {
  const ImageView im = checked_input(image);
  check_channel(im, channel);
  std::mutex merge;
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  parallel_for(im.height, 64, [&](int64_t y0, int64_t y1) {
    std::vector<float> row(static_cast<size_t>(im.width));
    float l = std::numeric_limits<float>::infinity(), h = -l;
    for (int64_t y = y0; y < y1; ++y) {
      load_corrected_row(im, channel, dark, flat, y, row.data());
      if (im.dtype == DType::F32 || dark || flat) require_finite(row.data(), im.width, y);
      for (int64_t x = 0; x < im.width; ++x) {
        l = std::min(l, row[x]);
        h = std::max(h, row[x]);
      }
    }
    std::lock_guard<std::mutex> lock(merge);
    lo = std::min(lo, l);
    hi = std::max(hi, h);
  });
  return make_range(lo, hi);
}

NormRange compute_range(const ImageView& image, int64_t channel, const NormSpec& spec, const float* dark,
                        const float* flat) {
  check_norm_spec(spec);
  switch (spec.mode) {
    case NormMode::Percentile: return percentile_range(image, channel, spec.p_low, spec.p_high, dark, flat);
    case NormMode::MinMax: return minmax_range(image, channel, dark, flat);
    case NormMode::Fixed: return make_range(spec.lo, spec.hi);
  }
  fail(ErrorCode::InvalidArgument, "unknown normalization mode");
}

}  // namespace ifrt
