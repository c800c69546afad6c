// libFuzzer target: image descriptors with random dims, strides, channels and dtypes, with random
// options, into the C ABI's pixel entry points (ifrt_preprocess_shape_of, ifrt_preprocess,
// ifrt_focus_*, ifrt_denormalize), exactly as vendor software calls them.
//
// The harness owns a heap buffer of exactly the fuzzed pixel bytes (so AddressSanitizer sees any read
// past it) and only hands the library descriptors that either
//  - describe memory inside that buffer: every call must return a status, never crash, and fill the
//    output it promised and no more (outputs are allocated to the byte); or
//  - could describe no real buffer at all (an extent past 2^63 bytes, or rows at negative offsets):
//    the library must refuse them before reading a pixel.
// Descriptors that are plausible but larger than the buffer go only to the calls that read no pixels.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
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

int64_t element_size(int code) { return code == IFRT_DTYPE_UINT8 ? 1 : code == IFRT_DTYPE_FLOAT32 ? 4 : 2; }

// 128-bit products of int64 operands saturate at +-2^100: far past any buffer, and never overflowing.
int128 clamp(int128 v) {
  const int128 limit = int128(1) << 100;
  return v > limit ? limit : v < -limit ? -limit : v;
}
int128 mul(int128 a, int128 b) {
  int128 r;
  if (__builtin_mul_overflow(a, b, &r)) return (a < 0) != (b < 0) ? -(int128(1) << 100) : int128(1) << 100;
  return clamp(r);
}

// Where the pixels a descriptor names lie, relative to data: [lo, hi) in bytes, exact in 128 bits.
struct Extent {
  bool plausible;  // sizes >= 1 and the dtype is one the library reads: a real buffer could hold this
  int128 lo, hi;
};

Extent extent_of(const ifrt_image& im, int dtype_code) {
  Extent e{false, 0, 0};
  if (im.height < 1 || im.width < 1 || im.channels < 1) return e;
  if (dtype_code < IFRT_DTYPE_UINT8 || dtype_code > IFRT_DTYPE_FLOAT16) return e;
  const int128 es = element_size(dtype_code);
  const int128 ps = im.pixel_stride ? int128(im.pixel_stride) : mul(im.channels, es);
  const int128 rs = im.row_stride ? int128(im.row_stride) : mul(im.width, ps);
  const int128 ys[2] = {0, mul(int128(im.height) - 1, rs)};
  const int128 xs[2] = {0, mul(int128(im.width) - 1, ps)};
  const int128 cs[2] = {0, mul(int128(im.channels) - 1, es)};
  e.lo = e.hi = 0;
  for (const int128 y : ys)
    for (const int128 x : xs)
      for (const int128 c : cs) {
        const int128 at = y + x + c;
        if (at < e.lo) e.lo = at;
        if (at + es > e.hi) e.hi = at + es;
      }
  e.plausible = true;
  return e;
}

bool impossible(const Extent& e) {
  // No process can own 2^63 bytes, nor memory before the start of its own buffer.
  return e.plausible && (e.lo < 0 || e.hi > int128(std::numeric_limits<int64_t>::max()));
}

constexpr size_t kMaxOutputBytes = size_t(8) << 20;

