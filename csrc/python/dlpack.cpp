// ifrt._native: preprocessing of DLPack tensors (torch, CuPy, numpy, JAX ...) without copies. CPU
// tensors run the CPU path; CUDA tensors (when built with CUDA) run the kernels on the caller's
// stream, asynchronously, and their capsules are kept until the stream has passed the kernels.
#include <pybind11/stl.h>

#include <cstring>
#include <exception>
#include <list>
#include <string>
#include <utility>
#include <vector>

#include "core/preprocess.h"
#include "python/arrays.h"
#include "python/bind.h"
#if IFRT_WITH_CUDA
#include "cuda/kernels.h"
#include "cuda/stream.h"
#endif

namespace ifrt::python {

namespace {

// The DLPack ABI (dlpack.h: the legacy tensor of v0.6+ and the versioned one of v1.0, which adds flags
// such as read-only), declared here to avoid a header dependency.
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
struct DLPackVersion {
  uint32_t major;
  uint32_t minor;
};
struct DLManagedTensorVersioned {
  DLPackVersion version;
  void* manager_ctx;
  void (*deleter)(DLManagedTensorVersioned* self);
  uint64_t flags;
  DLTensor dl_tensor;
};
constexpr uint64_t kDLReadOnly = 1;  // DLPACK_FLAG_BITMASK_READ_ONLY

// The stream argument, as DLPack defines it for CUDA (the consumer's stream, handed to __dlpack__): None
// or 1 the legacy default stream, 2 the per-thread default stream, a larger integer a cudaStream_t. 0 is
// ambiguous and disallowed by DLPack; -1 ("producer, do not synchronize") names no stream to run on.
py::object checked_stream(const py::object& stream) {
  if (stream.is_none()) return stream;
  if (!py::isinstance<py::int_>(stream)) {
    fail(ErrorCode::InvalidArgument, "stream: expected None or an integer cudaStream_t, got " +
                                         std::string(py::str(py::type::of(stream).attr("__name__"))));
  }
  if (stream <= py::int_(0)) {
    fail(ErrorCode::InvalidArgument, "stream: " + std::string(py::str(stream)) +
                                         " is not a stream DLPack allows the kernels to run on; pass 1 for the legacy "
                                         "default stream, 2 for the per-thread default stream, or a stream handle "
                                         "(torch.cuda.current_stream().cuda_stream is 0 on the default stream: pass 1)");
  }
  return stream;
}

// The device type a producer reports (__dlpack_device__), or -1 when it does not say (a capsule, or a
// producer without the method).
int32_t dlpack_device_type(const py::object& obj) {
  if (!py::hasattr(obj, "__dlpack_device__")) return -1;
  const py::tuple device = obj.attr("__dlpack_device__")();
  return py::int_(device[0]).cast<int32_t>();
}

// obj.__dlpack__(), asking for a versioned capsule (it carries the read-only flag: numpy exports read-only
// arrays only that way) and falling back to the legacy call for producers that predate DLPack 1.0. The
// stream goes to CUDA producers only: DLPack accepts only None for memory without streams.
py::object dlpack_capsule(const py::object& obj, const py::object& stream, const char* what) {
  if (!py::hasattr(obj, "__dlpack__")) return obj;
  py::dict kwargs;
  if (!stream.is_none()) {
    const int32_t device = dlpack_device_type(obj);
    if (device != -1 && device != kDLCUDA && device != kDLCUDAManaged) {
      fail(ErrorCode::InvalidArgument, std::string(what) + ": a tensor outside CUDA device memory (DLPack device " +
                                           std::to_string(device) + ") takes no stream; pass stream=None");
    }
    kwargs["stream"] = stream;
  }
  try {
    return obj.attr("__dlpack__")(**kwargs, py::arg("max_version") = py::make_tuple(1, 0));
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_TypeError)) throw;
  }
  return obj.attr("__dlpack__")(**kwargs);
}

