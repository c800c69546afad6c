// CPU kernels against hand-computed values and naive references: percentiles, half conversion,
// preprocess geometry, blending, inverse normalization, softmax, focus metrics.
#include <algorithm>
#include <cmath>
#include <string>
#include <cstring>
#include <vector>

#include "check.h"
#include "core/focus.h"
#include "core/half.h"
#include "core/normalize.h"
#include "core/parallel.h"
#include "core/postprocess.h"
#include "core/preprocess.h"

using namespace ifrt;

namespace {

template <typename T>
ImageView view(const std::vector<T>& v, int64_t h, int64_t w, DType t, int64_t c = 1) {
  ImageView im;
  im.data = v.data();
  im.dtype = t;
  im.height = h;
  im.width = w;
  im.channels = c;
  return im;
}

bool throws_invalid(void (*fn)()) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code() == ErrorCode::InvalidArgument;
  }
  return false;
}

void test_percentile_index_matches_numpy_linear() {
  const PercentileIndex a = percentile_index(100, 1.0);  // (n-1) * 0.01 = 0.99
  CHECK(a.prev == 0 && a.next == 1);
  CHECK_NEAR(a.gamma, 0.99, 1e-12);
  const PercentileIndex b = percentile_index(100, 100.0);
  CHECK(b.prev == 99 && b.next == 99);
  const PercentileIndex c = percentile_index(1, 50.0);
  CHECK(c.prev == 0 && c.next == 0);
}

void test_percentiles_of_0_to_99_histogram_and_select_agree() {
  std::vector<uint16_t> u(100);
  std::vector<float> f(100);
  for (int i = 0; i < 100; ++i) u[i] = f[i] = static_cast<float>((i * 37) % 100);  // a permutation of 0..99
  const NormRange ru = percentile_range(view(u, 10, 10, DType::U16), 0, 1.0, 99.8);
  const NormRange rf = percentile_range(view(f, 10, 10, DType::F32), 0, 1.0, 99.8);
  CHECK_NEAR(ru.lo, 0.99, 1e-12);    // numpy.percentile(range(100), 1)
  CHECK_NEAR(ru.hi, 98.802, 1e-12);  // numpy.percentile(range(100), 99.8)
  CHECK(ru.lo == rf.lo && ru.hi == rf.hi);
  CHECK(ru.scale32 == static_cast<float>(1.0 / (ru.hi - ru.lo)));
}

void test_percentiles_of_two_pixels_use_unsorted_ranks() {
  // p_low = 0 needs ranks 0 and 1, p_high = 51 needs ranks 0 and 1 again: 159 + 0.51 * 53
  std::vector<uint8_t> u = {212, 159};
  const NormRange r = percentile_range(view(u, 1, 2, DType::U8), 0, 0.0, 51.0);
  CHECK(r.lo == 159.0);
  CHECK_NEAR(r.hi, 186.03, 1e-12);
}

void test_flat_image_maps_to_zero() {
  std::vector<uint8_t> u(12, 7);
  const NormRange r = percentile_range(view(u, 3, 4, DType::U8), 0, 1.0, 99.8);
  CHECK(r.lo == 7 && r.hi == 7 && r.scale32 == 0.0f);
}

void test_half_conversion_rounds_to_nearest_even() {
  CHECK(float_to_half(1.0f) == 0x3c00);
  CHECK(float_to_half(-2.0f) == 0xc000);
  CHECK(float_to_half(0.1f) == 0x2e66);
  CHECK(float_to_half(65504.0f) == 0x7bff);
  CHECK(float_to_half(65519.0f) == 0x7bff);
  CHECK(float_to_half(65520.0f) == 0x7c00);
  CHECK(float_to_half(5.9604645e-08f) == 0x0001);  // smallest subnormal
  CHECK(float_to_half(2.9802322e-08f) == 0x0000);  // half of it ties to even zero
  CHECK(float_to_half(NAN) == 0x7e00);
  CHECK(float_to_half(1.0f + 1.0f / 2048.0f) == 0x3c00);  // tie, even stays
  CHECK(float_to_half(1.0f + 3.0f / 2048.0f) == 0x3c02);  // tie, odd rounds up
  for (uint32_t h = 0; h < 0x7c00; ++h) CHECK(float_to_half(half_to_float(static_cast<uint16_t>(h))) == h);
}

