// pybind11 module ifrt._native. csrc/python/ is the only part of csrc/ that knows about Python.
#include "core/common.h"
#include "python/bind.h"

namespace py = pybind11;

PYBIND11_MODULE(_native, m) {
  m.doc() = "ifrt native core: CPU kernels, CUDA kernels and the TensorRT executor when built";
  // C++ errors arrive in Python as ifrt._native.NativeError (a RuntimeError) with the message.
  py::register_exception<ifrt::Error>(m, "NativeError", PyExc_RuntimeError);
  ifrt::python::bind_build_info(m);
  ifrt::python::bind_preprocess(m);
  ifrt::python::bind_postprocess(m);
  ifrt::python::bind_focus(m);
  ifrt::python::bind_dlpack(m);
  ifrt::python::bind_engine(m);
}
