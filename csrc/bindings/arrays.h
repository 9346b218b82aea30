// Array argument helpers for the bindings: dtype, rank, contiguity checks with messages naming the argument.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
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


// Scalar and shape helpers: Python ints / reals to C++ with errors naming the argument.

inline std::string type_name(py::handle h) { return std::string(py::str(py::type::handle_of(h).attr("__name__"))); }

inline bool is_numpy_scalar(py::handle h, const char* kind) {
  static py::handle np = py::module_::import("numpy").release();
  return py::isinstance(h, np.attr(kind));
}

// A Python int / numpy integer in [lo, hi] (bool refused).
inline int64_t int_arg(py::handle h, const char* name, int64_t lo, int64_t hi) {
  if (PyBool_Check(h.ptr()) || !(PyLong_Check(h.ptr()) || is_numpy_scalar(h, "integer")))
    throw TypeError_(std::string(name) + ": expected an integer, got " + type_name(h));
  int overflow = 0;
  py::object idx = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
  if (!idx) throw py::error_already_set();
  const long long v = PyLong_AsLongLongAndOverflow(idx.ptr(), &overflow);
  if (overflow || v < lo || v > hi)
    throw ArgError(std::string(name) + ": must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                   std::string(py::str(h)));
  return v;
}

// A Python int / numpy integer in [0, 2^64 - 1] (bool refused).
inline uint64_t u64_arg(py::handle h, const char* name) {
  if (PyBool_Check(h.ptr()) || !(PyLong_Check(h.ptr()) || is_numpy_scalar(h, "integer")))
    throw TypeError_(std::string(name) + ": expected an integer, got " + type_name(h));
  py::object idx = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
  if (!idx) throw py::error_already_set();
  const unsigned long long v = PyLong_AsUnsignedLongLong(idx.ptr());
  if (v == (unsigned long long)-1 && PyErr_Occurred()) {
    PyErr_Clear();
    throw ArgError(std::string(name) + ": must be in [0, 2^64 - 1], got " + std::string(py::str(h)));
  }
  return v;
}

// A Python float / int or numpy real scalar, finite and within float32 range.
inline float real_arg(py::handle h, const char* name) {
  if (PyBool_Check(h.ptr()) ||
      !(PyFloat_Check(h.ptr()) || PyLong_Check(h.ptr()) || is_numpy_scalar(h, "floating") ||
        is_numpy_scalar(h, "integer")))
    throw TypeError_(std::string(name) + ": expected a real number, got " + type_name(h));
  const double v = PyFloat_AsDouble(h.ptr());
  if (v == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    throw ArgError(std::string(name) + ": out of range");
  }
  if (!std::isfinite(v) || std::fabs(v) > 3.0e38)
    throw ArgError(std::string(name) + ": must be finite and within float32 range, got " + std::string(py::str(h)));
  return float(v);
}

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

}  // namespace edgelearn::bind
