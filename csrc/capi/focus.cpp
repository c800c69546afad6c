// C ABI: focus metrics (ifrt/focus.h).
#include "capi/guard.h"
#include "capi/image.h"
#include "core/focus.h"

struct ifrt_focus {
  ifrt_focus_options options;
};

using namespace ifrt;
using namespace ifrt::capi;

namespace {

void copy_metrics(const FocusMetrics& m, ifrt_focus_metrics* out) {
  out->var_laplacian = m.var_laplacian;
  out->tenengrad = m.tenengrad;
  out->brenner = m.brenner;
  out->normalized_variance = m.normalized_variance;
  out->vollath_f4 = m.vollath_f4;
}

}  // namespace

extern "C" {

IFRT_API void ifrt_focus_options_init(ifrt_focus_options* options) {
  if (!options) return;
  options->channel = 0;
  options->tile_height = 0;
  options->tile_width = 0;
}

IFRT_API ifrt_status ifrt_focus_create(const ifrt_focus_options* options, ifrt_focus** focus) {
  if (focus) *focus = nullptr;
  return guarded([&] {
    require(focus, "focus");
    ifrt_focus_options o;
    ifrt_focus_options_init(&o);
    if (options) o = *options;
    int64_t th = o.tile_height, tw = o.tile_width, ty = 0, tx = 0;
    focus_grid(1, 1, &th, &tw, &ty, &tx);  // validates the tile size
    if (o.channel < 0) fail(ErrorCode::InvalidArgument, "channel " + std::to_string(o.channel) + " is negative");
    *focus = new ifrt_focus{o};
  });
}

IFRT_API ifrt_status ifrt_focus_tile_grid(const ifrt_focus* focus, int64_t height, int64_t width, int64_t* tiles_y,
                                          int64_t* tiles_x) {
  return guarded([&] {
    require(focus, "focus");
    require(tiles_y, "tiles_y");
    require(tiles_x, "tiles_x");
    if (height < 1 || width < 1) {
      fail(ErrorCode::InvalidArgument, "image size " + std::to_string(height) + "x" + std::to_string(width) + " is empty");
    }
    int64_t th = focus->options.tile_height, tw = focus->options.tile_width;
    focus_grid(height, width, &th, &tw, tiles_y, tiles_x);
  });
}

IFRT_API ifrt_status ifrt_focus_compute(ifrt_focus* focus, const ifrt_image* image, ifrt_focus_metrics* global,
                                        ifrt_focus_metrics* tiles, size_t tile_capacity) {
  return guarded([&] {
    require(focus, "focus");
    const ImageView im = image_from(image);
    int64_t th = focus->options.tile_height, tw = focus->options.tile_width, ty = 0, tx = 0;
    focus_grid(im.height, im.width, &th, &tw, &ty, &tx);
    if (tiles && tile_capacity < static_cast<size_t>(ty * tx)) {
      fail(ErrorCode::InvalidArgument, "tiles: capacity " + std::to_string(tile_capacity) + " is smaller than the " +
                                           std::to_string(ty * tx) + " tiles of this image");
    }
    const FocusResult r = ifrt::focus(im, focus->options.channel, focus->options.tile_height, focus->options.tile_width);
    if (global) copy_metrics(r.global, global);
    if (tiles)
      for (size_t t = 0; t < r.tiles.size(); ++t) copy_metrics(r.tiles[t], tiles + t);
  });
}

IFRT_API void ifrt_focus_release(ifrt_focus* focus) { delete focus; }

}  // extern "C"