void test_reflect_padding_and_tile_origins() {
  CHECK(pad_index(PadMode::Reflect, 3, 3) == 1);
  CHECK(pad_index(PadMode::Reflect, 4, 3) == 0);
  CHECK(pad_index(PadMode::Reflect, 5, 3) == 1);
  CHECK(pad_index(PadMode::Reflect, 9, 1) == 0);
  CHECK(pad_index(PadMode::Edge, 9, 3) == 2);
  CHECK(pad_index(PadMode::Zero, 3, 3) == -1);
  CHECK(tile_count(64, 32, 8) == 3);
  CHECK(tile_origin(0, 64, 32, 8) == 0 && tile_origin(1, 64, 32, 8) == 24 && tile_origin(2, 64, 32, 8) == 32);
  CHECK(tile_count(32, 32, 8) == 1);
}

void test_preprocess_pads_reflect_and_normalizes_fixed() {
  std::vector<uint8_t> img = {0, 100, 200};  // 1 x 3
  PreprocessOptions o;
  o.norm.mode = NormMode::Fixed;
  o.norm.lo = 0;
  o.norm.hi = 200;
  o.pad_multiple = 4;
  const PreprocessPlan p = plan_preprocess(view(img, 1, 3, DType::U8), o);
  CHECK(p.frame_height == 4 && p.frame_width == 4 && p.batch() == 1);
  std::vector<float> out(16);
  preprocess(view(img, 1, 3, DType::U8), o, out.data(), out.size() * 4);
  const float expect[4] = {0.0f, 0.5f, 1.0f, 0.5f};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) CHECK(out[y * 4 + x] == expect[x]);
}

void test_preprocess_tiles_with_overlap_cover_the_frame() {
  std::vector<float> img(64 * 64);
  for (size_t i = 0; i < img.size(); ++i) img[i] = static_cast<float>(i);
  PreprocessOptions o;
  o.norm.mode = NormMode::Fixed;
  o.norm.lo = 0;
  o.norm.hi = 1;
  o.tile_height = o.tile_width = 32;
  o.tile_overlap = 8;
  const PreprocessPlan p = plan_preprocess(view(img, 64, 64, DType::F32), o);
  CHECK(p.tiles_y == 3 && p.tiles_x == 3 && p.tile_height == 32);
  std::vector<float> tiles(static_cast<size_t>(p.elements()));
  preprocess(view(img, 64, 64, DType::F32), o, tiles.data(), tiles.size() * 4);
  // tile (1, 2) starts at (24, 32)
  CHECK(tiles[(1 * 3 + 2) * 32 * 32 + 0] == 24 * 64 + 32);
  std::vector<float> frame(64 * 64);
  blend_tiles(tiles.data(), make_tile_grid(64, 64, 32, 32, 8), frame.data(), 64, 64);
  double worst = 0;
  for (size_t i = 0; i < img.size(); ++i) worst = std::fmax(worst, std::fabs(frame[i] - img[i]) / (1 + img[i]));
  CHECK(worst < 1e-6);
}

void test_blend_ramps_cross_fade_between_constant_tiles() {
  // Two 1x4 tiles over a 1x6 frame with overlap 2: origins 0 and 2; values 0 and 1.
  std::vector<float> tiles = {0, 0, 0, 0, 1, 1, 1, 1};
  std::vector<float> frame(6);
  blend_tiles(tiles.data(), make_tile_grid(1, 6, 1, 4, 2), frame.data(), 1, 6);
  // x=2: w0 = (4-2-0.5)/2 = 0.75, w1 = 0.25 -> 0.25; x=3: w0 = 0.25, w1 = 0.75 -> 0.75
  const float expect[6] = {0, 0, 0.25f, 0.75f, 1, 1};
  for (int x = 0; x < 6; ++x) CHECK_NEAR(frame[x], expect[x], 1e-7);
}

