// Bindings of the quant family (int8 GEMM, quantized linear + adapter, quantized adapter update).
#include "arrays.h"

namespace edgelearn::bind {
void register_quant(py::module_& m) {}
}  // namespace edgelearn::bind
