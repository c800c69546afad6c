// ifrt._native: build features and CUDA devices.
#include <pybind11/stl.h>

#include "python/bind.h"

#include "core/build_info.h"
#include "core/common.h"

namespace py = pybind11;

namespace ifrt::python {

void bind_build_info(py::module_& m) {
  m.def("build_info", [] {
    const auto info = ifrt::build_info();
    py::dict d;
    d["version"] = info.version;
    d["with_cuda"] = info.with_cuda;
    d["with_tensorrt"] = info.with_tensorrt;
    d["cuda_version"] = info.cuda_version;
    d["cuda_archs"] = info.cuda_archs;
    d["tensorrt_version"] = info.tensorrt_version;
    d["compiler"] = info.compiler;
    return d;
  }, "What this build contains: version, CUDA/TensorRT support and their versions.");

  m.def("cuda_devices", [] {
    std::string error;
    std::vector<ifrt::CudaDevice> devices;
    {
      py::gil_scoped_release release;
      devices = ifrt::cuda_devices(&error);
    }
    py::list out;
    for (const auto& d : devices) {
      py::dict item;
      item["index"] = d.index;
      item["name"] = d.name;
      item["compute_capability"] = std::to_string(d.major) + "." + std::to_string(d.minor);
      item["total_memory"] = d.total_memory;
      item["uuid"] = d.uuid;
      out.append(item);
    }
    return py::make_tuple(out, error);
  }, "(devices, error): visible CUDA devices, and why none could be listed when the list is empty.");
}

}  // namespace ifrt::python
