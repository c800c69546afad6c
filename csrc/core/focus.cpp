#include "core/focus.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <string>
#include <utility>

#include "core/normalize.h"
#include "core/parallel.h"

namespace ifrt {

void focus_grid(int64_t height, int64_t width, int64_t* tile_height, int64_t* tile_width, int64_t* tiles_y,
                int64_t* tiles_x) {
  if (*tile_height < 0 || *tile_width < 0 || ((*tile_height == 0) != (*tile_width == 0))) {
    fail(ErrorCode::InvalidArgument, "focus tile size " + std::to_string(*tile_height) + "x" +
                                         std::to_string(*tile_width) +
                                         " is invalid (both 0 for the whole image, or both positive)");
  }
  if (*tile_height == 0) {
    *tile_height = height;
    *tile_width = width;
  }
  // Rounded-up division that cannot overflow for sizes and tiles up to INT64_MAX.
  *tiles_y = height / *tile_height + (height % *tile_height != 0);
  *tiles_x = width / *tile_width + (width % *tile_width != 0);
}

namespace {

// Row r of the image as doubles with one mirrored sample on each side: buf[x + 1] = I(r, x).
class RowCache {
 public:
  RowCache(const ImageView& im, int64_t channel) : im_(im), channel_(channel), tmp_(static_cast<size_t>(im.width)) {
    for (auto& b : buf_) b.resize(static_cast<size_t>(im.width + 2));
  }
  const double* get(int64_t r) {
    const int slot = static_cast<int>(r % 4);
    if (tag_[slot] != r) {
      load_corrected_row(im_, channel_, nullptr, nullptr, r, tmp_.data());
      double* b = buf_[slot].data();
      const int64_t w = im_.width;
      for (int64_t x = 0; x < w; ++x) b[x + 1] = tmp_[x];
      b[0] = b[reflect101(-1, w) + 1];
      b[w + 1] = b[reflect101(w, w) + 1];
      tag_[slot] = r;
    }
    return buf_[slot].data();
  }

