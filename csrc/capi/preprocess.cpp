// C ABI: preprocessing (ifrt/preprocess.h).
#include "capi/cuda_workspace.h"
#include "capi/guard.h"
#include "capi/image.h"
#include "capi/options.h"
#include "core/preprocess.h"
#if IFRT_WITH_CUDA
#include "cuda/kernels.h"
#endif

namespace ifrt::capi {

PreprocessOptions options_from(const ifrt_preprocess_options* o) {
  PreprocessOptions p;
  if (!o) return p;
  p.channel = o->channel;
  p.dark = o->dark;
  p.flat = o->flat;
  p.norm.mode = static_cast<NormMode>(enum_code(o->norm));
  p.norm.p_low = o->p_low;
  p.norm.p_high = o->p_high;
  p.norm.lo = o->lo;
  p.norm.hi = o->hi;
  p.resize = static_cast<ResizeMode>(enum_code(o->resize));
  p.out_height = o->out_height;
  p.out_width = o->out_width;
  p.pad_multiple = o->pad_multiple;
  p.pad = static_cast<PadMode>(enum_code(o->pad));
  p.tile_height = o->tile_height;
  p.tile_width = o->tile_width;
  p.tile_overlap = o->tile_overlap;
  p.out_dtype = dtype_from(o->out_dtype, "out_dtype");
  return p;
}

namespace {

#if IFRT_WITH_CUDA
cuda::Staging& staging(void* stream) { return cuda::per_thread_and_stream<cuda::Staging>(stream); }
#endif

}  // namespace

#if IFRT_WITH_CUDA
cuda::Workspace& workspace(void* stream) { return cuda::per_thread_and_stream<cuda::Workspace>(stream); }

cuda::Workspace& last_preprocess(void* stream) {
  cuda::Workspace& ws = workspace(stream);
  cuda::require_usable_range(ws.last_range(stream));
  return ws;
}
#endif

}  // namespace ifrt::capi

using namespace ifrt;
using namespace ifrt::capi;

extern "C" {

IFRT_API void ifrt_preprocess_options_init(ifrt_preprocess_options* o) {
  if (!o) return;
  const PreprocessOptions d;
  o->channel = d.channel;
  o->dark = nullptr;
  o->flat = nullptr;
  o->norm = IFRT_NORM_PERCENTILE;
  o->p_low = d.norm.p_low;
  o->p_high = d.norm.p_high;
  o->lo = d.norm.lo;
  o->hi = d.norm.hi;
  o->resize = IFRT_RESIZE_NONE;
  o->out_height = 0;
  o->out_width = 0;
  o->pad_multiple = d.pad_multiple;
  o->pad = IFRT_PAD_REFLECT;
  o->tile_height = 0;
  o->tile_width = 0;
  o->tile_overlap = 0;
  o->out_dtype = IFRT_DTYPE_FLOAT32;
}

IFRT_API ifrt_status ifrt_preprocess_shape_of(const ifrt_image* image, const ifrt_preprocess_options* options,
                                              ifrt_preprocess_shape* shape) {
  return guarded([&] {
    require(shape, "shape");
    const ImageView im = image_from(image);
    const PreprocessOptions o = options_from(options);
    const PreprocessPlan p = plan_preprocess(im, o);
    shape->batch = p.batch();
    shape->height = p.tile_height;
    shape->width = p.tile_width;
    shape->tiles_y = p.tiles_y;
    shape->tiles_x = p.tiles_x;
    shape->frame_height = p.frame_height;
    shape->frame_width = p.frame_width;
    shape->resized_height = p.resized_height;
    shape->resized_width = p.resized_width;
    shape->bytes = preprocess_bytes(p, o.out_dtype);
  });
}

IFRT_API ifrt_status ifrt_preprocess(const ifrt_image* image, const ifrt_preprocess_options* options, void* out,
                                     size_t out_bytes, double* lo, double* hi) {
  return guarded([&] {
    require(out, "out");
    const NormRange r = preprocess(image_from(image), options_from(options), out, out_bytes);
    if (lo) *lo = r.lo;
    if (hi) *hi = r.hi;
  });
}

IFRT_API ifrt_status ifrt_preprocess_cuda(const ifrt_image* image, const ifrt_preprocess_options* options, void* out,
                                          size_t out_bytes, void* cuda_stream) {
  return guarded([&] {
#if IFRT_WITH_CUDA
    require(out, "out");
    const ImageView im = image_from(image);
    const PreprocessOptions o = options_from(options);
    checked_output(im, o, out, out_bytes);  // bad arguments are refused before any CUDA call
    cuda::preprocess(im, o, out, out_bytes, workspace(cuda_stream), cuda_stream);
#else
    (void)image, (void)options, (void)out, (void)out_bytes, (void)cuda_stream;
    fail(ErrorCode::Unsupported, "ifrt was built without CUDA kernels; use ifrt_preprocess (CPU)");
#endif
  });
}

IFRT_API ifrt_status ifrt_preprocess_cuda_host(const ifrt_image* image, const ifrt_preprocess_options* options,
                                               void* out, size_t out_bytes, void* cuda_stream) {
  return guarded([&] {
#if IFRT_WITH_CUDA
    require(out, "out");
    const PreprocessOptions o = options_from(options);
    const ImageView host = image_from(image);
    plan_preprocess(host, o);  // validate before any CUDA call
    const ImageView device = staging(cuda_stream).upload(host, cuda_stream);
    cuda::preprocess(device, o, out, out_bytes, workspace(cuda_stream), cuda_stream);
#else
    (void)image, (void)options, (void)out, (void)out_bytes, (void)cuda_stream;
    fail(ErrorCode::Unsupported, "ifrt was built without CUDA kernels; use ifrt_preprocess (CPU)");
#endif
  });
}

IFRT_API ifrt_status ifrt_preprocess_cuda_range(void* cuda_stream, double* lo, double* hi) {
  return guarded([&] {
#if IFRT_WITH_CUDA
    const NormRange r = cuda::read_range(workspace(cuda_stream), cuda_stream);
    if (lo) *lo = r.lo;
    if (hi) *hi = r.hi;
#else
    (void)cuda_stream, (void)lo, (void)hi;
    fail(ErrorCode::Unsupported, "ifrt was built without CUDA kernels");
#endif
  });
}

}  // extern "C"
