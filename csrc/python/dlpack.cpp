// ifrt._native: preprocessing of DLPack tensors (torch, CuPy, numpy, JAX ...) without copies. CPU
// tensors run the CPU path; CUDA tensors (when built with CUDA) run the kernels on the caller's
// stream, asynchronously.
#include <pybind11/stl.h>

#include <string>

#include "core/preprocess.h"
#include "python/arrays.h"
#include "python/bind.h"
#if IFRT_WITH_CUDA
#include "cuda/kernels.h"
#endif

namespace ifrt::python {

namespace {

// The DLPack ABI (dlpack.h, stable since v0.6), declared here to avoid a header dependency.
enum DLDeviceType : int32_t { kDLCPU = 1, kDLCUDA = 2, kDLCUDAHost = 3, kDLCUDAManaged = 13 };
struct DLDevice {
  int32_t device_type;
  int32_t device_id;
};
struct DLDataType {
  uint8_t code;  // 0 int, 1 uint, 2 float
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; NULL: compact row-major
  uint64_t byte_offset;
};
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};

// A consumed DLPack capsule; the producer's deleter runs when this goes out of scope.
class Borrowed {
 public:
  Borrowed(const py::object& obj, const py::object& stream, const char* what) {
    py::object capsule = py::hasattr(obj, "__dlpack__")
                             ? (stream.is_none() ? obj.attr("__dlpack__")() : obj.attr("__dlpack__")(py::arg("stream") = stream))
                             : obj;
    if (!PyCapsule_IsValid(capsule.ptr(), "dltensor")) {
      fail(ErrorCode::InvalidArgument, std::string(what) + ": expected an object with __dlpack__ or a DLPack capsule");
    }
    tensor_ = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
    PyCapsule_SetName(capsule.ptr(), "used_dltensor");  // the capsule no longer owns the tensor
  }
  ~Borrowed() {
    if (tensor_ && tensor_->deleter) tensor_->deleter(tensor_);
  }
  Borrowed(const Borrowed&) = delete;
  Borrowed& operator=(const Borrowed&) = delete;
  const DLTensor& t() const { return tensor_->dl_tensor; }
  char* data() const { return static_cast<char*>(t().data) + t().byte_offset; }
  bool on_cuda() const { return t().device.device_type == kDLCUDA || t().device.device_type == kDLCUDAManaged; }

 private:
  DLManagedTensor* tensor_ = nullptr;
};

DType dtype_of(const DLDataType& d, const char* what) {
  if (d.lanes == 1 && d.code == 1 && d.bits == 8) return DType::U8;
  if (d.lanes == 1 && d.code == 1 && d.bits == 16) return DType::U16;
  if (d.lanes == 1 && d.code == 2 && d.bits == 32) return DType::F32;
  if (d.lanes == 1 && d.code == 2 && d.bits == 16) return DType::F16;
  fail(ErrorCode::InvalidArgument, std::string(what) + ": DLPack dtype (code " + std::to_string(d.code) + ", " +
                                       std::to_string(d.bits) + " bits) is not supported");
}

int64_t stride_bytes(const DLTensor& t, int axis, int64_t element) {
  if (t.strides) return t.strides[axis] * element;
  int64_t s = element;
  for (int i = t.ndim - 1; i > axis; --i) s *= t.shape[i];
  return s;
}

ImageView image_of(const Borrowed& b) {
  const DLTensor& t = b.t();
  if (t.ndim != 2 && t.ndim != 3) fail(ErrorCode::InvalidArgument, "image: expected an H x W or H x W x C tensor");
  ImageView v;
  v.data = b.data();
  v.dtype = dtype_of(t.dtype, "image");
  const int64_t es = dtype_size(v.dtype);
  v.height = t.shape[0];
  v.width = t.shape[1];
  v.channels = t.ndim == 3 ? t.shape[2] : 1;
  if (t.ndim == 3) check_channels_last(v.height, v.width, v.channels, "image");
  if (t.ndim == 3 && v.channels > 1 && stride_bytes(t, 2, es) != es) {
    fail(ErrorCode::InvalidArgument, "image: channels must be adjacent in memory (make the tensor contiguous)");
  }
  v.row_stride = v.height > 1 ? stride_bytes(t, 0, es) : 0;
  v.pixel_stride = v.width > 1 ? stride_bytes(t, 1, es) : 0;
  return v;
}

#if IFRT_WITH_CUDA
// DLPack's stream integer as a cudaStream_t: None and 1 mean the legacy default stream.
void* stream_handle(const py::object& stream) {
  if (stream.is_none()) return nullptr;
  const auto value = stream.cast<uintptr_t>();
  return value == 1 ? nullptr : reinterpret_cast<void*>(value);
}

cuda::Workspace& workspace(void* stream) { return cuda::per_thread_and_stream<cuda::Workspace>(stream); }
#endif

}  // namespace

