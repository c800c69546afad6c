// Intensity normalization (the numpy reference is runtime/normalize.py; both must agree bit for bit).
//
//   out = (x - lo) * scale        in float32, lo and scale rounded to float32 first
//   scale = 1 / (hi - lo)         or 0 when hi - lo <= kFlatEps (a flat image maps to zeros)
//
// lo, hi come from the mode: percentiles p_low..p_high of all pixels (numpy.percentile,
// method="linear"; default 1 and 99.8, CSBDeep-style), min..max, or fixed values.
// Inverse (deblurred output back to input units): x = y * (float)(hi - lo) + lo, in float32,
// unfused, clamped to +-FLT_MAX (a value near the float32 limit times the span must not become
// infinity; NaN stays NaN); integer outputs are then rounded to nearest even and clamped to the
// dtype's range.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "core/common.h"
#include "core/image.h"

namespace ifrt {

constexpr double kFlatEps = 1e-6;

enum class NormMode : int { Percentile = 0, MinMax = 1, Fixed = 2 };

struct NormSpec {
  NormMode mode = NormMode::Percentile;
  double p_low = 1.0;  // percentiles, 0 <= p_low < p_high <= 100
  double p_high = 99.8;
  double lo = 0.0;  // fixed range (NormMode::Fixed)
  double hi = 1.0;
};

// The range found for one image and the float32 affine map derived from it.
struct NormRange {
  double lo = 0.0;
  double hi = 1.0;
  float lo32 = 0.0f;
  float scale32 = 1.0f;
};

IFRT_HD float norm_scale(double lo, double hi) {
  const double span = hi - lo;
  return span > kFlatEps ? static_cast<float>(1.0 / span) : 0.0f;
}

IFRT_HD float normalize_value(float v, float lo, float scale) { return fmul(fsub(v, lo), scale); }

// Clamped in the per-element function so that the CPU and CUDA paths agree; the comparisons are false for
// NaN, which passes through (a NaN output is the model's, and a float32 image can hold it).
IFRT_HD float denormalize_value(float y, float lo, float span) {
  const float x = fadd(fmul(y, span), lo);
  return x > FLT_MAX ? FLT_MAX : (x < -FLT_MAX ? -FLT_MAX : x);
}

// Round to nearest even and clamp into [lo, hi]; NaN gives 0.
IFRT_HD float round_clamp(float v, float lo, float hi) {
  if (!(v == v)) return 0.0f;
  const float r = rintf(v);
  return r < lo ? lo : (r > hi ? hi : r);
}

// numpy "linear" percentile: virtual index i = (n - 1) * q with q = p/100 (float64), the two order
// statistics around it (clipped to the last element) and the fractional weight gamma.
struct PercentileIndex {
  int64_t prev = 0;
  int64_t next = 0;
  double gamma = 0.0;
};

IFRT_HD PercentileIndex percentile_index(int64_t n, double p) {
  const double q = p / 100.0;
  const double v = dmul(static_cast<double>(n - 1), q);
  PercentileIndex r;
  const double f = floor(v);
  r.gamma = v - f;
  if (v >= static_cast<double>(n - 1)) {
    r.prev = r.next = n - 1;
  } else if (v < 0) {
    r.prev = r.next = 0;
  } else {
    r.prev = static_cast<int64_t>(f);
    r.next = r.prev + 1;
  }
  return r;
}

// numpy's _lerp: the difference is taken in the element type, the interpolation in float64, and
// from the upper value when gamma >= 0.5.
template <typename T>
IFRT_HD double percentile_lerp(T a, T b, double gamma) {
  const double d = static_cast<double>(static_cast<T>(b - a));
  return gamma >= 0.5 ? dsub(static_cast<double>(b), dmul(d, 1.0 - gamma))
                      : dadd(static_cast<double>(a), dmul(d, gamma));
}

IFRT_HD float correct_value(float raw, const float* dark, const float* flat, int64_t i) {
  float v = raw;
  if (dark) v = fsub(v, dark[i]);
  if (flat) v = v / flat[i];
  return v;
}

// ---- CPU entry points -------------------------------------------------------------------------

// Checks p_low/p_high or the fixed range; throws Error(InvalidArgument) with the values.
void check_norm_spec(const NormSpec& spec);

// Finishes a range: rejects non-finite or reversed values and derives lo32/scale32.
NormRange make_range(double lo, double hi);

// Percentiles of channel `channel` of an image (after optional dark/flat correction, packed
// float32 planes of the image's size): exact histogram selection for uint8/uint16, nth_element
// for float32 and corrected values. Float input must be finite.
NormRange percentile_range(const ImageView& image, int64_t channel, double p_low, double p_high,
                           const float* dark = nullptr, const float* flat = nullptr);
NormRange minmax_range(const ImageView& image, int64_t channel, const float* dark = nullptr,
                       const float* flat = nullptr);
NormRange compute_range(const ImageView& image, int64_t channel, const NormSpec& spec,
                        const float* dark = nullptr, const float* flat = nullptr);

// Reads row y of channel `channel` as corrected float values into out[0..width).
void load_corrected_row(const ImageView& image, int64_t channel, const float* dark, const float* flat,
                        int64_t y, float* out);

}  // namespace ifrt