// A consumed DLPack capsule; the producer's deleter runs when this is destroyed (with the GIL held), which
// tells the producer that nothing reads or writes the memory any more.
class Borrowed {
 public:
  Borrowed(const py::object& obj, const py::object& stream, const char* what) {
    py::object capsule = dlpack_capsule(obj, stream, what);
    if (PyCapsule_IsValid(capsule.ptr(), "dltensor_versioned")) {
      versioned_ = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor_versioned"));
      if (versioned_->version.major != 1) {
        const unsigned major = versioned_->version.major;
        versioned_ = nullptr;  // a tensor of another major version is not ours to read or delete
        fail(ErrorCode::InvalidArgument, std::string(what) + ": DLPack version " + std::to_string(major) +
                                             " is not supported (expected 1)");
      }
      PyCapsule_SetName(capsule.ptr(), "used_dltensor_versioned");  // the capsule no longer owns the tensor
      tensor_ = &versioned_->dl_tensor;
      read_only_ = (versioned_->flags & kDLReadOnly) != 0;
    } else if (PyCapsule_IsValid(capsule.ptr(), "dltensor")) {
      legacy_ = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
      PyCapsule_SetName(capsule.ptr(), "used_dltensor");
      tensor_ = &legacy_->dl_tensor;
    } else {
      fail(ErrorCode::InvalidArgument, std::string(what) + ": expected an object with __dlpack__ or a DLPack capsule");
    }
  }
  ~Borrowed() {
    if (versioned_ && versioned_->deleter) versioned_->deleter(versioned_);
    if (legacy_ && legacy_->deleter) legacy_->deleter(legacy_);
  }
  Borrowed(Borrowed&& other) noexcept
      : versioned_(std::exchange(other.versioned_, nullptr)),
        legacy_(std::exchange(other.legacy_, nullptr)),
        tensor_(other.tensor_),
        read_only_(other.read_only_) {}
  Borrowed& operator=(Borrowed&&) = delete;
  Borrowed(const Borrowed&) = delete;
  Borrowed& operator=(const Borrowed&) = delete;
  const DLTensor& t() const { return *tensor_; }
  char* data() const { return static_cast<char*>(t().data) + t().byte_offset; }
  bool on_cuda() const { return t().device.device_type == kDLCUDA || t().device.device_type == kDLCUDAManaged; }
  bool read_only() const { return read_only_; }

 private:
  DLManagedTensorVersioned* versioned_ = nullptr;
  DLManagedTensor* legacy_ = nullptr;
  const DLTensor* tensor_ = nullptr;
  bool read_only_ = false;
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

// An image tensor as a view the kernels read. CPU tensors whose strides the kernels cannot follow
// (negative, broadcast, column-major, channels apart) are copied into `copy` first; CUDA ones are refused.
ImageView image_of(const Borrowed& b, std::vector<unsigned char>& copy) {
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
  if (v.height <= 0 || v.width <= 0 || v.channels <= 0) return v;  // checked_input names the empty size
  const int64_t row = stride_bytes(t, 0, es), pixel = stride_bytes(t, 1, es);
  const int64_t channel = t.ndim == 3 ? stride_bytes(t, 2, es) : es;
  if (strides_readable(v.height, v.width, v.channels, es, row, pixel, channel)) {
    v.row_stride = v.height > 1 ? row : 0;
    v.pixel_stride = v.width > 1 ? pixel : 0;
    return v;
  }
  if (b.on_cuda()) {
    std::string strides = std::to_string(row / es) + ", " + std::to_string(pixel / es);
    if (t.ndim == 3) strides += ", " + std::to_string(channel / es);
    fail(ErrorCode::InvalidArgument, "image: strides (" + strides + ") elements are negative, broadcast, column-major "
                                         "or keep channels apart; pass a contiguous CUDA tensor (.contiguous())");
  }
  if (static_cast<double>(v.height) * static_cast<double>(v.width) * static_cast<double>(v.channels * es) > 0x1p62) {
    fail(ErrorCode::InvalidArgument, "image: " + std::to_string(v.height) + "x" + std::to_string(v.width) + "x" +
                                         std::to_string(v.channels) + " is too large to copy");
  }
  copy.resize(static_cast<size_t>(v.height * v.width * v.channels * es));
  const auto* src = static_cast<const unsigned char*>(v.data);
  unsigned char* dst = copy.data();
  for (int64_t y = 0; y < v.height; ++y) {
    for (int64_t x = 0; x < v.width; ++x) {
      for (int64_t c = 0; c < v.channels; ++c, dst += es) std::memcpy(dst, src + y * row + x * pixel + c * channel, es);
    }
  }
  v.data = copy.data();
  v.row_stride = 0;
  v.pixel_stride = 0;
  return v;
}

#if IFRT_WITH_CUDA
// A checked stream argument as a cudaStream_t: None and 1 the legacy default stream (nullptr); 2 is
// cudaStreamPerThread's own value, and any other a stream handle.
void* stream_handle(const py::object& stream) {
  if (stream.is_none()) return nullptr;
  const auto value = stream.cast<uintptr_t>();
  return value == 1 ? nullptr : reinterpret_cast<void*>(value);
}

// Capsules of CUDA tensors that kernels enqueued on a stream may still read or write. Running a
// producer's deleter tells it the consumer is done with the memory (DLPack), and a producer whose
// allocator is stream-ordered on its own stream (torch's caching allocator, CuPy's pool) may hand a
// temporary tensor's memory to its next allocation at once, while our stream still uses it. So the
// capsules wait here for a fence recorded after the kernels, and are released by the first call that
// finds it passed (preprocess_dlpack, cuda_last_range), or at exit. Touched only with the GIL held.
struct InFlight {
  cuda::Fence enqueued;
  Borrowed image, out;
};

std::list<InFlight>& in_flight() {
  // Never destroyed: the deleters must run while Python is alive, from the atexit hook in bind_dlpack,
  // not from static destruction after the interpreter is gone.
  static auto* items = new std::list<InFlight>();
  return *items;
}

void release_finished() {
  in_flight().remove_if([](const InFlight& f) { return f.enqueued.finished(); });
}

void release_after_stream(void* stream, Borrowed&& image, Borrowed&& out) {
  in_flight().push_back(InFlight{cuda::Fence(stream), std::move(image), std::move(out)});
  release_finished();  // a stream being captured runs nothing now: those are released at once
}

cuda::Workspace& workspace(void* stream) { return cuda::per_thread_and_stream<cuda::Workspace>(stream); }

// The kernels run on the calling thread's current device: a tensor on another one would be read through
// an address that device cannot use (an illegal-address error that ends the CUDA context).
void check_on_current_device(const Borrowed& b, const char* what) {
  const int current = cuda::current_device(), device = b.t().device.device_id;
  if (device != current) {
    fail(ErrorCode::InvalidArgument, std::string(what) + ": tensor is on CUDA device " + std::to_string(device) +
                                         ", but the current device is " + std::to_string(current) +
                                         "; call under torch.cuda.device(" + std::to_string(device) +
                                         ") or cupy.cuda.Device(" + std::to_string(device) + ")");
  }
}
#endif

}  // namespace

