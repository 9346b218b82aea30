// Bindings of the speech family (front-end, segment masks, int8 gate network).
#include "arrays.h"

namespace edgelearn::bind {
void register_speech(py::module_& m) {}
}  // namespace edgelearn::bind
