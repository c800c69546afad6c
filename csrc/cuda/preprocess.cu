// CUDA preprocess: normalization range on the device (exact percentile selection, min-max) and the
// per-element preprocess kernel. Math from core/normalize.h, core/resample.h, core/half.h.
#include <cuda_runtime.h>

#include <string>
#include <type_traits>

#include "core/half.h"
#include "cuda/check.h"
#include "cuda/kernels.h"
#include "cuda/stream.h"

namespace ifrt::cuda {

namespace {

constexpr int kBins = 65536;

// Where the pixels are and how to correct them; base already points at the picked channel.
struct Source {
  const unsigned char* base;
  int64_t row_stride, pixel_stride, width;
  const float* dark;
  const float* flat;
};

template <typename T>
__device__ __forceinline__ float source_value(const Source& s, int64_t y, int64_t x) {
  return correct_value(load_as_float<T>(s.base, s.row_stride, s.pixel_stride, y, x), s.dark, s.flat, y * s.width + x);
}

// Order-preserving map of float bits to uint32 (negative values reversed below positive ones).
__device__ __forceinline__ uint32_t float_key(float v) {
  const uint32_t u = float_bits(v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float key_float(uint32_t k) {
  return bits_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

// kIntKeys: uint8/uint16 without correction, the key is the pixel value (one histogram pass).
template <typename T, bool kIntKeys>
__device__ __forceinline__ bool pixel_key(const Source& s, int64_t y, int64_t x, uint32_t* key) {
  if (kIntKeys) {
    *key = static_cast<uint32_t>(*reinterpret_cast<const T*>(s.base + y * s.row_stride + x * s.pixel_stride));
    return true;
  }
  const float v = source_value<T>(s, y, x);
  if (!isfinite(v)) return false;
  *key = float_key(v);
  return true;
}

// pass 1: histogram of key (int keys) or key >> 16; pass 2: for each target t, histogram of the low
// 16 bits of keys whose high half equals select[t], into hist[(1 + t) * kBins].
template <typename T, bool kIntKeys, int kPass>
__global__ void histogram_kernel(Source s, int64_t h, int64_t w, uint32_t* hist, const uint32_t* select,
                                 int* error) {
  uint32_t tops[4] = {0, 0, 0, 0};
  if (kPass == 2)
    for (int t = 0; t < 4; ++t) tops[t] = select[t];
  for (int64_t y = blockIdx.y; y < h; y += gridDim.y) {
    for (int64_t x = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; x < w; x += int64_t(gridDim.x) * blockDim.x) {
      uint32_t key;
      if (!pixel_key<T, kIntKeys>(s, y, x, &key)) {
        *error = 1;
        continue;
      }
      if (kPass == 1) {
        atomicAdd(&hist[kIntKeys ? key : (key >> 16)], 1u);
      } else {
        for (int t = 0; t < 4; ++t)
          if ((key >> 16) == tops[t]) atomicAdd(&hist[(1 + t) * kBins + (key & 0xffffu)], 1u);
      }
    }
  }
}

struct Ranks {
  unsigned long long r[4];
};

// One block of 1024 threads per histogram: the bin where the cumulative count first exceeds each
// rank. Pass 1 (gridDim.x == 1): ranks from the host, results select[t] = bin, select[4+t] = rank
// left inside the bin. Pass 2 (gridDim.x == 4): block t ranks select[4+t] in histogram 1+t and
// writes select[8+t]. Thread t owns the 64 bins from 64 t; their count is summed by its warp reading
// 32 consecutive bins at a time (coalesced), and the block's exclusive prefix of those counts is a
// shuffle scan in each warp, then one over the 32 warp totals.
__global__ void select_kernel(const uint32_t* hist, uint32_t* select, Ranks ranks, int pass) {
  constexpr int per = kBins / 1024;  // bins per thread
  static_assert(per % 32 == 0, "a thread's bins are whole rows of 32");
  __shared__ unsigned long long warp_before[32];
  const int t = threadIdx.x, lane = t % 32, warp = t / 32;
  const uint32_t* hb = pass == 1 ? hist : hist + (1 + blockIdx.x) * kBins;
  const uint32_t* warp_bins = hb + warp * 32 * per;
  unsigned long long own = 0;
  for (int row = 0; row < per; ++row) {  // the warp's 32 * per bins, 32 per row: row r is in lane r / (per / 32)'s bins
    unsigned long long v = warp_bins[row * 32 + lane];
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == row / (per / 32)) own += v;
  }
  unsigned long long inclusive = own;  // within the warp
  for (int o = 1; o < 32; o *= 2) {
    const unsigned long long before = __shfl_up_sync(0xffffffffu, inclusive, o);
    if (lane >= o) inclusive += before;
  }
  if (lane == 31) warp_before[warp] = inclusive;  // the warp's total, for now
  __syncthreads();
  if (warp == 0) {
    const unsigned long long total = warp_before[lane];
    unsigned long long running = total;
    for (int o = 1; o < 32; o *= 2) {
      const unsigned long long before = __shfl_up_sync(0xffffffffu, running, o);
      if (lane >= o) running += before;
    }
    warp_before[lane] = running - total;  // each lane reads and writes its own entry only
  }
  __syncthreads();
  const unsigned long long begin = warp_before[warp] + inclusive - own;  // bins before thread t's
  const int nranks = pass == 1 ? 4 : 1;
  for (int k = 0; k < nranks; ++k) {
    const unsigned long long rank = pass == 1 ? ranks.r[k] : select[4 + blockIdx.x];
    if (rank >= begin && rank < begin + own) {
      unsigned long long c = begin;
      for (int i = 0; i < per; ++i) {
        const unsigned long long v = hb[t * per + i];
        if (rank < c + v) {
          if (pass == 1) {
            select[k] = static_cast<uint32_t>(t * per + i);
            select[4 + k] = static_cast<uint32_t>(rank - c);
          } else {
            select[8 + blockIdx.x] = static_cast<uint32_t>(t * per + i);
          }
          break;
        }
        c += v;
      }
    }
  }
}

__device__ void store_range(NormRange* out, double lo, double hi) {
  out->lo = lo;
  out->hi = hi;
  out->lo32 = static_cast<float>(lo);
  out->scale32 = norm_scale(lo, hi);
}

template <typename T, bool kIntKeys>
__global__ void finish_percentile_kernel(const uint32_t* select, double gamma_low, double gamma_high, NormRange* out) {
  double r[2];
  for (int i = 0; i < 2; ++i) {
    const double g = i == 0 ? gamma_low : gamma_high;
    if (kIntKeys) {
      r[i] = percentile_lerp<T>(static_cast<T>(select[2 * i]), static_cast<T>(select[2 * i + 1]), g);
    } else {
      const float a = key_float((select[2 * i] << 16) | select[8 + 2 * i]);
      const float b = key_float((select[2 * i + 1] << 16) | select[8 + 2 * i + 1]);
      r[i] = percentile_lerp<float>(a, b, g);
    }
  }
  store_range(out, r[0], r[1]);
}

template <typename T, bool kIntKeys>
__global__ void minmax_kernel(Source s, int64_t h, int64_t w, uint32_t* select, int* error) {
  uint32_t lo = 0xffffffffu, hi = 0u;
  for (int64_t y = blockIdx.y; y < h; y += gridDim.y) {
    for (int64_t x = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; x < w; x += int64_t(gridDim.x) * blockDim.x) {
      uint32_t key;
      if (!pixel_key<T, kIntKeys>(s, y, x, &key)) {
        *error = 1;
        continue;
      }
      lo = key < lo ? key : lo;
      hi = key > hi ? key : hi;
    }
  }
  // Warp reduction first: one pair of atomics per warp instead of per thread.
  for (int o = 16; o > 0; o /= 2) {
    const uint32_t l = __shfl_down_sync(0xffffffffu, lo, o), h = __shfl_down_sync(0xffffffffu, hi, o);
    lo = l < lo ? l : lo;
    hi = h > hi ? h : hi;
  }
  if ((threadIdx.x & 31) == 0) {
    atomicMin(&select[0], lo);
    atomicMax(&select[1], hi);
  }
}

template <bool kIntKeys>
__global__ void finish_minmax_kernel(const uint32_t* select, NormRange* out) {
  if (kIntKeys) {
    store_range(out, static_cast<double>(select[0]), static_cast<double>(select[1]));
  } else {
    store_range(out, static_cast<double>(key_float(select[0])), static_cast<double>(key_float(select[1])));
  }
}

__global__ void fixed_range_kernel(double lo, double hi, NormRange* out) { store_range(out, lo, hi); }

struct Plan {
  int64_t src_h, src_w, rh, rw, fh, fw, th, tw, overlap, tiles_x, rows;  // rows = batch * th
  ResizeMode resize;
  PadMode pad;
};

template <typename T, typename Out>
__global__ void preprocess_kernel(Source s, Plan p, const NormRange* range, Out* out) {
  const int64_t x = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (x >= p.tw) return;
  const float lo = range->lo32, scale = range->scale32;
  for (int64_t row = blockIdx.y * int64_t(blockDim.y) + threadIdx.y; row < p.rows;
       row += int64_t(gridDim.y) * blockDim.y) {
    const int64_t n = row / p.th, y = row - n * p.th;
    const int64_t fy = tile_origin(n / p.tiles_x, p.fh, p.th, p.overlap) + y;
    const int64_t fx = tile_origin(n % p.tiles_x, p.fw, p.tw, p.overlap) + x;
    const int64_t ry = pad_index(p.pad, fy, p.rh), rx = pad_index(p.pad, fx, p.rw);
    float v = 0.0f;
    if (ry >= 0 && rx >= 0) {
      float r;
      if (p.resize == ResizeMode::None) {
        r = source_value<T>(s, ry, rx);
      } else {
        auto src = [&](int64_t sy, int64_t sx) { return source_value<T>(s, sy, sx); };
        r = resample_value(src, axis_taps(p.resize, ry, p.src_h, p.rh), axis_taps(p.resize, rx, p.src_w, p.rw));
      }
      v = normalize_value(r, lo, scale);
    }
    store_value(out, row * p.tw + x, v);
  }
}

dim3 pixel_grid(int64_t h, int64_t w) {
  return dim3(blocks_for(w, 256, 64), static_cast<unsigned int>(h < 1024 ? h : 1024));
}

template <typename T, bool kIntKeys>
void enqueue_range(const Source& s, int64_t h, int64_t w, const NormSpec& spec, Workspace& ws, cudaStream_t st) {
  const dim3 grid = pixel_grid(h, w);
  IFRT_CUDA_CHECK(cudaMemsetAsync(ws.error(), 0, sizeof(int), st));
  if (spec.mode == NormMode::Fixed) {
    fixed_range_kernel<<<1, 1, 0, st>>>(spec.lo, spec.hi, ws.range());
  } else if (spec.mode == NormMode::MinMax) {
    IFRT_CUDA_CHECK(cudaMemsetAsync(ws.selection(), 0xff, sizeof(uint32_t), st));
    IFRT_CUDA_CHECK(cudaMemsetAsync(ws.selection() + 1, 0, sizeof(uint32_t), st));
    minmax_kernel<T, kIntKeys><<<grid, 256, 0, st>>>(s, h, w, ws.selection(), ws.error());
    IFRT_CUDA_CHECK_LAUNCH();
    finish_minmax_kernel<kIntKeys><<<1, 1, 0, st>>>(ws.selection(), ws.range());
  } else {
    const int64_t n = h * w;
    const PercentileIndex il = percentile_index(n, spec.p_low), ih = percentile_index(n, spec.p_high);
    Ranks ranks{{static_cast<unsigned long long>(il.prev), static_cast<unsigned long long>(il.next),
                 static_cast<unsigned long long>(ih.prev), static_cast<unsigned long long>(ih.next)}};
    IFRT_CUDA_CHECK(cudaMemsetAsync(ws.histogram(), 0, sizeof(uint32_t) * kBins, st));
    histogram_kernel<T, kIntKeys, 1><<<grid, 256, 0, st>>>(s, h, w, ws.histogram(), ws.selection(), ws.error());
    IFRT_CUDA_CHECK_LAUNCH();
    select_kernel<<<1, 1024, 0, st>>>(ws.histogram(), ws.selection(), ranks, 1);
    IFRT_CUDA_CHECK_LAUNCH();
    if (!kIntKeys) {
      IFRT_CUDA_CHECK(cudaMemsetAsync(ws.histogram() + kBins, 0, sizeof(uint32_t) * 4 * kBins, st));
      histogram_kernel<T, kIntKeys, 2><<<grid, 256, 0, st>>>(s, h, w, ws.histogram(), ws.selection(), ws.error());
      IFRT_CUDA_CHECK_LAUNCH();
      select_kernel<<<4, 1024, 0, st>>>(ws.histogram(), ws.selection(), ranks, 2);
      IFRT_CUDA_CHECK_LAUNCH();
    }
    finish_percentile_kernel<T, kIntKeys><<<1, 1, 0, st>>>(ws.selection(), il.gamma, ih.gamma, ws.range());
  }
  IFRT_CUDA_CHECK_LAUNCH();
  ws.range_enqueued(st);
}

template <typename T>
void enqueue_preprocess(const ImageView& im, const PreprocessOptions& o, const PreprocessPlan& pp, void* out,
                        Workspace& ws, cudaStream_t st) {
  Source s{static_cast<const unsigned char*>(im.data) + o.channel * sizeof(T), im.row_stride, im.pixel_stride,
           im.width, o.dark, o.flat};
  const bool int_keys = sizeof(T) <= 2 && !o.dark && !o.flat;
  if (int_keys) {
    enqueue_range<T, true>(s, im.height, im.width, o.norm, ws, st);
  } else {
    enqueue_range<T, false>(s, im.height, im.width, o.norm, ws, st);
  }
  Plan p{pp.src_height, pp.src_width, pp.resized_height, pp.resized_width, pp.frame_height, pp.frame_width,
         pp.tile_height, pp.tile_width, pp.tile_overlap, pp.tiles_x, pp.batch() * pp.tile_height, o.resize, o.pad};
  const dim3 block(64, 4);
  const dim3 grid(column_blocks(p.tw, 64), blocks_for(p.rows, 4, 16384));  // a thread per column
  if (o.out_dtype == DType::F32) {
    preprocess_kernel<T, float><<<grid, block, 0, st>>>(s, p, ws.range(), static_cast<float*>(out));
  } else {
    preprocess_kernel<T, uint16_t><<<grid, block, 0, st>>>(s, p, ws.range(), static_cast<uint16_t*>(out));
  }
  IFRT_CUDA_CHECK_LAUNCH();
}

}  // namespace

Workspace::~Workspace() {
  // cudaFree and cudaFreeHost wait for outstanding work, so this is safe after the stream is gone
  // (thread-exit destruction in the C ABI); a workspace is released rarely, never per frame.
  if (hist_) cudaFree(hist_);
  if (select_) cudaFree(select_);
  if (range_) cudaFree(range_);
  if (error_) cudaFree(error_);
  if (host_error_) cudaFreeHost(host_error_);
  if (range_done_) cudaEventDestroy(static_cast<cudaEvent_t>(range_done_));
}

void Workspace::reserve(void* stream) {
  if (hist_ && select_ && range_ && error_ && host_error_ && range_done_) return;
  require_uncaptured(stream_capturing(stream), "the preprocess workspace (one per thread, device and stream)");
  // Each buffer that is missing: after a failed allocation the next call completes the set, where testing
  // the first buffer alone launched the kernels with the later ones null.
  const cudaStream_t st = as_stream(stream);
  const auto allocate = [st](auto** buffer, size_t bytes) {
    if (*buffer) return;
    void* p = nullptr;
    IFRT_CUDA_CHECK(cudaMallocAsync(&p, bytes, st));
    *buffer = static_cast<std::remove_pointer_t<decltype(buffer)>>(p);
  };
  allocate(&hist_, sizeof(uint32_t) * 5 * kBins);
  allocate(&select_, sizeof(uint32_t) * 16);
  allocate(&range_, sizeof(NormRange));
  allocate(&error_, sizeof(int));
  if (!host_error_) {
    void* p = nullptr;
    IFRT_CUDA_CHECK(cudaMallocHost(&p, sizeof(int)));
    host_error_ = static_cast<int*>(p);
  }
  if (!range_done_) {
    cudaEvent_t e = nullptr;
    IFRT_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    range_done_ = e;
  }
}

void Workspace::range_enqueued(void* stream) {
  if (stream_capturing(stream)) {
    // The range pass runs at each replay of the graph, which the host does not see; an event recorded
    // here would belong to the capture and could not be waited for.
    state_ = RangeState::InGraph;
    return;
  }
  const cudaStream_t st = as_stream(stream);
  IFRT_CUDA_CHECK(cudaMemcpyAsync(host_error_, error_, sizeof(int), cudaMemcpyDeviceToHost, st));
  IFRT_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(range_done_), st));
  state_ = RangeState::Finite;
}

RangeState Workspace::last_range(void* stream) {
  if (state_ != RangeState::Finite) return state_;
  if (stream_capturing(stream)) return RangeState::InGraph;  // waiting is not allowed there; the kernel checks
  IFRT_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(range_done_)));
  return *host_error_ ? RangeState::NonFinite : RangeState::Finite;
}

