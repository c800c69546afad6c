// Resampling, padding and tiling geometry shared by the CPU loops and the CUDA kernels.
//
// Resize is separable. For destination index d on an axis of n source samples, scale = n / n_out:
//  - bilinear (OpenCV INTER_LINEAR, pixel centres aligned): f = (d + 0.5)*scale - 0.5 (float64,
//    then float32), s = floor(f), t = f - s, clamped to the edges (s < 0 -> s=0,t=0;
//    s >= n-1 -> s=n-1,t=0); value = v[s] + t*(v[s+1] - v[s]).
//  - area (OpenCV INTER_AREA when shrinking): the box [d*scale, (d+1)*scale) clipped to [0, n);
//    source sample i has weight |[i, i+1) ∩ box| / |box|. An axis that is not shrunk uses bilinear.
// 2-D value = sum_j wy_j * (sum_i wx_i * v[y_j][x_i]) in float32, rows inner, unfused, so the CPU and
// GPU paths agree bit for bit.
//
// Padding beyond the resized image: zero (0 in normalized units), edge (repeat the last sample), or
// reflect (numpy "reflect": ... 2 1 | 0 1 2 ... n-1 | n-2 ...; a 1-sample axis repeats).
//
// Tiles of size t with overlap o over a frame of size n: step = t - o, origins
// min(i*step, n - t) for i < count, count = 1 when n <= t else ceil((n - t) / step) + 1, so the
// last tile ends at the frame edge.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/common.h"

namespace ifrt {

enum class ResizeMode : int { None = 0, Bilinear = 1, Area = 2 };
enum class PadMode : int { Zero = 0, Edge = 1, Reflect = 2 };

// ---- separable taps ------------------------------------------------------------------------------

struct AxisTaps {
  int64_t first = 0;  // first source index
  int count = 1;      // number of taps
  // bilinear: the weight of `first` is 1 - t, of first + 1 is t
  float t = 0.0f;
  // area: the box in source coordinates
  double box_begin = 0.0;
  double box_end = 0.0;
  bool area = false;
};

IFRT_HD AxisTaps axis_taps(ResizeMode mode, int64_t d, int64_t n_src, int64_t n_dst) {
  AxisTaps a;
  const double scale = static_cast<double>(n_src) / static_cast<double>(n_dst);
  if (mode == ResizeMode::Area && n_src > n_dst) {
    a.area = true;
    a.box_begin = dmul(static_cast<double>(d), scale);
    double e = dmul(static_cast<double>(d + 1), scale);
    a.box_end = e < static_cast<double>(n_src) ? e : static_cast<double>(n_src);
    a.first = static_cast<int64_t>(floor(a.box_begin));
    int64_t last = static_cast<int64_t>(ceil(a.box_end)) - 1;
    if (last >= n_src) last = n_src - 1;
    if (last < a.first) last = a.first;
    a.count = static_cast<int>(last - a.first + 1);
    return a;
  }
  float f = static_cast<float>(dsub(dmul(static_cast<double>(d) + 0.5, scale), 0.5));
  float s = floorf(f);
  float t = fsub(f, s);
  int64_t si = static_cast<int64_t>(s);
  if (si < 0) {
    si = 0;
    t = 0.0f;
  }
  if (si >= n_src - 1) {
    si = n_src - 1;
    t = 0.0f;
  }
  a.first = si;
  a.t = t;
  a.count = t > 0.0f ? 2 : 1;
  return a;
}

// Weight of tap k (0 <= k < count).
IFRT_HD float axis_weight(const AxisTaps& a, int k) {
  if (!a.area) return k == 0 ? fsub(1.0f, a.t) : a.t;
  const double i0 = static_cast<double>(a.first + k);
  const double b = i0 > a.box_begin ? i0 : a.box_begin;
  const double e = i0 + 1.0 < a.box_end ? i0 + 1.0 : a.box_end;
  const double w = e > b ? (e - b) / (a.box_end - a.box_begin) : 0.0;
  return static_cast<float>(w);
}

// ---- padding -------------------------------------------------------------------------------------

// Source index for padded position i on an axis of n samples; -1 means "zero".
IFRT_HD int64_t pad_index(PadMode mode, int64_t i, int64_t n) {
  if (i < n) return i;
  if (mode == PadMode::Zero) return -1;
  if (mode == PadMode::Edge || n == 1) return n - 1;
  const int64_t period = 2 * (n - 1);
  int64_t r = i % period;
  return r < n ? r : period - r;
}

// ---- tiling --------------------------------------------------------------------------------------

IFRT_HD int64_t tile_count(int64_t n, int64_t tile, int64_t overlap) {
  if (n <= tile) return 1;
  const int64_t step = tile - overlap;
  return (n - tile + step - 1) / step + 1;
}

IFRT_HD int64_t tile_origin(int64_t i, int64_t n, int64_t tile, int64_t overlap) {
  if (n <= tile) return 0;
  const int64_t o = i * (tile - overlap);
  return o < n - tile ? o : n - tile;
}

}  // namespace ifrt

namespace ifrt {

// The 2-D separable resample at one destination pixel: src(y, x) returns the source value. The CPU
// row loop in preprocess.cpp performs the same operations in the same order with cached weights.
template <typename Src>
IFRT_HD float resample_value(const Src& src, const AxisTaps& ty, const AxisTaps& tx) {
  float acc = 0.0f;
  for (int j = 0; j < ty.count; ++j) {
    float row = 0.0f;
    for (int i = 0; i < tx.count; ++i) row = fadd(row, fmul(axis_weight(tx, i), src(ty.first + j, tx.first + i)));
    acc = fadd(acc, fmul(axis_weight(ty, j), row));
  }
  return acc;
}

}  // namespace ifrt
