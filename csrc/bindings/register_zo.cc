// Bindings of the zo family (placeholder until the kernels land).
#include "arrays.h"

namespace edgelearn::bind {
void register_zo(py::module_& m) {}
}  // namespace edgelearn::bind
