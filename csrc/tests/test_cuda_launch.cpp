// Launch geometry of the CUDA kernels (cuda/launch.h), checked on the CPU: every column of a row gets a
// thread, and the focus kernel's grid stays within the device's limits for any tile size.
#include <cstdint>

#include "check.h"
#include "cuda/launch.h"

using namespace ifrt;
using namespace ifrt::cuda;

namespace {

void test_blocks_for_covers_small_counts_and_stops_at_the_cap() {
  CHECK(blocks_for(0, 256) == 1);
  CHECK(blocks_for(1, 256) == 1);
  CHECK(blocks_for(257, 256) == 2);
  CHECK(blocks_for(int64_t(1) << 40, 4, 16384) == 16384);  // rows beyond the cap: the kernels loop over them
}

// The per-pixel kernels return for x >= width and loop over rows only: blocks * threads must reach the
// last column. A 1 x 4,200,000 line (or a frame that wide) needs 65,625 blocks of 64.
void test_column_blocks_cover_rows_wider_than_65535_blocks() {
  for (const int64_t width : {int64_t(1), int64_t(63), int64_t(64), int64_t(65), int64_t(4194240), int64_t(4194241),
                              int64_t(4200000), int64_t(1) << 24, (int64_t(1) << 24) + 31}) {
    const int64_t blocks = column_blocks(width, 64);
    CHECK(blocks * 64 >= width);
    CHECK((blocks - 1) * 64 < width);
  }
  CHECK(column_blocks(4200000, 64) == 65625);
  CHECK(column_blocks(kMaxGridX * 64, 64) == kMaxGridX);
}

void test_column_blocks_refuse_a_row_no_grid_covers() {
  bool refused = false;
  try {
    column_blocks(kMaxGridX * 64 + 1, 64);
  } catch (const Error& e) {
    refused = e.code() == ErrorCode::InvalidArgument;
  }
  CHECK(refused);
}

void test_focus_blocks_per_tile_are_about_2048_in_all() {
  CHECK(focus_blocks_per_tile(2048, 2048, 2048, 2048, 1, 256) == 2048);  // 4M pixels, one tile
  CHECK(focus_blocks_per_tile(2048, 2048, 256, 256, 64, 256) == 32);     // 64 tiles of 64K pixels
  CHECK(focus_blocks_per_tile(1, 1, 1, 1, 1, 256) == 1);
  CHECK(focus_blocks_per_tile(4096, 4096, 16, 16, 65536, 256) == 1);    // at least one per tile
}

// Tile sizes above the image are the image (as on the CPU); their product once overflowed into a grid
// of 0 blocks (2^40 x 2^40 = 2^80 wraps to 0), which the launch refused.
void test_focus_blocks_per_tile_clamp_tiles_larger_than_the_image() {
  const int64_t huge = int64_t(1) << 40;
  CHECK(focus_blocks_per_tile(300, 200, huge, huge, 1, 256) == focus_blocks_per_tile(300, 200, 300, 200, 1, 256));
  CHECK(focus_blocks_per_tile(300, 200, huge, huge, 1, 256) == 235);  // ceil(60000 / 256)
  CHECK(focus_blocks_per_tile(1, 1, INT64_MAX, INT64_MAX, 1, 256) == 1);
}

}  // namespace

int main() {
  test_blocks_for_covers_small_counts_and_stops_at_the_cap();
  test_column_blocks_cover_rows_wider_than_65535_blocks();
  test_column_blocks_refuse_a_row_no_grid_covers();
  test_focus_blocks_per_tile_are_about_2048_in_all();
  test_focus_blocks_per_tile_clamp_tiles_larger_than_the_image();
  return TEST_MAIN_RESULT();
}
