// qlinear_s8: the frozen int8 linear layer from float32 activations, quantized per tensor inside qgemm_s8
// (contract: quant.h).
#include <cmath>

#include "edgelearn/common.h"
#include "edgelearn/quant.h"

namespace edgelearn {

void qlinear_s8(const QLinearArgs& a, float* y) {
  check(a.x != nullptr, "x: must not be null");
  check(y != nullptr, "out: must not be null");
  QGemmArgs q;
  q.xf = a.x, q.m = a.m, q.k = a.k, q.x_zero_point = 0, q.x_scale = &a.x_scale, q.x_scale_len = 1;
  q.w = a.w, q.w_scale = a.w_scale, q.bias = a.bias, q.out = QOut::F32, q.gelu = a.gelu;
  qgemm_s8(q, y);
}

}  // namespace edgelearn