void preprocess(const ImageView& image, const PreprocessOptions& options, void* out, size_t out_bytes, Workspace& ws,
                void* stream) {
  const ImageView im = checked_input(image);
  const PreprocessPlan plan = checked_output(im, options, out, out_bytes);
  if (im.height * im.width >= (int64_t(1) << 32)) {
    fail(ErrorCode::InvalidArgument, "the CUDA path handles images below 2^32 pixels");
  }
  ws.reserve(stream);
  ws.range_started();
  const cudaStream_t st = as_stream(stream);
  switch (im.dtype) {
    case DType::U8: enqueue_preprocess<uint8_t>(im, options, plan, out, ws, st); break;
    case DType::U16: enqueue_preprocess<uint16_t>(im, options, plan, out, ws, st); break;
    case DType::F32: enqueue_preprocess<float>(im, options, plan, out, ws, st); break;
    default: fail(ErrorCode::InvalidArgument, "unsupported input dtype");
  }
}

NormRange read_range(const Workspace& ws, void* stream) {
  if (!ws.device_range()) fail(ErrorCode::InvalidArgument, "no preprocessing has run on this workspace yet");
  NormRange r;
  int error = 0;
  IFRT_CUDA_CHECK(cudaMemcpyAsync(&r, ws.device_range(), sizeof(r), cudaMemcpyDeviceToHost, as_stream(stream)));
  IFRT_CUDA_CHECK(cudaMemcpyAsync(&error, ws.device_error(), sizeof(error), cudaMemcpyDeviceToHost, as_stream(stream)));
  IFRT_CUDA_CHECK(cudaStreamSynchronize(as_stream(stream)));
  if (error) fail(ErrorCode::InvalidArgument, "image contains non-finite values; normalization needs finite values");
  return r;
}

}  // namespace ifrt::cuda
