// Host-memory wrappers around the CUDA kernels: copy in, enqueue, copy out, synchronize. They exist
// for tests and tools that compare the CUDA path with the CPU path; the hot path uses kernels.h
// directly on device buffers.
#include <cuda_runtime.h>

#include <cstring>
#include <string>
#include <vector>

#include "cuda/check.h"
#include "cuda/kernels.h"
#include "cuda/scoped.h"

namespace ifrt::cuda::host {

namespace {

void upload(void* dst, const void* src, size_t bytes, const Stream& s) {
  if (bytes) IFRT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s.get()));
}
void download(void* dst, const void* src, size_t bytes, const Stream& s) {
  if (bytes) IFRT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s.get()));
}

}  // namespace

NormRange preprocess(const ImageView& image, const PreprocessOptions& options, void* out, size_t out_bytes) {
  const PreprocessPlan plan = plan_preprocess(image, options);
  const ImageView im = checked_input(image);
  const size_t need = preprocess_bytes(plan, options.out_dtype);
  if (!out || out_bytes < need) fail(ErrorCode::InvalidArgument, "output buffer is null or too small");
  Stream s;
  DeviceBuffer d_out(need);
  const size_t plane = sizeof(float) * static_cast<size_t>(im.height * im.width);
  DeviceBuffer d_dark(options.dark ? plane : 0), d_flat(options.flat ? plane : 0);
  Staging staging;  // the frame goes through pinned memory, as a camera frame would
  const ImageView dim = staging.upload(im, s.get());
  if (options.dark) upload(d_dark.get(), options.dark, plane, s);
  if (options.flat) upload(d_flat.get(), options.flat, plane, s);
  PreprocessOptions dopt = options;
  dopt.dark = options.dark ? d_dark.get<float>() : nullptr;
  dopt.flat = options.flat ? d_flat.get<float>() : nullptr;
  NormRange range;
  int error = 0;
  {
    Workspace ws;
    cuda::preprocess(dim, dopt, d_out.get(), need, ws, s.get());
    download(out, d_out.get(), need, s);
    download(&range, ws.device_range(), sizeof(range), s);
    download(&error, ws.device_error(), sizeof(error), s);
    s.sync();
  }
  s.sync();
  if (error && options.norm.mode != NormMode::Fixed) {
    fail(ErrorCode::InvalidArgument,
         "image contains non-finite values (after dark/flat correction); normalization needs finite values");
  }
  return range;
}

NormRange preprocess_graph(const ImageView& image, const PreprocessOptions& options, void* out, size_t out_bytes,
                           int replays) {
  if (options.dark || options.flat) fail(ErrorCode::InvalidArgument, "preprocess_graph: dark/flat not supported here");
  if (replays < 1) fail(ErrorCode::InvalidArgument, "preprocess_graph: replays must be >= 1");
  const PreprocessPlan plan = plan_preprocess(image, options);
  const ImageView im = checked_input(image);
  const size_t need = preprocess_bytes(plan, options.out_dtype);
  if (!out || out_bytes < need) fail(ErrorCode::InvalidArgument, "output buffer is null or too small");
  Stream s;
  const size_t extent = image_extent(im);
  DeviceBuffer d_image(extent), d_out(need);
  ImageView dim = im;
  dim.data = d_image.get();
  NormRange range;
  {
    Workspace ws;
    PreprocessGraph graph(dim, options, d_out.get(), need, ws, s.get());
    for (int i = 0; i < replays; ++i) {
      IFRT_CUDA_CHECK(cudaMemsetAsync(d_out.get(), 0, need, s.get()));  // each replay must write it all again
      upload(d_image.get(), im.data, extent, s);
      graph.launch(s.get());
    }
    download(out, d_out.get(), need, s);
    download(&range, ws.device_range(), sizeof(range), s);
    s.sync();
  }
  return range;
}

void softmax(const float* logits, int64_t n, int64_t k, float temperature, float* probs) {
  if (!logits || !probs) fail(ErrorCode::InvalidArgument, "softmax: logits or output pointer is null");
  if (n < 0 || k < 1) fail(ErrorCode::InvalidArgument, "softmax: logits shape is invalid (need at least one class)");
  Stream s;
  const size_t bytes = sizeof(float) * static_cast<size_t>(n * k);
  DeviceBuffer d_in(bytes), d_out(bytes);
  upload(d_in.get(), logits, bytes, s);
  cuda::softmax(d_in.get<float>(), n, k, temperature, d_out.get<float>(), s.get());
  download(probs, d_out.get(), bytes, s);
  s.sync();
}

