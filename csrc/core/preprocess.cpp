#include "core/preprocess.h"

#include <algorithm>
#include <sstream>
#include <type_traits>
#include <vector>

#include "core/half.h"
#include "core/parallel.h"

namespace ifrt {

namespace {

[[noreturn]] void bad_option(const std::string& message) { fail(ErrorCode::InvalidArgument, message); }

}  // namespace

PreprocessPlan plan_preprocess(const ImageView& image, const PreprocessOptions& o) {
  const ImageView im = checked_input(image);
  if (o.channel < 0 || o.channel >= im.channels) {
    bad_option("channel " + std::to_string(o.channel) + " is out of range for an image with " +
               std::to_string(im.channels) + " channel(s)");
  }
  check_norm_spec(o.norm);
  if (o.out_dtype != DType::F32 && o.out_dtype != DType::F16) {
    bad_option(std::string("output dtype ") + dtype_name(o.out_dtype) + " is not supported (expected float32 or float16)");
  }
  if (o.resize != ResizeMode::None && o.resize != ResizeMode::Bilinear && o.resize != ResizeMode::Area) {
    bad_option("unknown resize mode " + std::to_string(static_cast<int>(o.resize)));
  }
  if (o.pad != PadMode::Zero && o.pad != PadMode::Edge && o.pad != PadMode::Reflect) {
    bad_option("unknown pad mode " + std::to_string(static_cast<int>(o.pad)));
  }
  if (o.out_height < 0 || o.out_width < 0) {
    bad_option("output size " + std::to_string(o.out_height) + "x" + std::to_string(o.out_width) + " is negative");
  }
  PreprocessPlan p;
  p.src_height = im.height;
  p.src_width = im.width;
  p.resized_height = o.out_height > 0 ? o.out_height : im.height;
  p.resized_width = o.out_width > 0 ? o.out_width : im.width;
  if (o.resize == ResizeMode::None && (p.resized_height != im.height || p.resized_width != im.width)) {
    bad_option("output size " + std::to_string(p.resized_height) + "x" + std::to_string(p.resized_width) +
               " differs from the image size " + std::to_string(im.height) + "x" + std::to_string(im.width) +
               " but resize is off (choose bilinear or area)");
  }
  if (o.pad_multiple < 1) bad_option("pad_multiple must be >= 1, got " + std::to_string(o.pad_multiple));
  // Bounded before any arithmetic on them, so that padding and tiling cannot overflow int64_t.
  constexpr int64_t kMaxSide = int64_t(1) << 24;
  if (p.resized_height > kMaxSide || p.resized_width > kMaxSide || o.pad_multiple > kMaxSide) {
    bad_option("output size " + std::to_string(p.resized_height) + "x" + std::to_string(p.resized_width) +
               " or pad_multiple " + std::to_string(o.pad_multiple) + " is too large (at most 16777216)");
  }
  p.frame_height = (p.resized_height + o.pad_multiple - 1) / o.pad_multiple * o.pad_multiple;
  p.frame_width = (p.resized_width + o.pad_multiple - 1) / o.pad_multiple * o.pad_multiple;
  if ((o.tile_height == 0) != (o.tile_width == 0) || o.tile_height < 0 || o.tile_width < 0) {
    bad_option("tile size " + std::to_string(o.tile_height) + "x" + std::to_string(o.tile_width) +
               " is invalid (both 0 for no tiling, or both positive)");
  }
  if (o.tile_height == 0) {
    if (o.tile_overlap != 0) bad_option("tile_overlap is set but tiling is off");
    p.tile_height = p.frame_height;
    p.tile_width = p.frame_width;
  } else {
    p.tile_height = std::min(o.tile_height, p.frame_height);
    p.tile_width = std::min(o.tile_width, p.frame_width);
    if (o.tile_overlap < 0 || (p.frame_height > p.tile_height && o.tile_overlap >= p.tile_height) ||
        (p.frame_width > p.tile_width && o.tile_overlap >= p.tile_width)) {
      bad_option("tile_overlap " + std::to_string(o.tile_overlap) + " must be >= 0 and smaller than the tile size " +
                 std::to_string(o.tile_height) + "x" + std::to_string(o.tile_width));
    }
    p.tile_overlap = o.tile_overlap;
    p.tiles_y = tile_count(p.frame_height, p.tile_height, o.tile_overlap);
    p.tiles_x = tile_count(p.frame_width, p.tile_width, o.tile_overlap);
  }
  // elements = (tiles_y * tile_height) * (tiles_x * tile_width); each factor is below 2^50 here.
  constexpr int64_t kMaxElements = int64_t(1) << 36;
  const int64_t rows = p.tiles_y * p.tile_height, cols = p.tiles_x * p.tile_width;
  if (p.frame_height > kMaxSide || p.frame_width > kMaxSide || rows > kMaxElements || cols > kMaxElements ||
      rows > kMaxElements / cols) {
    bad_option("output of " + std::to_string(p.tiles_y * p.tiles_x) + " tiles of " + std::to_string(p.tile_height) +
               "x" + std::to_string(p.tile_width) + " is too large (at most 2^36 elements)");
  }
  return p;
}

size_t preprocess_bytes(const PreprocessPlan& plan, DType out_dtype) {
  return static_cast<size_t>(plan.elements()) * static_cast<size_t>(dtype_size(out_dtype));
}

namespace {

template <typename Out>
void run_preprocess(const ImageView& im, const PreprocessOptions& o, const PreprocessPlan& p, const NormRange& r,
                    Out* out) {
  const bool resize = o.resize != ResizeMode::None;
  // Per frame column: the resized column (or -1 for zero padding); per resized column: its taps.
  std::vector<int64_t> col_src(static_cast<size_t>(p.frame_width));
  for (int64_t fx = 0; fx < p.frame_width; ++fx) col_src[fx] = pad_index(o.pad, fx, p.resized_width);
  std::vector<AxisTaps> xtaps;
  std::vector<int64_t> xw_offset;
  std::vector<float> xweights;
  if (resize) {
    xtaps.resize(static_cast<size_t>(p.resized_width));
    xw_offset.resize(static_cast<size_t>(p.resized_width));
    for (int64_t rx = 0; rx < p.resized_width; ++rx) {
      xtaps[rx] = axis_taps(o.resize, rx, p.src_width, p.resized_width);
      xw_offset[rx] = static_cast<int64_t>(xweights.size());
      for (int k = 0; k < xtaps[rx].count; ++k) xweights.push_back(axis_weight(xtaps[rx], k));
    }
  }
  const int64_t plane = p.tile_height * p.tile_width;

  // One tile of float32: frame rows are computed in place in the output.
  constexpr bool kFloatOut = std::is_same<Out, float>::value;
  const bool direct = kFloatOut && p.batch() == 1;

  parallel_for(p.frame_height, 16, [&](int64_t fy0, int64_t fy1) {
    std::vector<float> frame_buffer(direct ? 0 : static_cast<size_t>(p.frame_width));
    std::vector<std::vector<float>> src_rows;
    for (int64_t fy = fy0; fy < fy1; ++fy) {
      float* frame_row = direct ? reinterpret_cast<float*>(out) + fy * p.frame_width : frame_buffer.data();
      const int64_t ry = pad_index(o.pad, fy, p.resized_height);
      if (ry < 0) {
        std::fill(frame_row, frame_row + p.frame_width, 0.0f);
      } else {
        if (!resize) {
          load_corrected_row(im, o.channel, o.dark, o.flat, ry, frame_row);
        } else {
          const AxisTaps ty = axis_taps(o.resize, ry, p.src_height, p.resized_height);
          if (src_rows.size() < static_cast<size_t>(ty.count)) src_rows.resize(ty.count);
          for (int j = 0; j < ty.count; ++j) {
            src_rows[j].resize(static_cast<size_t>(p.src_width));
            load_corrected_row(im, o.channel, o.dark, o.flat, ty.first + j, src_rows[j].data());
          }
          float wy[64];
          const int ny = std::min(ty.count, 64);
          for (int j = 0; j < ny; ++j) wy[j] = axis_weight(ty, j);
          for (int64_t rx = 0; rx < p.resized_width; ++rx) {
            const AxisTaps& tx = xtaps[rx];
            const float* wx = xweights.data() + xw_offset[rx];
            float acc = 0.0f;
            for (int j = 0; j < ty.count; ++j) {
              const float* s = src_rows[j].data() + tx.first;
              float row = 0.0f;
              for (int i = 0; i < tx.count; ++i) row = fadd(row, fmul(wx[i], s[i]));
              acc = fadd(acc, fmul(j < 64 ? wy[j] : axis_weight(ty, j), row));
            }
            frame_row[rx] = acc;
          }
        }
        const float lo = r.lo32, scale = r.scale32;
        for (int64_t x = 0; x < p.resized_width; ++x) frame_row[x] = normalize_value(frame_row[x], lo, scale);
        for (int64_t fx = p.resized_width; fx < p.frame_width; ++fx) {
          const int64_t rx = col_src[fx];
          frame_row[fx] = rx < 0 ? 0.0f : frame_row[rx];
        }
      }
      if (direct) continue;
      // Scatter this frame row into every tile that covers it.
      for (int64_t ty = 0; ty < p.tiles_y; ++ty) {
        const int64_t oy = tile_origin(ty, p.frame_height, p.tile_height, p.tile_overlap);
        if (fy < oy || fy >= oy + p.tile_height) continue;
        for (int64_t tx = 0; tx < p.tiles_x; ++tx) {
          const int64_t ox = tile_origin(tx, p.frame_width, p.tile_width, p.tile_overlap);
          Out* dst = out + (ty * p.tiles_x + tx) * plane + (fy - oy) * p.tile_width;
          for (int64_t x = 0; x < p.tile_width; ++x) store_value(dst, x, frame_row[ox + x]);
        }
      }
    }
  });
}

}  // namespace

PreprocessPlan checked_output(const ImageView& image, const PreprocessOptions& options, const void* out,
                              size_t out_bytes) {
  const PreprocessPlan plan = plan_preprocess(image, options);
  if (!out) fail(ErrorCode::InvalidArgument, "output pointer is null");
  const size_t need = preprocess_bytes(plan, options.out_dtype);
  if (out_bytes < need) {
    fail(ErrorCode::InvalidArgument, "output buffer has " + std::to_string(out_bytes) + " bytes, needs " +
                                         std::to_string(need) + " for " + std::to_string(plan.batch()) + "x1x" +
                                         std::to_string(plan.tile_height) + "x" + std::to_string(plan.tile_width) +
                                         " " + dtype_name(options.out_dtype));
  }
  const size_t plane = static_cast<size_t>(image.height * image.width) * sizeof(float);
  const bool over_image = bytes_overlap(out, need, image.data, image_extent(image));
  if (over_image || bytes_overlap(out, need, options.dark, plane) || bytes_overlap(out, need, options.flat, plane)) {
    fail(ErrorCode::InvalidArgument, std::string("output buffer overlaps the ") +
                                         (over_image ? "image" : "dark frame or flat field") +
                                         "; preprocessing cannot write over what it reads");
  }
  return plan;
}

void preprocess_with_range(const ImageView& image, const PreprocessOptions& options, const NormRange& range,
                           void* out, size_t out_bytes) {
  const ImageView im = checked_input(image);
  const PreprocessPlan plan = checked_output(im, options, out, out_bytes);
  if (options.out_dtype == DType::F32) {
    run_preprocess(im, options, plan, range, static_cast<float*>(out));
  } else {
    run_preprocess(im, options, plan, range, static_cast<uint16_t*>(out));
  }
}

NormRange preprocess(const ImageView& image, const PreprocessOptions& options, void* out, size_t out_bytes) {
  plan_preprocess(image, options);
  const NormRange range = compute_range(image, options.channel, options.norm, options.dark, options.flat);
  preprocess_with_range(image, options, range, out, out_bytes);
  return range;
}

}  // namespace ifrt
