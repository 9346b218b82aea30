// edgelearn._kernels: wires the per-family registrations; no kernel code here.
#include <pybind11/pybind11.h>

#include "edgelearn/common.h"

namespace py = pybind11;

namespace edgelearn::bind {
void register_rng(py::module_& m);
void register_zo(py::module_& m);
void register_quant(py::module_& m);
void register_speech(py::module_& m);
}  // namespace edgelearn::bind

PYBIND11_MODULE(_kernels, m) {
  m.doc() = "edgelearn compiled kernels; call them through edgelearn.kernels, which validates arguments.";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const edgelearn::TypeError_& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const edgelearn::ArgError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  m.def("_set_num_threads", &edgelearn::set_num_threads, py::arg("n"));
  m.def("_get_num_threads", &edgelearn::get_num_threads);
  m.def("_simd_level", &edgelearn::simd_level);
  edgelearn::bind::register_rng(m);
  edgelearn::bind::register_zo(m);
  edgelearn::bind::register_quant(m);
  edgelearn::bind::register_speech(m);
}
