// Array argument helpers for the bindings: dtype, rank, contiguity checks with messages naming the argument.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "edgelearn/common.h"

namespace edgelearn::bind {

namespace py = pybind11;

// The array `a` as dtype T, C-contiguous, of rank `ndim` (-1: any); TypeError / ValueError naming `name`.
template <typename T>
py::array_t<T> require(const py::handle& obj, const char* name, int ndim = -1, bool writeable = false) {
  if (!py::isinstance<py::array>(obj))
    throw TypeError_(std::string(name) + ": expected a numpy array, got " + std::string(py::str(obj.get_type())));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().equal(py::dtype::of<T>()))
    throw TypeError_(std::string(name) + ": expected dtype " + std::string(py::str(py::dtype::of<T>())) + ", got " +
                     std::string(py::str(a.dtype())));
  if (ndim >= 0 && a.ndim() != ndim)
    throw ArgError(std::string(name) + ": expected " + std::to_string(ndim) + " dimensions, got " +
                   std::to_string(a.ndim()));
  if (!(a.flags() & py::array::c_style)) throw ArgError(std::string(name) + ": must be C-contiguous");
  if (writeable && !a.writeable()) throw ArgError(std::string(name) + ": must be writeable");
  return py::reinterpret_borrow<py::array_t<T>>(a);
}

}  // namespace edgelearn::bind