// Declared in python/preprocess.cpp: options dict -> PreprocessOptions.
PreprocessOptions preprocess_options_from(const py::dict& options, const ImageView& image, py::list& keep_alive);

void bind_dlpack(py::module_& m) {
  m.def("preprocess_dlpack", [](const py::object& image, const py::object& out, const py::dict& options,
                                py::object stream) -> py::object {
    // DLPack's stream argument: None for CPU tensors; for CUDA an integer cudaStream_t (1: the legacy
    // default stream).
    Borrowed in(image, stream, "image"), dst(out, stream, "out");
    if (in.on_cuda() != dst.on_cuda()) fail(ErrorCode::InvalidArgument, "image and out must be on the same device");
    const ImageView view = image_of(in);
    py::list keep;
    PreprocessOptions o = preprocess_options_from(options, view, keep);
    const PreprocessPlan plan = plan_preprocess(view, o);
    const DLTensor& t = dst.t();
    const bool shape_ok = t.ndim == 4 && t.shape[0] == plan.batch() && t.shape[1] == 1 && t.shape[2] == plan.tile_height &&
                          t.shape[3] == plan.tile_width;
    if (!shape_ok) {
      fail(ErrorCode::InvalidArgument, "out: shape must be " + std::to_string(plan.batch()) + "x1x" +
                                           std::to_string(plan.tile_height) + "x" + std::to_string(plan.tile_width));
    }
    o.out_dtype = dtype_of(t.dtype, "out");
    const int64_t es = dtype_size(o.out_dtype);
    if (t.strides && (stride_bytes(t, 3, es) != es || stride_bytes(t, 2, es) != plan.tile_width * es ||
                      stride_bytes(t, 0, es) != plan.tile_height * plan.tile_width * es)) {
      fail(ErrorCode::InvalidArgument, "out: must be contiguous");
    }
    const size_t bytes = preprocess_bytes(plan, o.out_dtype);
    if (!in.on_cuda()) {
      NormRange r;
      {
        py::gil_scoped_release release;
        r = preprocess(view, o, dst.data(), bytes);
      }
      return py::make_tuple(r.lo, r.hi);
    }
#if IFRT_WITH_CUDA
    if (o.dark || o.flat) fail(ErrorCode::Unsupported, "dark/flat with CUDA tensors: pass them through the C ABI");
    void* st = stream_handle(stream);
    {
      py::gil_scoped_release release;
      cuda::preprocess(view, o, dst.data(), bytes, workspace(st), st);
    }
    return py::none();  // enqueued; cuda_last_range(stream) waits and returns (lo, hi)
#else
    fail(ErrorCode::Unsupported, "ifrt was built without CUDA kernels; CUDA tensors cannot be preprocessed");
#endif
  }, py::arg("image"), py::arg("out"), py::arg("options"), py::arg("stream") = py::none(),
  "Preprocess a DLPack tensor into a DLPack tensor in place. CPU: returns (lo, hi). CUDA: enqueues on "
  "`stream` and returns None.");

#if IFRT_WITH_CUDA
  m.def("cuda_last_range", [](py::object stream) {
    void* st = stream_handle(stream);
    NormRange r;
    {
      py::gil_scoped_release release;
      r = cuda::read_range(workspace(st), st);
    }
    return py::make_tuple(r.lo, r.hi);
  }, py::arg("stream") = py::none(), "Waits for `stream` and returns the (lo, hi) of its last preprocess_dlpack.");
#endif
}

}  // namespace ifrt::python
