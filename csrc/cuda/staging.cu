// Pinned host staging for uploading camera frames (cuda/kernels.h).
#include <cuda_runtime.h>

#include <cstring>
#include <string>

#include "cuda/check.h"
#include "cuda/kernels.h"
#include "cuda/stream.h"

namespace ifrt::cuda {

Staging::~Staging() {
  if (uploaded_) {
    cudaEventSynchronize(static_cast<cudaEvent_t>(uploaded_));
    cudaEventDestroy(static_cast<cudaEvent_t>(uploaded_));
  }
  if (pinned_) cudaFreeHost(pinned_);
  if (device_) cudaFree(device_);
}

ImageView Staging::upload(const ImageView& host_image, void* stream) {
  const ImageView im = checked_input(host_image);
  const size_t extent = image_extent(im);
  if (!uploaded_ || extent > capacity_) {
    require_uncaptured(stream_capturing(stream), "the pinned staging buffer for a host frame of " +
                                                     std::to_string(extent) + " bytes (one per thread, device and stream)");
  }
  if (!uploaded_) {
    cudaEvent_t e = nullptr;
    IFRT_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    uploaded_ = e;
  }
  // The pinned buffer may still be the source of the previous upload.
  IFRT_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(uploaded_)));
  if (extent > capacity_) {
    if (pinned_) IFRT_CUDA_CHECK(cudaFreeHost(pinned_));
    if (device_) IFRT_CUDA_CHECK(cudaFree(device_));
    pinned_ = device_ = nullptr;
    capacity_ = 0;
    IFRT_CUDA_CHECK(cudaMallocHost(&pinned_, extent));
    IFRT_CUDA_CHECK(cudaMalloc(&device_, extent));
    capacity_ = extent;
  }
  std::memcpy(pinned_, im.data, extent);
  IFRT_CUDA_CHECK(cudaMemcpyAsync(device_, pinned_, extent, cudaMemcpyHostToDevice, as_stream(stream)));
  IFRT_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(uploaded_), as_stream(stream)));
  ImageView device = im;
  device.data = device_;
  return device;
}

}  // namespace ifrt::cuda