// Declared in python/preprocess.cpp: options dict -> PreprocessOptions.
PreprocessOptions preprocess_options_from(const py::dict& options, const ImageView& image, py::list& keep_alive);

void bind_dlpack(py::module_& m) {
#if IFRT_WITH_CUDA
  py::module_::import("atexit").attr("register")(py::cpp_function([] {
    for (const InFlight& f : in_flight()) f.enqueued.wait();
    in_flight().clear();
  }));
#endif

  m.def("preprocess_dlpack", [](const py::object& image, const py::object& out, const py::dict& options,
                                py::object stream) -> py::object {
    stream = checked_stream(stream);
#if IFRT_WITH_CUDA
    release_finished();
#endif
    Borrowed in(image, stream, "image"), dst(out, stream, "out");
    if (in.on_cuda() != dst.on_cuda()) fail(ErrorCode::InvalidArgument, "image and out must be on the same device");
    if (dst.read_only()) fail(ErrorCode::InvalidArgument, "out: tensor is read-only");
    std::vector<unsigned char> copy;
    const ImageView view = image_of(in, copy);
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
    const DType out_dtype = dtype_of(t.dtype, "out");
    if (options.contains("dtype") && out_dtype != o.out_dtype) {
      fail(ErrorCode::InvalidArgument, std::string("out: dtype ") + dtype_name(out_dtype) + " does not match the dtype option " +
                                           dtype_name(o.out_dtype) + " (leave the option out and the out tensor decides)");
    }
    o.out_dtype = out_dtype;
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
    check_on_current_device(in, "image");
    check_on_current_device(dst, "out");
    void* st = stream_handle(stream);
    std::exception_ptr failed;
    {
      py::gil_scoped_release release;
      try {
        cuda::preprocess(view, o, dst.data(), bytes, workspace(st), st);
      } catch (...) {
        failed = std::current_exception();  // kernels enqueued before the failure may still use the tensors
      }
    }
    release_after_stream(st, std::move(in), std::move(dst));
    if (failed) std::rethrow_exception(failed);
    return py::none();  // enqueued; cuda_last_range(stream) waits and returns (lo, hi)
#else
    fail(ErrorCode::Unsupported, "ifrt was built without CUDA kernels; CUDA tensors cannot be preprocessed");
#endif
  }, py::arg("image"), py::arg("out"), py::arg("options"), py::arg("stream") = py::none(),
  "Preprocess a DLPack tensor into a DLPack tensor in place. CPU: returns (lo, hi); `stream` must be None. "
  "CUDA: enqueues on `stream` (DLPack's consumer stream: None or 1 the legacy default stream, 2 the "
  "per-thread one, else a cudaStream_t; 0 is refused) and returns None. The tensors' capsules are released "
  "once the stream has passed the kernels, by a later call or at exit; under a CUDA graph capture at once, "
  "so keep the tensors alive as long as the graph.");

#if IFRT_WITH_CUDA
  m.def("cuda_last_range", [](py::object stream) {
    void* st = stream_handle(checked_stream(stream));
    NormRange r;
    {
      py::gil_scoped_release release;
      r = cuda::read_range(workspace(st), st);
    }
    release_finished();
    return py::make_tuple(r.lo, r.hi);
  }, py::arg("stream") = py::none(), "Waits for `stream` and returns the (lo, hi) of its last preprocess_dlpack.");
#endif
}

}  // namespace ifrt::python
