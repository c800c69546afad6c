// C ABI: focus metrics (ifrt/focus.h).
#include <memory>
#include <string>

#include "capi/guard.h"
#include "capi/image.h"
#include "core/focus.h"

#if IFRT_WITH_CUDA
#include <cstddef>
#include <map>
#include <memory>
#include <utility>

#include "cuda/kernels.h"

// The CUDA kernels write ifrt::FocusMetrics straight into the caller's ifrt_focus_metrics.
static_assert(sizeof(ifrt_focus_metrics) == sizeof(ifrt::FocusMetrics), "metrics layout");
static_assert(offsetof(ifrt_focus_metrics, var_laplacian) == offsetof(ifrt::FocusMetrics, var_laplacian) &&
                  offsetof(ifrt_focus_metrics, tenengrad) == offsetof(ifrt::FocusMetrics, tenengrad) &&
                  offsetof(ifrt_focus_metrics, brenner) == offsetof(ifrt::FocusMetrics, brenner) &&
                  offsetof(ifrt_focus_metrics, normalized_variance) == offsetof(ifrt::FocusMetrics, normalized_variance) &&
                  offsetof(ifrt_focus_metrics, vollath_f4) == offsetof(ifrt::FocusMetrics, vollath_f4),
              "metrics layout");
#endif

struct ifrt_focus {
  ifrt_focus_options options;
#if IFRT_WITH_CUDA
  // Per CUDA device and stream: the scratch is device memory, and the default stream (nullptr) is every device's.
  std::map<std::pair<int, void*>, std::unique_ptr<ifrt::cuda::FocusScratch>> scratch;
#endif
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
    auto handle = std::make_unique<ifrt_focus>();
    handle->options = o;
    *focus = handle.release();
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

IFRT_API ifrt_status ifrt_focus_compute_cuda(ifrt_focus* focus, const ifrt_image* image, ifrt_focus_metrics* global,
                                             ifrt_focus_metrics* tiles, size_t tile_capacity, void* cuda_stream) {
  return guarded([&] {
    require(focus, "focus");
    const ImageView im = image_from(image);
#if IFRT_WITH_CUDA
    int64_t th = focus->options.tile_height, tw = focus->options.tile_width, ty = 0, tx = 0;
    focus_grid(im.height, im.width, &th, &tw, &ty, &tx);
    const int64_t ntiles = ty * tx;
    if (tiles && tile_capacity < static_cast<size_t>(ntiles)) {
      fail(ErrorCode::InvalidArgument, "tiles: capacity " + std::to_string(tile_capacity) + " is smaller than the " +
                                           std::to_string(ntiles) + " tiles of this image");
    }
    auto& scratch = focus->scratch[{cuda::current_device(), cuda_stream}];
    if (!scratch) scratch = std::make_unique<cuda::FocusScratch>();
    cuda::focus(im, focus->options.channel, focus->options.tile_height, focus->options.tile_width,
                scratch->sums(ntiles, cuda_stream),
                tiles ? reinterpret_cast<FocusMetrics*>(tiles) : scratch->tile_metrics(ntiles, cuda_stream),
                global ? reinterpret_cast<FocusMetrics*>(global) : scratch->global_metrics(cuda_stream), cuda_stream);
#else
    (void)im, (void)global, (void)tiles, (void)tile_capacity, (void)cuda_stream;
    fail(ErrorCode::Unsupported, "ifrt was built without CUDA kernels; use ifrt_focus_compute (CPU)");
#endif
  });
}

IFRT_API void ifrt_focus_release(ifrt_focus* focus) { delete focus; }

}  // extern "C"
