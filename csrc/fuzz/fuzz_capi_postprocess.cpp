// libFuzzer target: the C ABI's array postprocessing calls (ifrt_softmax, ifrt_blend_tiles,
// ifrt_upsample_quality_map) with random shapes, parameters and values, as vendor software calls them.
//
// These calls take packed float arrays whose sizes follow from the shape arguments, so the harness
//  - allocates every input and output to exactly the bytes the shape names (AddressSanitizer sees any
//    access past them) and checks the answer: a status, never a crash, and, on success, outputs that
//    the math allows (softmax rows are probabilities summing to 1; a blend of tiles and a bilinear
//    upsampling are convex combinations, so they stay within the inputs' range); or
//  - for shapes whose byte count exceeds 2^63 (no buffer can hold them), passes small dummy buffers
//    and requires a refusal before any element is touched.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "fuzz_common.h"
#include "ifrt/ifrt.h"

namespace {

using ifrt_fuzz::check_failure;
using ifrt_fuzz::fuzz_size;
using ifrt_fuzz::int128;
using ifrt_fuzz::violation;

// Product of sizes in 128 bits, saturating far past any buffer; negative when any size is below 1.
int128 elements(std::initializer_list<int64_t> dims) {
  int128 n = 1;
  for (const int64_t d : dims) {
    if (d < 1) return -1;
    const int128 limit = int128(1) << 100;
    n = n > limit / d ? limit : n * d;
  }
  return n;
}

constexpr int128 kMaxElements = int128(1) << 20;  // what the harness allocates
constexpr int128 kAddressable = int128(std::numeric_limits<int64_t>::max()) / 4;  // floats in 2^63 bytes

// Floats drawn from the input: mostly moderate values, sometimes extremes and non-finite ones.
std::vector<float> fuzz_floats(FuzzedDataProvider& in, size_t count, bool finite_only) {
  std::vector<float> v(count + 1);  // + 1: never a zero-sized allocation
  for (size_t i = 0; i < count; ++i) {
    switch (in.ConsumeIntegralInRange<int>(0, 15)) {
      case 0: v[i] = finite_only ? 1e30f : std::numeric_limits<float>::infinity(); break;
      case 1: v[i] = finite_only ? -1e30f : std::numeric_limits<float>::quiet_NaN(); break;
      case 2: v[i] = finite_only ? in.ConsumeFloatingPointInRange<float>(-1e30f, 1e30f) : in.ConsumeFloatingPoint<float>(); break;
      default: v[i] = in.ConsumeFloatingPointInRange<float>(-100.0f, 100.0f);
    }
  }
  return v;
}

// The first `out_count` outputs of a convex combination (blending, bilinear resampling) must lie within the
// range of the first `in_count` inputs, up to float rounding.
void require_convex(const std::vector<float>& in, size_t in_count, const std::vector<float>& out, size_t out_count,
                    const char* what) {
  const auto [lo, hi] = std::minmax_element(in.begin(), in.begin() + long(in_count));
  const double slack = 1e-5 * std::max(1.0, std::max(std::fabs(double(*lo)), std::fabs(double(*hi))));
  for (size_t i = 0; i < out_count; ++i) {
    if (!(out[i] >= *lo - slack && out[i] <= *hi + slack)) violation(what);
  }
}

void fuzz_softmax(FuzzedDataProvider& in) {
  const int64_t n = fuzz_size(in, 16), k = fuzz_size(in, 16);
  const float temperature = in.ConsumeBool() ? in.ConsumeFloatingPoint<float>()
                                             : in.ConsumeFloatingPointInRange<float>(0.05f, 10.0f);
  const int128 count = n == 0 ? 0 : elements({n, k});
  const bool valid_shape = n >= 0 && k >= 1;
  if (valid_shape && count > kAddressable) {
    float dummy[4] = {};
    const ifrt_status status = ifrt_softmax(dummy, n, k, temperature, dummy);
    check_failure(status);
    if (status == IFRT_OK) violation("ifrt_softmax accepted logits no buffer can hold");
    return;
  }
  if (valid_shape && count > kMaxElements) return;  // valid, too large to allocate here
  const size_t size = count > 0 ? size_t(count) : 0;
  const bool finite = in.ConsumeBool();
  std::vector<float> logits = fuzz_floats(in, size, finite), probs(size + 1);
  const ifrt_status status = ifrt_softmax(in.ConsumeIntegralInRange<int>(0, 31) ? logits.data() : nullptr, n, k,
                                          temperature, probs.data());
  check_failure(status);
  if (!valid_shape && status == IFRT_OK) violation("ifrt_softmax accepted an invalid shape");
  if (status != IFRT_OK || !finite || !(temperature > 0) || !std::isfinite(temperature)) return;
  for (int64_t i = 0; i < n; ++i) {
    double sum = 0;
    for (int64_t j = 0; j < k; ++j) {
      const float p = probs[size_t(i * k + j)];
      if (!(p >= 0.0f && p <= 1.0f)) violation("ifrt_softmax: a probability outside [0, 1] for finite logits");
      sum += p;
    }
    if (std::fabs(sum - 1.0) > 1e-4 * double(k)) violation("ifrt_softmax: a row does not sum to 1");
  }
}

int64_t tile_count(int64_t frame, int64_t tile, int64_t overlap) {  // as ifrt_preprocess cuts a frame
  if (frame <= tile) return 1;
  const int64_t step = tile - overlap;
  return (frame - tile + step - 1) / step + 1;
}

void fuzz_blend(FuzzedDataProvider& in) {
  const int64_t fh = fuzz_size(in, 96), fw = fuzz_size(in, 96);
  const int64_t th = in.ConsumeBool() ? fuzz_size(in, 96) : fh, tw = in.ConsumeBool() ? fuzz_size(in, 96) : fw;
  const int64_t overlap = fuzz_size(in, 32);
  const int64_t oh = in.ConsumeBool() ? fh : fuzz_size(in, 96), ow = in.ConsumeBool() ? fw : fuzz_size(in, 96);
  // The arguments the library must accept: a tile that fits, an overlap leaving a positive step.
  const bool valid = fh >= 1 && fw >= 1 && th >= 1 && tw >= 1 && th <= fh && tw <= fw && overlap >= 0 &&
                     (fh == th || overlap < th) && (fw == tw || overlap < tw) && oh >= 1 && ow >= 1 && oh <= fh &&
                     ow <= fw;
  int128 tiles = -1;
  if (valid) tiles = elements({tile_count(fh, th, overlap), tile_count(fw, tw, overlap), th, tw});
  if (valid && tiles > kAddressable) {
    float dummy[4] = {};
    const ifrt_status status = ifrt_blend_tiles(dummy, fh, fw, th, tw, overlap, dummy, oh, ow);
    check_failure(status);
    if (status == IFRT_OK) violation("ifrt_blend_tiles accepted tiles no buffer can hold");
    return;
  }
  if (valid && (tiles > kMaxElements || elements({oh, ow}) > kMaxElements)) return;
  const size_t tile_elements = valid ? size_t(tiles) : 16, out_elements = valid ? size_t(oh * ow) : 16;
  std::vector<float> input = fuzz_floats(in, tile_elements, true), out(out_elements + 1);
  const ifrt_status status = ifrt_blend_tiles(input.data(), fh, fw, th, tw, overlap, out.data(), oh, ow);
  check_failure(status);
  if (!valid && status == IFRT_OK) violation("ifrt_blend_tiles accepted an invalid tile grid");
  if (status != IFRT_OK) {
    if (valid) violation("ifrt_blend_tiles refused a valid tile grid");
    return;
  }
  require_convex(input, tile_elements, out, out_elements, "ifrt_blend_tiles: output outside the tiles' range");
}

void fuzz_upsample(FuzzedDataProvider& in) {
  const int64_t mh = fuzz_size(in, 24), mw = fuzz_size(in, 24), h = fuzz_size(in, 160), w = fuzz_size(in, 160);
  const int128 map_elements = elements({mh, mw}), out_elements = elements({h, w});
  const bool valid = map_elements > 0 && out_elements > 0;
  if (valid && (map_elements > kAddressable || out_elements > kAddressable)) {
    float dummy[4] = {};
    const ifrt_status status = ifrt_upsample_quality_map(dummy, mh, mw, dummy, h, w);
    check_failure(status);
    if (status == IFRT_OK) violation("ifrt_upsample_quality_map accepted sizes no buffer can hold");
    return;
  }
  if (valid && (map_elements > kMaxElements || out_elements > kMaxElements)) return;
  const size_t map_size = valid ? size_t(map_elements) : 16, out_size = valid ? size_t(out_elements) : 16;
  std::vector<float> map = fuzz_floats(in, map_size, true), out(out_size + 1);
  const ifrt_status status = ifrt_upsample_quality_map(map.data(), mh, mw, out.data(), h, w);
  check_failure(status);
  if (!valid && status == IFRT_OK) violation("ifrt_upsample_quality_map accepted an empty size");
  if (status != IFRT_OK) {
    if (valid) violation("ifrt_upsample_quality_map refused valid sizes");
    return;
  }
  require_convex(map, map_size, out, out_size, "ifrt_upsample_quality_map: output outside the map's range");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  switch (in.ConsumeIntegralInRange<int>(0, 2)) {
    case 0: fuzz_softmax(in); break;
    case 1: fuzz_blend(in); break;
    default: fuzz_upsample(in); break;
  }
  return 0;
}
