// Each binding file adds its part of ifrt._native through one of these; module.cpp calls them all.
#pragma once

#include <pybind11/pybind11.h>

namespace ifrt::python {

void bind_build_info(pybind11::module_& m);
void bind_preprocess(pybind11::module_& m);
void bind_postprocess(pybind11::module_& m);
void bind_focus(pybind11::module_& m);
void bind_dlpack(pybind11::module_& m);
void bind_engine(pybind11::module_& m);

}  // namespace ifrt::python