 private:
  const ImageView& im_;
  int64_t channel_;
  std::vector<float> tmp_;
  std::vector<double> buf_[4];
  int64_t tag_[4] = {-1, -1, -1, -1};
};

// Columns [xa, xb) of one row; rows are buffers with one mirrored sample each side (buf[x + 1]).
// The pixels with a right-hand pair partner (x + 2 < w) run in their own branch-free loop.
template <bool kDown2>
void add_segment(const double* up, const double* cur, const double* dn, const double* dn2, int64_t xa, int64_t xb,
                 int64_t w, double shift, FocusSums& out) {
  double lap = 0, lap2 = 0, grad2 = 0, sum = 0, sum2 = 0, brenner = 0, vollath = 0;
  auto add = [&](const FocusTerms& t, double c) {
    lap += t.lap;
    lap2 += t.lap * t.lap;
    grad2 += t.grad2;
    const double d = c - shift;
    sum += d;
    sum2 += d * d;
    brenner += t.brenner;
    vollath += t.vollath;
  };
  const int64_t xr = std::max(xa, std::min(xb, w - 2));
  for (int64_t x = xa; x < xr; ++x) {
    add(focus_terms<true, kDown2>(up[x], up[x + 1], up[x + 2], cur[x], cur[x + 1], cur[x + 2], dn[x], dn[x + 1],
                                  dn[x + 2], cur[x + 3], kDown2 ? dn2[x + 1] : 0.0),
        cur[x + 1]);
  }
  for (int64_t x = xr; x < xb; ++x) {
    add(focus_terms<false, kDown2>(up[x], up[x + 1], up[x + 2], cur[x], cur[x + 1], cur[x + 2], dn[x], dn[x + 1],
                                   dn[x + 2], 0.0, kDown2 ? dn2[x + 1] : 0.0),
        cur[x + 1]);
  }
  const double n = static_cast<double>(xb - xa);
  out.count += n;
  out.pairs += static_cast<double>(xr - xa) + (kDown2 ? n : 0.0);
  out.lap += lap;
  out.lap2 += lap2;
  out.grad2 += grad2;
  out.sum += sum;
  out.sum2 += sum2;
  out.brenner += brenner;
  out.vollath += vollath;
}

}  // namespace

FocusResult focus(const ImageView& image, int64_t channel, int64_t tile_height, int64_t tile_width) {
  const ImageView im = checked_input(image);
  if (channel < 0 || channel >= im.channels) {
    fail(ErrorCode::InvalidArgument, "channel " + std::to_string(channel) + " is out of range for an image with " +
                                         std::to_string(im.channels) + " channel(s)");
  }
  const int64_t h = im.height, w = im.width;
  FocusResult result;
  focus_grid(h, w, &tile_height, &tile_width, &result.tiles_y, &result.tiles_x);
  const int64_t ntiles = result.tiles_y * result.tiles_x;
  {
    float first = 0.0f;
    std::vector<float> row(static_cast<size_t>(w));
    load_corrected_row(im, channel, nullptr, nullptr, 0, row.data());
    first = row[0];
    result.shift = first;
  }
  const double shift = result.shift;

  std::mutex merge;
  std::vector<std::pair<int64_t, std::vector<FocusSums>>> partials;
  parallel_for(h, 32, [&](int64_t y0, int64_t y1) {
    std::vector<FocusSums> sums(static_cast<size_t>(ntiles));
    RowCache cache(im, channel);
    for (int64_t y = y0; y < y1; ++y) {
      // Rows y-1..y+2 occupy distinct slots (r % 4), so the four pointers stay valid together.
      const double* up = cache.get(reflect101(y - 1, h));
      const double* cur = cache.get(y);
      const double* dn = cache.get(reflect101(y + 1, h));
      const bool has_down2 = y + 2 < h;
      const double* dn2 = has_down2 ? cache.get(y + 2) : nullptr;
      FocusSums* tile_row = sums.data() + (y / tile_height) * result.tiles_x;
      for (int64_t tx = 0; tx < result.tiles_x; ++tx) {
        const int64_t xa = tx * tile_width, xb = std::min(w, xa + tile_width);
        if (has_down2) {
          add_segment<true>(up, cur, dn, dn2, xa, xb, w, shift, tile_row[tx]);
        } else {
          add_segment<false>(up, cur, dn, dn2, xa, xb, w, shift, tile_row[tx]);
        }
      }
    }
    std::lock_guard<std::mutex> lock(merge);
    partials.emplace_back(y0, std::move(sums));
  });
  std::sort(partials.begin(), partials.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<FocusSums> tiles(static_cast<size_t>(ntiles));
  for (const auto& p : partials)
    for (int64_t t = 0; t < ntiles; ++t) focus_merge(tiles[t], p.second[t]);
  result.tiles.resize(static_cast<size_t>(ntiles));
  for (int64_t t = 0; t < ntiles; ++t) {
    focus_merge(result.global_sums, tiles[t]);
    result.tiles[t] = focus_metrics(tiles[t], shift);
  }
  // Every pixel enters the sum of squares, so a NaN or infinite one leaves it non-finite; the metrics would then
  // be NaN or, clamped, 0 ("fully blurred"), which an autofocus loop would act on. Name the first such pixel.
  if (!std::isfinite(result.global_sums.sum2)) {
    std::vector<float> row(static_cast<size_t>(w));
    for (int64_t y = 0; y < h; ++y) {
      load_corrected_row(im, channel, nullptr, nullptr, y, row.data());
      for (int64_t x = 0; x < w; ++x) {
        if (!std::isfinite(row[static_cast<size_t>(x)])) {
          fail(ErrorCode::InvalidArgument, "pixel (" + std::to_string(y) + ", " + std::to_string(x) +
                                               ") is not finite; focus metrics need finite values");
        }
      }
    }
  }
  result.global = focus_metrics(result.global_sums, shift);
  return result;
}

}  // namespace ifrt