void blend_tiles(const float* tiles, const TileGrid& grid, float* out, int64_t height, int64_t width) {
  const TileGrid g = make_tile_grid(grid.frame_height, grid.frame_width, grid.tile_height, grid.tile_width, grid.overlap);
  if (!tiles || !out) fail(ErrorCode::InvalidArgument, "blend_tiles: tiles or output pointer is null");
  Stream s;
  const size_t in_bytes = sizeof(float) * static_cast<size_t>(g.tiles_y * g.tiles_x * g.tile_height * g.tile_width);
  const size_t out_bytes = sizeof(float) * static_cast<size_t>(height * width);
  DeviceBuffer d_in(in_bytes), d_out(out_bytes);
  upload(d_in.get(), tiles, in_bytes, s);
  cuda::blend_tiles(d_in.get<float>(), g, d_out.get<float>(), height, width, s.get());
  download(out, d_out.get(), out_bytes, s);
  s.sync();
}

void denormalize(const void* in, DType in_dtype, int64_t in_stride, int64_t height, int64_t width, double lo,
                 double hi, void* out, DType out_dtype) {
  if (!in || !out) fail(ErrorCode::InvalidArgument, "denormalize: input or output pointer is null");
  if (height < 1 || width < 1 || in_stride < width) fail(ErrorCode::InvalidArgument, "denormalize: bad size");
  Stream s;
  const size_t in_bytes = static_cast<size_t>(dtype_size(in_dtype) * ((height - 1) * in_stride + width));
  const size_t out_bytes = static_cast<size_t>(dtype_size(out_dtype) * height * width);
  DeviceBuffer d_in(in_bytes), d_out(out_bytes);
  upload(d_in.get(), in, in_bytes, s);
  cuda::denormalize(d_in.get(), in_dtype, in_stride, height, width, nullptr, lo, hi, d_out.get(), out_dtype, s.get());
  download(out, d_out.get(), out_bytes, s);
  s.sync();
}

void upsample_quality_map(const float* map, int64_t map_height, int64_t map_width, float* out, int64_t height,
                          int64_t width) {
  if (!map || !out) fail(ErrorCode::InvalidArgument, "upsample_quality_map: map or output pointer is null");
  if (map_height < 1 || map_width < 1 || height < 1 || width < 1) {
    fail(ErrorCode::InvalidArgument, "upsample_quality_map: sizes must be >= 1");
  }
  Stream s;
  const size_t in_bytes = sizeof(float) * static_cast<size_t>(map_height * map_width);
  const size_t out_bytes = sizeof(float) * static_cast<size_t>(height * width);
  DeviceBuffer d_in(in_bytes), d_out(out_bytes);
  upload(d_in.get(), map, in_bytes, s);
  cuda::upsample_quality_map(d_in.get<float>(), map_height, map_width, d_out.get<float>(), height, width, s.get());
  download(out, d_out.get(), out_bytes, s);
  s.sync();
}

FocusResult focus(const ImageView& image, int64_t channel, int64_t tile_height, int64_t tile_width) {
  const ImageView im = checked_input(image);
  FocusResult r;
  int64_t th = tile_height, tw = tile_width;
  focus_grid(im.height, im.width, &th, &tw, &r.tiles_y, &r.tiles_x);
  const int64_t ntiles = r.tiles_y * r.tiles_x;
  Stream s;
  const size_t extent = image_extent(im);
  DeviceBuffer d_image(extent), d_sums(sizeof(FocusSums) * ntiles), d_tiles(sizeof(FocusMetrics) * ntiles),
      d_global(sizeof(FocusMetrics));
  upload(d_image.get(), im.data, extent, s);
  ImageView dim = im;
  dim.data = d_image.get();
  cuda::focus(dim, channel, tile_height, tile_width, d_sums.get<FocusSums>(), d_tiles.get<FocusMetrics>(),
              d_global.get<FocusMetrics>(), s.get());
  r.tiles.resize(static_cast<size_t>(ntiles));
  download(r.tiles.data(), d_tiles.get(), sizeof(FocusMetrics) * ntiles, s);
  download(&r.global, d_global.get(), sizeof(FocusMetrics), s);
  s.sync();
  return r;
}

}  // namespace ifrt::cuda::host
