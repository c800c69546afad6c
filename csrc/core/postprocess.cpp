#include "core/postprocess.h"

#include <cmath>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/parallel.h"

namespace ifrt {

namespace {

// Refuses an array of float32 whose byte count exceeds 2^63: it describes no caller's buffer, and its
// offsets would overflow int64_t. dims are >= 1 (checked before).
void require_addressable(const char* what, std::initializer_list<int64_t> dims) {
  constexpr int64_t max = std::numeric_limits<int64_t>::max();
  int64_t bytes = static_cast<int64_t>(sizeof(float));
  std::string shape;
  for (const int64_t d : dims) {
    shape += (shape.empty() ? "" : "x") + std::to_string(d);
    bytes = (bytes > 0 && d > max / bytes) ? -1 : (bytes < 0 ? -1 : bytes * d);
  }
  if (bytes < 0) fail(ErrorCode::InvalidArgument, std::string(what) + " of " + shape + " floats spans more than 2^63 bytes");
}

}  // namespace

void check_softmax(const float* logits, int64_t n, int64_t k, float temperature, const float* probs) {
  if (!logits || !probs) fail(ErrorCode::InvalidArgument, "softmax: logits or output pointer is null");
  if (n < 0 || k < 1) {
    fail(ErrorCode::InvalidArgument, "softmax: logits shape [" + std::to_string(n) + ", " + std::to_string(k) +
                                         "] is invalid (need at least one class)");
  }
  if (!(temperature > 0.0f) || !std::isfinite(temperature)) {
    fail(ErrorCode::InvalidArgument, "softmax: temperature " + std::to_string(temperature) + " must be > 0");
  }
  require_addressable("softmax: logits", {n, k});
  // In place (the very same buffer) is fine: a row is read before it is written. A shifted one is not.
  const size_t bytes = static_cast<size_t>(n * k) * sizeof(float);
  if (logits != probs && bytes_overlap(logits, bytes, probs, bytes)) {
    fail(ErrorCode::InvalidArgument, "softmax: the output overlaps the logits without being the same buffer");
  }
}

void softmax(const float* logits, int64_t n, int64_t k, float temperature, float* probs) {
  check_softmax(logits, n, k, temperature, probs);
  for (int64_t i = 0; i < n; ++i) softmax_row(logits + i * k, probs + i * k, k, temperature);
}

TileGrid make_tile_grid(int64_t frame_height, int64_t frame_width, int64_t tile_height, int64_t tile_width,
                        int64_t overlap) {
  auto text = [](int64_t a, int64_t b) { return std::to_string(a) + "x" + std::to_string(b); };
  if (frame_height < 1 || frame_width < 1) fail(ErrorCode::InvalidArgument, "frame " + text(frame_height, frame_width) + " is empty");
  if (tile_height < 1 || tile_width < 1 || tile_height > frame_height || tile_width > frame_width) {
    fail(ErrorCode::InvalidArgument, "tile " + text(tile_height, tile_width) + " must be non-empty and fit the frame " +
                                         text(frame_height, frame_width));
  }
  // The overlap must leave a positive step on every axis that needs more than one tile.
  if (overlap < 0 || (frame_height > tile_height && overlap >= tile_height) ||
      (frame_width > tile_width && overlap >= tile_width)) {
    fail(ErrorCode::InvalidArgument, "overlap " + std::to_string(overlap) + " must be >= 0 and smaller than the tile " +
                                         text(tile_height, tile_width));
  }
  TileGrid g;
  g.frame_height = frame_height;
  g.frame_width = frame_width;
  g.tile_height = tile_height;
  g.tile_width = tile_width;
  g.overlap = overlap;
  g.tiles_y = tile_count(frame_height, tile_height, overlap);
  g.tiles_x = tile_count(frame_width, tile_width, overlap);
  return g;
}

TileGrid check_blend_tiles(const float* tiles, const TileGrid& grid, const float* out, int64_t height, int64_t width) {
  if (!tiles || !out) fail(ErrorCode::InvalidArgument, "blend_tiles: tiles or output pointer is null");
  const TileGrid g = make_tile_grid(grid.frame_height, grid.frame_width, grid.tile_height, grid.tile_width, grid.overlap);
  if (height < 1 || width < 1 || height > g.frame_height || width > g.frame_width) {
    fail(ErrorCode::InvalidArgument, "blend_tiles: output " + std::to_string(height) + "x" + std::to_string(width) +
                                         " must be a non-empty crop of the frame");
  }
  require_addressable("blend_tiles: tiles", {g.tiles_y, g.tiles_x, g.tile_height, g.tile_width});
  if (bytes_overlap(tiles, static_cast<size_t>(g.tiles_y * g.tiles_x * g.tile_height * g.tile_width) * sizeof(float),
                    out, static_cast<size_t>(height * width) * sizeof(float))) {
    fail(ErrorCode::InvalidArgument, "blend_tiles: the output overlaps the tiles");
  }
  return g;
}

void blend_tiles(const float* tiles, const TileGrid& grid, float* out, int64_t height, int64_t width) {
  const TileGrid g = check_blend_tiles(tiles, grid, out, height, width);
  parallel_for(height, 16, [&](int64_t y0, int64_t y1) {
    for (int64_t y = y0; y < y1; ++y)
      for (int64_t x = 0; x < width; ++x) out[y * width + x] = blend_pixel(tiles, g, y, x);
  });
}

namespace {

template <typename Out>
void denormalize_rows(const void* in, DType in_dtype, int64_t in_stride, int64_t height, int64_t width, float lo,
                      float span, Out* out, float vmin, float vmax, bool integer) {
  parallel_for(height, 32, [&](int64_t y0, int64_t y1) {
    for (int64_t y = y0; y < y1; ++y) {
      for (int64_t x = 0; x < width; ++x) {
        const float v = in_dtype == DType::F32 ? static_cast<const float*>(in)[y * in_stride + x]
                                               : half_to_float(static_cast<const uint16_t*>(in)[y * in_stride + x]);
        const float d = denormalize_value(v, lo, span);
        out[y * width + x] = static_cast<Out>(integer ? round_clamp(d, vmin, vmax) : d);
      }
    }
  });
}

}  // namespace

void check_denormalize(const void* in, DType in_dtype, int64_t in_stride, int64_t height, int64_t width,
                       const void* out, DType out_dtype) {
  if (!in || !out) fail(ErrorCode::InvalidArgument, "denormalize: input or output pointer is null");
  if (in_dtype != DType::F32 && in_dtype != DType::F16) {
    fail(ErrorCode::InvalidArgument, std::string("denormalize: input dtype ") + dtype_name(in_dtype) +
                                         " is not supported (expected float32 or float16)");
  }
  if (out_dtype != DType::U8 && out_dtype != DType::U16 && out_dtype != DType::F32) {
    fail(ErrorCode::InvalidArgument, std::string("denormalize: output dtype ") + dtype_name(out_dtype) +
                                         " is not supported (expected uint8, uint16 or float32)");
  }
  if (height < 1 || width < 1 || in_stride < width) {
    fail(ErrorCode::InvalidArgument, "denormalize: size " + std::to_string(height) + "x" + std::to_string(width) +
                                         " with row stride " + std::to_string(in_stride) + " is invalid");
  }
  require_addressable("denormalize: input", {height, in_stride});
  // Element by element in place (same buffer, dtype and packed rows) is fine; any other overlap is not.
  const bool in_place = in == out && in_dtype == out_dtype && in_stride == width;
  const auto in_bytes = static_cast<size_t>(((height - 1) * in_stride + width) * dtype_size(in_dtype));
  if (!in_place && bytes_overlap(in, in_bytes, out, static_cast<size_t>(height * width * dtype_size(out_dtype)))) {
    fail(ErrorCode::InvalidArgument, "denormalize: the output overlaps the input (only the same float32 buffer, "
                                     "rows packed, may be written in place)");
  }
}

void denormalize(const void* in, DType in_dtype, int64_t in_stride, int64_t height, int64_t width, double lo,
                 double hi, void* out, DType out_dtype) {
  check_denormalize(in, in_dtype, in_stride, height, width, out, out_dtype);
  const NormRange r = make_range(lo, hi);
  const float lo32 = r.lo32;
  const float span = static_cast<float>(r.hi - r.lo);
  switch (out_dtype) {
    case DType::U8:
      denormalize_rows(in, in_dtype, in_stride, height, width, lo32, span, static_cast<uint8_t*>(out), 0.0f, 255.0f, true);
      return;
    case DType::U16:
      denormalize_rows(in, in_dtype, in_stride, height, width, lo32, span, static_cast<uint16_t*>(out), 0.0f, 65535.0f,
                       true);
      return;
    case DType::F32:
      denormalize_rows(in, in_dtype, in_stride, height, width, lo32, span, static_cast<float*>(out), 0.0f, 0.0f, false);
      return;
    default:
      return;  // refused by check_denormalize
  }
}

void check_upsample_quality_map(const float* map, int64_t map_height, int64_t map_width, const float* out,
                                int64_t height, int64_t width) {
  if (!map || !out) fail(ErrorCode::InvalidArgument, "upsample_quality_map: map or output pointer is null");
  if (map_height < 1 || map_width < 1 || height < 1 || width < 1) {
    fail(ErrorCode::InvalidArgument, "upsample_quality_map: sizes must be >= 1, got map " + std::to_string(map_height) +
                                         "x" + std::to_string(map_width) + ", output " + std::to_string(height) + "x" +
                                         std::to_string(width));
  }
  require_addressable("upsample_quality_map: map", {map_height, map_width});
  require_addressable("upsample_quality_map: output", {height, width});
  if (bytes_overlap(map, static_cast<size_t>(map_height * map_width) * sizeof(float), out,
                    static_cast<size_t>(height * width) * sizeof(float))) {
    fail(ErrorCode::InvalidArgument, "upsample_quality_map: the output overlaps the map");
  }
}

void upsample_quality_map(const float* map, int64_t map_height, int64_t map_width, float* out, int64_t height,
                          int64_t width) {
  check_upsample_quality_map(map, map_height, map_width, out, height, width);
  std::vector<AxisTaps> xt(static_cast<size_t>(width));
  for (int64_t x = 0; x < width; ++x) xt[x] = axis_taps(ResizeMode::Bilinear, x, map_width, width);
  auto src = [&](int64_t y, int64_t x) { return map[y * map_width + x]; };
  parallel_for(height, 32, [&](int64_t y0, int64_t y1) {
    for (int64_t y = y0; y < y1; ++y) {
      const AxisTaps ty = axis_taps(ResizeMode::Bilinear, y, map_height, height);
      for (int64_t x = 0; x < width; ++x) out[y * width + x] = resample_value(src, ty, xt[x]);
    }
  });
}

}  // namespace ifrt