void test_denormalize_rounds_and_clamps() {
  std::vector<float> y = {-0.1f, 0.0f, 0.5f, 1.0f, 1.5f, NAN};
  std::vector<uint8_t> out(6);
  denormalize(y.data(), DType::F32, 6, 1, 6, 10.0, 210.0, out.data(), DType::U8);
  const uint8_t expect[6] = {0, 10, 110, 210, 255, 0};  // -0.1 -> -10 -> 0; 1.5 -> 310 -> 255
  for (int i = 0; i < 6; ++i) CHECK(out[i] == expect[i]);
}

void test_softmax_with_temperature() {
  const float logits[4] = {0.0f, std::log(2.0f), 0.0f, 2.0f * std::log(2.0f)};
  float p[4];
  softmax(logits, 1, 2, 1.0f, p);
  CHECK_NEAR(p[0], 1.0 / 3, 1e-7);
  CHECK_NEAR(p[1], 2.0 / 3, 1e-7);
  softmax(logits + 2, 1, 2, 2.0f, p);  // T = 2 halves the logits
  CHECK_NEAR(p[0], 1.0 / 3, 1e-7);
  CHECK_NEAR(p[1], 2.0 / 3, 1e-7);
}

// Naive double reference of core/focus.h's definitions.
FocusMetrics naive_focus(const std::vector<float>& I, int64_t h, int64_t w) {
  auto at = [&](int64_t y, int64_t x) { return static_cast<double>(I[reflect101(y, h) * w + reflect101(x, w)]); };
  double sl = 0, sl2 = 0, sg = 0, si = 0, si2 = 0, sb = 0, sv = 0, pairs = 0;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const double l = at(y - 1, x) + at(y + 1, x) + at(y, x - 1) + at(y, x + 1) - 4 * at(y, x);
      const double gx = at(y - 1, x + 1) + 2 * at(y, x + 1) + at(y + 1, x + 1) - at(y - 1, x - 1) - 2 * at(y, x - 1) -
                        at(y + 1, x - 1);
      const double gy = at(y + 1, x - 1) + 2 * at(y + 1, x) + at(y + 1, x + 1) - at(y - 1, x - 1) - 2 * at(y - 1, x) -
                        at(y - 1, x + 1);
      sl += l, sl2 += l * l, sg += gx * gx + gy * gy, si += at(y, x), si2 += at(y, x) * at(y, x);
      if (x + 2 < w) sb += std::pow(at(y, x + 2) - at(y, x), 2), sv += at(y, x) * (at(y, x + 1) - at(y, x + 2)), ++pairs;
      if (y + 2 < h) sb += std::pow(at(y + 2, x) - at(y, x), 2), sv += at(y, x) * (at(y + 1, x) - at(y + 2, x)), ++pairs;
    }
  const double n = static_cast<double>(h * w);
  FocusMetrics m;
  m.var_laplacian = sl2 / n - (sl / n) * (sl / n);
  m.tenengrad = sg / n;
  m.normalized_variance = (si2 / n - (si / n) * (si / n)) / (si / n);
  m.brenner = pairs ? sb / pairs : 0;
  m.vollath_f4 = pairs ? sv / pairs : 0;
  return m;
}

void check_focus_close(const FocusMetrics& a, const FocusMetrics& b) {
  CHECK_NEAR(a.var_laplacian, b.var_laplacian, 1e-9 * (1 + std::fabs(b.var_laplacian)));
  CHECK_NEAR(a.tenengrad, b.tenengrad, 1e-9 * (1 + std::fabs(b.tenengrad)));
  CHECK_NEAR(a.brenner, b.brenner, 1e-9 * (1 + std::fabs(b.brenner)));
  CHECK_NEAR(a.normalized_variance, b.normalized_variance, 1e-9 * (1 + std::fabs(b.normalized_variance)));
  CHECK_NEAR(a.vollath_f4, b.vollath_f4, 1e-9 * (1 + std::fabs(b.vollath_f4)));
}

void test_focus_matches_naive_reference_globally_and_per_tile() {
  for (auto [h, w] : {std::pair<int64_t, int64_t>{37, 53}, {1, 9}, {9, 1}, {1, 1}, {2, 2}}) {
    std::vector<float> img(static_cast<size_t>(h * w));
    for (int64_t i = 0; i < h * w; ++i) img[i] = static_cast<float>((i * 7919) % 251) + 3.0f;
    const FocusResult r = focus(view(img, h, w, DType::F32), 0, 16, 16);
    check_focus_close(r.global, naive_focus(img, h, w));
    CHECK(r.tiles_y == (h + 15) / 16 && r.tiles_x == (w + 15) / 16);
  }
  // One tile of a 16x16 image is the image.
  std::vector<float> img(256);
  for (int i = 0; i < 256; ++i) img[i] = static_cast<float>((i * 31) % 17);
  const FocusResult r = focus(view(img, 16, 16, DType::F32), 0, 16, 16);
  check_focus_close(r.tiles[0], r.global);
}

