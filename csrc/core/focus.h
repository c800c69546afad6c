// Classical focus metrics, globally and per tile, from one pass over the image.
//
// On pixel values I (channel `channel`, as float64), borders mirrored without repeating the edge
// (OpenCV BORDER_REFLECT_101: I(-1) = I(1); a 1-pixel axis repeats its pixel):
//   var_laplacian       Var[L],  L = I(y-1,x) + I(y+1,x) + I(y,x-1) + I(y,x+1) - 4 I(y,x)
//                       (cv2.Laplacian(ksize=1) then the population variance)
//   tenengrad           E[Gx^2 + Gy^2], Gx, Gy the 3x3 Sobel derivatives (cv2.Sobel ksize=3)
//   brenner             mean of (I(y,x+2) - I(y,x))^2 and (I(y+2,x) - I(y,x))^2 over all pairs
//                       inside the image (0 when there are none)
//   normalized_variance Var[I] / E[I]   (0 when E[I] <= 0)
//   vollath_f4          mean of I(y,x) * (I(y,x+1) - I(y,x+2)) and I(y,x) * (I(y+1,x) - I(y+2,x))
//                       over the same pairs as brenner
// Variances are population variances (divide by the pixel count). Per tile, the grid is
// ceil(H / tile_height) x ceil(W / tile_width) with smaller tiles at the right and bottom; a pixel
// (or a pair, by its first pixel) counts towards the tile it lies in, with neighbours taken from
// the whole image, so the tile sums add up to the global sums exactly.
#pragma once

#include <cstdint>
#include <vector>

#include "core/common.h"
#include "core/image.h"

namespace ifrt {

// Additive per-tile accumulators. Intensity sums are taken about `shift` (the first pixel) so the
// variance does not cancel catastrophically on bright, flat images.
struct FocusSums {
  double count = 0;
  double lap = 0, lap2 = 0;
  double grad2 = 0;
  double sum = 0, sum2 = 0;  // of I - shift
  double pairs = 0, brenner = 0, vollath = 0;
};

struct FocusMetrics {
  double var_laplacian = 0;
  double tenengrad = 0;
  double brenner = 0;
  double normalized_variance = 0;
  double vollath_f4 = 0;
};

constexpr int kFocusMetricCount = 5;

IFRT_HD int64_t reflect101(int64_t i, int64_t n) {
  if (n == 1) return 0;
  if (i < 0) return -i;
  if (i >= n) return 2 * n - 2 - i;
  return i;
}

// One pixel's terms from its 3x3 neighbourhood n[row][col] (reflected at the borders) and, when
// inside the image, I(y, x+2) = right2 and I(y+2, x) = down2.
struct FocusTerms {
  double lap = 0, grad2 = 0, brenner = 0, vollath = 0;
};

template <bool kRight2, bool kDown2>
IFRT_HD FocusTerms focus_terms(double n00, double n01, double n02, double n10, double n11, double n12, double n20,
                               double n21, double n22, double right2, double down2) {
  FocusTerms t;
  t.lap = n01 + n21 + n10 + n12 - 4.0 * n11;
  const double gx = (n02 + 2.0 * n12 + n22) - (n00 + 2.0 * n10 + n20);
  const double gy = (n20 + 2.0 * n21 + n22) - (n00 + 2.0 * n01 + n02);
  t.grad2 = gx * gx + gy * gy;
  if (kRight2) {
    const double b = right2 - n11;
    t.brenner += b * b;
    t.vollath += n11 * (n12 - right2);
  }
  if (kDown2) {
    const double b = down2 - n11;
    t.brenner += b * b;
    t.vollath += n11 * (n21 - down2);
  }
  return t;
}

// Adds one pixel's terms (n[dy+1][dx+1] its neighbourhood) to the sums.
IFRT_HD void focus_accumulate(FocusSums& s, const double n[3][3], double right2, bool has_right2, double down2,
                              bool has_down2, double shift) {
  FocusTerms t;
  if (has_right2 && has_down2) {
    t = focus_terms<true, true>(n[0][0], n[0][1], n[0][2], n[1][0], n[1][1], n[1][2], n[2][0], n[2][1], n[2][2], right2, down2);
  } else if (has_right2) {
    t = focus_terms<true, false>(n[0][0], n[0][1], n[0][2], n[1][0], n[1][1], n[1][2], n[2][0], n[2][1], n[2][2], right2, down2);
  } else if (has_down2) {
    t = focus_terms<false, true>(n[0][0], n[0][1], n[0][2], n[1][0], n[1][1], n[1][2], n[2][0], n[2][1], n[2][2], right2, down2);
  } else {
    t = focus_terms<false, false>(n[0][0], n[0][1], n[0][2], n[1][0], n[1][1], n[1][2], n[2][0], n[2][1], n[2][2], right2, down2);
  }
  const double d = n[1][1] - shift;
  s.count += 1.0;
  s.lap += t.lap;
  s.lap2 += t.lap * t.lap;
  s.grad2 += t.grad2;
  s.sum += d;
  s.sum2 += d * d;
  s.pairs += (has_right2 ? 1.0 : 0.0) + (has_down2 ? 1.0 : 0.0);
  s.brenner += t.brenner;
  s.vollath += t.vollath;
}

IFRT_HD void focus_merge(FocusSums& a, const FocusSums& b) {
  a.count += b.count;
  a.lap += b.lap;
  a.lap2 += b.lap2;
  a.grad2 += b.grad2;
  a.sum += b.sum;
  a.sum2 += b.sum2;
  a.pairs += b.pairs;
  a.brenner += b.brenner;
  a.vollath += b.vollath;
}

IFRT_HD FocusMetrics focus_metrics(const FocusSums& s, double shift) {
  FocusMetrics m;
  if (s.count <= 0) return m;
  const double ml = s.lap / s.count;
  const double vl = s.lap2 / s.count - ml * ml;
  m.var_laplacian = vl < 0 ? 0 : vl;  // rounding can leave a tiny negative variance; a NaN stays NaN
  m.tenengrad = s.grad2 / s.count;
  const double md = s.sum / s.count;
  const double vi = s.sum2 / s.count - md * md;
  const double mean = md + shift;
  m.normalized_variance = mean > 0 || mean != mean ? (vi < 0 ? 0 : vi) / mean : 0;
  if (s.pairs > 0) {
    m.brenner = s.brenner / s.pairs;
    m.vollath_f4 = s.vollath / s.pairs;
  }
  return m;
}

struct FocusResult {
  FocusMetrics global;
  int64_t tiles_y = 1, tiles_x = 1;
  std::vector<FocusMetrics> tiles;  // row-major tiles_y x tiles_x
  FocusSums global_sums;
  double shift = 0;
};

// tile_height/tile_width 0: one tile, the whole image. Multithreaded over rows.
// Results are deterministic for a given thread count (partial sums are merged in row order).
FocusResult focus(const ImageView& image, int64_t channel = 0, int64_t tile_height = 0, int64_t tile_width = 0);

// Tile grid for an image: throws on negative sizes or a tile given on one axis only.
void focus_grid(int64_t height, int64_t width, int64_t* tile_height, int64_t* tile_width, int64_t* tiles_y,
                int64_t* tiles_x);

}  // namespace ifrt
