// Postprocess: model outputs -> results in the caller's units.
//
//  softmax:      p_k = exp((l_k - max_j l_j) / T) / sum_j exp((l_j - max_j l_j) / T), float32, per row
//                of an [N, K] logits array; T > 0 is the temperature (T = 1: plain softmax).
//  blend_tiles:  frame(y, x) = sum_t w_t(y, x) * tile_t(y - oy_t, x - ox_t) / sum_t w_t(y, x) over the
//                tiles covering (y, x) (origins as in resample.h). w_t = ramp_y * ramp_x, and on each
//                axis ramp(i) = min(1, (i + 0.5) / overlap) on a side that borders another tile,
//                min(1, (size - i - 0.5) / overlap) on the far side, 1 on a frame edge: linear
//                cross-fades over the overlap, no seams, exact for identical tiles.
//  denormalize:  x = y * (float)(hi - lo) + lo in float32 (normalize.h), then for uint8/uint16
//                rint and clamp to the dtype's range; crops the padded frame to height x width.
//  upsample_quality_map: bilinear (pixel centres aligned, as resample.h) from [mh, mw] to [h, w].
// CPU functions here; CUDA versions in cuda/kernels.h run the same per-pixel functions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/common.h"
#include "core/image.h"
#include "core/normalize.h"
#include "core/resample.h"

namespace ifrt {

// ---- per-element math shared with the CUDA kernels --------------------------------------------

IFRT_HD void softmax_row(const float* logits, float* out, int64_t k, float temperature) {
  float m = logits[0];
  for (int64_t i = 1; i < k; ++i) m = logits[i] > m ? logits[i] : m;
  float sum = 0.0f;
  for (int64_t i = 0; i < k; ++i) {
    out[i] = expf(fsub(logits[i], m) / temperature);
    sum = fadd(sum, out[i]);
  }
  for (int64_t i = 0; i < k; ++i) out[i] = out[i] / sum;
}

IFRT_HD float blend_ramp(int64_t i, int64_t origin, int64_t tile, int64_t frame, int64_t overlap) {
  if (overlap <= 0) return 1.0f;
  float w = 1.0f;
  const float o = static_cast<float>(overlap);
  if (origin > 0) {
    const float r = (static_cast<float>(i) + 0.5f) / o;
    w = r < w ? r : w;
  }
  if (origin + tile < frame) {
    const float r = (static_cast<float>(tile - i) - 0.5f) / o;
    w = r < w ? r : w;
  }
  return w;
}

struct TileGrid {
  int64_t frame_height = 0, frame_width = 0;
  int64_t tile_height = 0, tile_width = 0, overlap = 0;
  int64_t tiles_y = 1, tiles_x = 1;
};

// Tiles on one axis that may cover position f: [first, last] (checked again by the caller).
IFRT_HD void covering_tiles(int64_t f, int64_t frame, int64_t tile, int64_t overlap, int64_t count, int64_t* first,
                            int64_t* last) {
  if (count <= 1) {  // one tile covers the axis, whatever the overlap (the step may be 0 or negative)
    *first = *last = 0;
    return;
  }
  const int64_t step = tile - overlap;
  int64_t a = f < tile ? 0 : (f - tile) / step;  // one early; the coverage check drops it
  int64_t b = f / step;
  if (b > count - 1) b = count - 1;
  if (count > 0 && f >= tile_origin(count - 1, frame, tile, overlap)) b = count - 1;
  if (a > b) a = b;
  *first = a;
  *last = b;
}

// Blended value at frame pixel (y, x) from tiles [N, tile_height, tile_width] (N = tiles_y * tiles_x).
IFRT_HD float blend_pixel(const float* tiles, const TileGrid& g, int64_t y, int64_t x) {
  int64_t y0, y1, x0, x1;
  covering_tiles(y, g.frame_height, g.tile_height, g.overlap, g.tiles_y, &y0, &y1);
  covering_tiles(x, g.frame_width, g.tile_width, g.overlap, g.tiles_x, &x0, &x1);
  float acc = 0.0f, wsum = 0.0f;
  for (int64_t ty = y0; ty <= y1; ++ty) {
    const int64_t oy = tile_origin(ty, g.frame_height, g.tile_height, g.overlap);
    if (y < oy || y >= oy + g.tile_height) continue;
    const float wy = blend_ramp(y - oy, oy, g.tile_height, g.frame_height, g.overlap);
    for (int64_t tx = x0; tx <= x1; ++tx) {
      const int64_t ox = tile_origin(tx, g.frame_width, g.tile_width, g.overlap);
      if (x < ox || x >= ox + g.tile_width) continue;
      const float w = fmul(wy, blend_ramp(x - ox, ox, g.tile_width, g.frame_width, g.overlap));
      const float v = tiles[((ty * g.tiles_x + tx) * g.tile_height + (y - oy)) * g.tile_width + (x - ox)];
      acc = fadd(acc, fmul(w, v));
      wsum = fadd(wsum, w);
    }
  }
  return acc / wsum;
}

// ---- CPU entry points ---------------------------------------------------------------------------

// logits and probs: [n, k] float32, packed. Throws on k < 1 or a temperature that is not > 0.
void softmax(const float* logits, int64_t n, int64_t k, float temperature, float* probs);

// Validates a grid (also derives tiles_y/tiles_x from the sizes when they are 0).
TileGrid make_tile_grid(int64_t frame_height, int64_t frame_width, int64_t tile_height, int64_t tile_width,
                        int64_t overlap);

// Argument checks shared by the CPU functions below and their CUDA versions (cuda/kernels.h): null
// pointers, shapes, dtypes, and arrays whose byte count exceeds 2^63 are refused (InvalidArgument).
void check_softmax(const float* logits, int64_t n, int64_t k, float temperature, const float* probs);
TileGrid check_blend_tiles(const float* tiles, const TileGrid& grid, const float* out, int64_t height, int64_t width);
void check_denormalize(const void* in, DType in_dtype, int64_t in_stride, int64_t height, int64_t width,
                       const void* out, DType out_dtype);
void check_upsample_quality_map(const float* map, int64_t map_height, int64_t map_width, const float* out,
                                int64_t height, int64_t width);

// tiles: [grid.tiles_y * grid.tiles_x, tile_height, tile_width]; out: [height, width] packed, the
// top-left crop of the frame (height <= frame_height, width <= frame_width).
void blend_tiles(const float* tiles, const TileGrid& grid, float* out, int64_t height, int64_t width);

// in: a float32 or float16 plane with row stride in elements (in_stride >= width);
// out: packed height x width of out_dtype (uint8, uint16, float32).
void denormalize(const void* in, DType in_dtype, int64_t in_stride, int64_t height, int64_t width, double lo,
                 double hi, void* out, DType out_dtype);

void upsample_quality_map(const float* map, int64_t map_height, int64_t map_width, float* out, int64_t height,
                          int64_t width);

}  // namespace ifrt
