// Launch geometry of the CUDA kernels, in plain C++ so that the CPU tests check it (csrc/tests).
#pragma once

#include <cstdint>
#include <string>

#include "core/common.h"

namespace ifrt::cuda {

// Blocks of `threads` covering n items: at least 1, at most `cap` (a grid-stride loop takes the rest).
inline unsigned int blocks_for(int64_t n, int threads, int64_t cap = 65535) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return static_cast<unsigned int>(b < cap ? b : cap);
}

// gridDim.x's limit (2^31 - 1; y and z stop at 65535).
constexpr int64_t kMaxGridX = 2147483647;

// x blocks of `threads` for the per-pixel kernels (preprocess, blend, denormalize, upsample): they give
// each column its own thread and loop over rows only, so the grid must cover the whole row (capped at
// 65535 blocks of 64 it stopped at 4,194,240 columns and left the rest unwritten).
inline unsigned int column_blocks(int64_t width, int threads) {
  if ((width + threads - 1) / threads > kMaxGridX) {
    fail(ErrorCode::InvalidArgument, "a row of " + std::to_string(width) + " columns is too wide for the CUDA kernels");
  }
  return blocks_for(width, threads, kMaxGridX);
}

// Blocks per tile of the focus kernel: about 2048 in all, at least one per tile, no more than the tile's
// pixels need. A tile larger than the image counts as the image, so any tile size works (tile_height *
// tile_width of the caller's sizes may overflow).
inline unsigned int focus_blocks_per_tile(int64_t height, int64_t width, int64_t tile_height, int64_t tile_width,
                                          int64_t tiles, int threads) {
  const int64_t th = tile_height < height ? tile_height : height, tw = tile_width < width ? tile_width : width;
  const int64_t cap = 2048 / tiles > 1 ? 2048 / tiles : 1;
  return blocks_for(th * tw, threads, cap);
}

}  // namespace ifrt::cuda