void fuzz_preprocess(FuzzedDataProvider& in, const ifrt_image& im, bool readable, bool refuse,
                     const std::vector<float>& plane) {
  ifrt_preprocess_options o;
  ifrt_preprocess_options_init(&o);
  const int norm = in.ConsumeIntegralInRange<int>(-1, 3), resize = in.ConsumeIntegralInRange<int>(-1, 3),
            pad = in.ConsumeIntegralInRange<int>(-1, 3), out_dtype = in.ConsumeIntegralInRange<int>(0, 5);
  std::memcpy(&o.norm, &norm, sizeof norm);  // any int, as a C caller may store
  std::memcpy(&o.resize, &resize, sizeof resize);
  std::memcpy(&o.pad, &pad, sizeof pad);
  std::memcpy(&o.out_dtype, &out_dtype, sizeof out_dtype);
  o.channel = in.ConsumeBool() ? 0 : fuzz_size(in, 4);
  if (in.ConsumeBool()) {
    o.p_low = in.ConsumeFloatingPoint<double>();
    o.p_high = in.ConsumeFloatingPoint<double>();
  }
  if (in.ConsumeBool()) {
    o.lo = in.ConsumeFloatingPoint<double>();
    o.hi = in.ConsumeFloatingPoint<double>();
  }
  if (in.ConsumeBool()) {
    o.out_height = fuzz_size(in, 80);
    o.out_width = fuzz_size(in, 80);
  }
  if (in.ConsumeBool()) o.pad_multiple = fuzz_size(in, 40);
  if (in.ConsumeBool()) {
    o.tile_height = fuzz_size(in, 80);
    o.tile_width = fuzz_size(in, 80);
    o.tile_overlap = fuzz_size(in, 40);
  }
  // dark/flat are packed H x W floats owned by the caller: only when the image is small enough.
  const bool with_planes = !plane.empty() && readable;
  if (with_planes && in.ConsumeBool()) o.dark = plane.data();
  if (with_planes && in.ConsumeBool()) o.flat = plane.data();

  ifrt_preprocess_shape shape;
  const ifrt_status planned = ifrt_preprocess_shape_of(&im, &o, &shape);
  check_failure(planned);
  if (refuse && planned == IFRT_OK) violation("ifrt_preprocess_shape_of accepted a descriptor no buffer can hold");
  if (planned == IFRT_OK) {
    const int128 elements = mul(mul(shape.batch, shape.height), shape.width);
    if (shape.batch != shape.tiles_y * shape.tiles_x || elements <= 0 ||
        int128(shape.bytes) != mul(elements, out_dtype == IFRT_DTYPE_FLOAT16 ? 2 : 4)) {
      violation("ifrt_preprocess_shape_of returned an inconsistent shape");
    }
  }
  if (!readable && !refuse) return;
  if (planned == IFRT_OK && shape.bytes > kMaxOutputBytes) return;  // valid, just too slow to fuzz
  size_t short_by = in.ConsumeBool() ? in.ConsumeIntegralInRange<size_t>(0, 8) : 0;
  if (planned != IFRT_OK || shape.bytes < short_by) short_by = 0;
  const size_t out_bytes = planned == IFRT_OK ? shape.bytes - short_by : 64;
  std::vector<unsigned char> out(out_bytes + 1);  // + 1: never a zero-sized allocation
  double lo = 0, hi = 0;
  const ifrt_status status = ifrt_preprocess(&im, &o, out.data(), out_bytes, &lo, &hi);
  check_failure(status);
  if (planned != IFRT_OK && status == IFRT_OK) violation("ifrt_preprocess accepted what ifrt_preprocess_shape_of refused");
  if (planned == IFRT_OK && short_by > 0 && status == IFRT_OK) violation("ifrt_preprocess wrote into a short buffer");
}

void fuzz_focus(FuzzedDataProvider& in, const ifrt_image& im, bool readable, bool refuse) {
  ifrt_focus_options o;
  ifrt_focus_options_init(&o);
  o.channel = in.ConsumeBool() ? 0 : fuzz_size(in, 4);
  if (in.ConsumeBool()) {
    o.tile_height = fuzz_size(in, 64);
    o.tile_width = fuzz_size(in, 64);
  }
  ifrt_focus* focus = nullptr;
  const ifrt_status created = ifrt_focus_create(&o, &focus);
  check_failure(created);
  if ((created == IFRT_OK) != (focus != nullptr)) violation("ifrt_focus_create: handle and status disagree");
  if (!focus) return;
  int64_t ty = 0, tx = 0;
  const ifrt_status grid = ifrt_focus_tile_grid(focus, im.height, im.width, &ty, &tx);
  check_failure(grid);
  if (grid == IFRT_OK && (ty < 1 || tx < 1)) violation("ifrt_focus_tile_grid returned an empty grid");
  if (readable || refuse) {
    ifrt_focus_metrics global;
    const int128 tiles = mul(ty, tx);
    const bool with_tiles = grid == IFRT_OK && tiles <= 4096 && in.ConsumeBool();
    const size_t capacity = with_tiles ? size_t(tiles) - (in.ConsumeBool() ? 1 : 0) : 0;
    std::vector<ifrt_focus_metrics> per_tile(capacity + 1);
    const ifrt_status status = ifrt_focus_compute(focus, &im, &global, with_tiles ? per_tile.data() : nullptr, capacity);
    check_failure(status);
    if (refuse && status == IFRT_OK) violation("ifrt_focus_compute accepted a descriptor no buffer can hold");
    if (with_tiles && capacity < size_t(tiles) && status == IFRT_OK) violation("ifrt_focus_compute overran tiles");
  }
  ifrt_focus_release(focus);
}