void test_focus_is_deterministic_across_thread_counts() {
  std::vector<uint16_t> img(300 * 200);
  for (size_t i = 0; i < img.size(); ++i) img[i] = static_cast<uint16_t>((i * 2654435761u) >> 20);
  set_num_threads(1);
  const FocusResult a = focus(view(img, 300, 200, DType::U16));
  set_num_threads(2);
  const FocusResult b = focus(view(img, 300, 200, DType::U16));
  set_num_threads(0);
  check_focus_close(a.global, b.global);
}

void test_parallel_for_covers_every_index_once_and_rethrows() {
  set_num_threads(2);
  std::vector<int> hits(1000, 0);
  parallel_for(1000, 7, [&](int64_t a, int64_t b) {
    for (int64_t i = a; i < b; ++i) ++hits[i];
    parallel_for(10, 1, [&](int64_t, int64_t) {});  // nested calls run inline
  });
  CHECK(std::count(hits.begin(), hits.end(), 1) == 1000);
  bool rethrown = false;
  try {
    parallel_for(100, 1, [](int64_t a, int64_t) {
      if (a == 0) fail(ErrorCode::Internal, "chunk 0 failed");
    });
  } catch (const Error& e) {
    rethrown = std::string(e.what()) == "chunk 0 failed";
  }
  CHECK(rethrown);
  set_num_threads(0);
}

void test_bad_inputs_throw_invalid_argument() {
  CHECK(throws_invalid([] {
    ImageView im;  // null data
    checked_input(im);
  }));
  CHECK(throws_invalid([] {
    std::vector<uint16_t> v(4);
    ImageView im = view(v, 2, 2, DType::U16);
    im.row_stride = 3;  // odd for uint16
    checked_input(im);
  }));
  CHECK(throws_invalid([] {
    std::vector<uint16_t> v(4);
    percentile_range(view(v, 2, 2, DType::U16), 0, 50.0, 10.0);
  }));
  CHECK(throws_invalid([] {
    std::vector<float> v = {1.0f, NAN};
    percentile_range(view(v, 1, 2, DType::F32), 0, 1.0, 99.0);
  }));
  CHECK(throws_invalid([] {
    std::vector<uint8_t> v(6);
    PreprocessOptions o;
    o.channel = 3;
    plan_preprocess(view(v, 1, 2, DType::U8, 3), o);
  }));
  CHECK(throws_invalid([] {
    std::vector<uint8_t> v(4);
    std::vector<float> out(1);
    PreprocessOptions o;
    preprocess(view(v, 2, 2, DType::U8), o, out.data(), 4);  // needs 32x32 floats
  }));
  CHECK(throws_invalid([] {
    float l[2] = {0, 1}, p[2];
    softmax(l, 1, 2, 0.0f, p);
  }));
}

}  // namespace

int main() {
  test_percentile_index_matches_numpy_linear();
  test_percentiles_of_0_to_99_histogram_and_select_agree();
  test_percentiles_of_two_pixels_use_unsorted_ranks();
  test_flat_image_maps_to_zero();
  test_half_conversion_rounds_to_nearest_even();
  test_reflect_padding_and_tile_origins();
  test_preprocess_pads_reflect_and_normalizes_fixed();
  test_preprocess_tiles_with_overlap_cover_the_frame();
  test_blend_ramps_cross_fade_between_constant_tiles();
  test_denormalize_rounds_and_clamps();
  test_softmax_with_temperature();
  test_focus_matches_naive_reference_globally_and_per_tile();
  test_focus_is_deterministic_across_thread_counts();
  test_parallel_for_covers_every_index_once_and_rethrows();
  test_bad_inputs_throw_invalid_argument();
  return TEST_MAIN_RESULT();
}