void fuzz_denormalize(FuzzedDataProvider& in, const ifrt_image& im, int dtype_code, bool readable, bool refuse) {
  if (!readable && !refuse) return;
  const int out_code = in.ConsumeIntegralInRange<int>(0, 5);
  ifrt_dtype out_dtype;
  std::memcpy(&out_dtype, &out_code, sizeof out_code);
  const double lo = in.ConsumeFloatingPoint<double>(), hi = in.ConsumeFloatingPoint<double>();
  // out is packed height x width of out_dtype: allocate exactly that when the size is sane.
  const int128 pixels = mul(im.height, im.width);
  if (!refuse && (pixels <= 0 || pixels > (1 << 22))) return;
  const size_t out_bytes = refuse ? 64 : size_t(pixels) * size_t(element_size(out_code));
  std::vector<unsigned char> out(out_bytes + 1);
  const ifrt_status status = ifrt_denormalize(&im, lo, hi, out.data(), out_dtype);
  check_failure(status);
  if (refuse && status == IFRT_OK) violation("ifrt_denormalize accepted a descriptor no buffer can hold");
  (void)dtype_code;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  ifrt_image im{};
  const int dtype_code = in.ConsumeIntegralInRange<int>(-1, 6);
  std::memcpy(&im.dtype, &dtype_code, sizeof dtype_code);
  im.height = fuzz_size(in, 48);
  im.width = fuzz_size(in, 48);
  im.channels = in.ConsumeBool() ? 1 : fuzz_size(in, 4);
  im.row_stride = in.ConsumeBool() ? 0 : fuzz_size(in, 256);
  im.pixel_stride = in.ConsumeBool() ? 0 : fuzz_size(in, 16);
  const int target = in.ConsumeIntegralInRange<int>(0, 2);
  const bool null_data = in.ConsumeIntegralInRange<int>(0, 31) == 0;
  const size_t misalign = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? 1 : 0;

  // The option bytes come first, the pixels are whatever is left (at least one element).
  const size_t option_bytes = in.ConsumeIntegralInRange<size_t>(0, 96);
  std::vector<uint8_t> option_data = in.ConsumeBytes<uint8_t>(option_bytes);
  std::vector<uint8_t> rest = in.ConsumeRemainingBytes<uint8_t>();
  const size_t buffer_bytes = rest.size() + misalign;
  unsigned char* buffer = static_cast<unsigned char*>(std::malloc(buffer_bytes + 1));
  if (!rest.empty()) std::memcpy(buffer + misalign, rest.data(), rest.size());
  im.data = null_data ? nullptr : buffer + misalign;

  const Extent e = extent_of(im, dtype_code);
  const bool refuse = impossible(e);
  const bool readable = e.plausible && !refuse && !null_data && e.hi <= int128(rest.size());
  // dark/flat frames for preprocess: packed H x W floats, read from the pixel bytes' hash.
  std::vector<float> plane;
  if (readable && mul(im.height, im.width) <= 1 << 16) {
    plane.resize(size_t(im.height * im.width));
    for (size_t i = 0; i < plane.size(); ++i) plane[i] = rest.empty() ? 1.0f : float(rest[i % rest.size()]) / 64.0f;
  }

  FuzzedDataProvider options(option_data.data(), option_data.size());
  switch (target) {
    case 0: fuzz_preprocess(options, im, readable, refuse, plane); break;
    case 1: fuzz_focus(options, im, readable, refuse); break;
    default: fuzz_denormalize(options, im, dtype_code, readable, refuse); break;
  }
  std::free(buffer);
  return 0;
}
