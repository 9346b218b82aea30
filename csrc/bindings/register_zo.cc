// Bindings of the zo family: zo_perturbed_linear_f32, zo_replay_seeds_f32, zo_attention_packed_f32
// (contract: edgelearn/zo.h).
// Arguments are taken as Python objects and converted here, so every TypeError / ValueError names its argument.
#include <algorithm>
#include <climits>
#include <string>

#include "arrays.h"
#include "edgelearn/zo.h"

namespace edgelearn::bind {

void register_zo(py::module_& m) {
  m.def(
      "zo_perturbed_linear_f32",
      [](py::object x_, py::object W_, py::object b_, py::object A_, py::object B_, py::object scale_,
         py::object seeds_, py::object eps_, py::object layer_id_, py::object mode_, py::object dist_,
         py::object out_) -> py::object {
        auto x = require<float>(x_, "x", 3);
        auto W = require<float>(W_, "W", 2);
        auto A = require<float>(A_, "A", 2);
        auto B = require<float>(B_, "B", 2);
        auto seeds = require<uint64_t>(seeds_, "seeds", 1);
        py::array_t<float> b;
        if (!b_.is_none()) b = require<float>(b_, "b", 1);
        ZoLinearArgs a{};
        a.S = x.shape(0), a.n = x.shape(1), a.d = x.shape(2);
        a.o = B.shape(0), a.r = B.shape(1);
        if (W.shape(1) != a.d)
          throw ArgError("W: expected shape [o, " + std::to_string(a.d) + "] to match x's last dimension, got " +
                         shape_str(W));
        if (W.shape(0) != a.o)
          throw ArgError("B: expected shape [" + std::to_string(W.shape(0)) + ", r] to match W's rows, got " +
                         shape_str(B));
        if (A.shape(0) != a.r || A.shape(1) != a.d)
          throw ArgError("A: expected shape (" + std::to_string(a.r) + ", " + std::to_string(a.d) +
                         ") from B's rank and x's last dimension, got " + shape_str(A));
        if (!b_.is_none() && b.shape(0) != a.o)
          throw ArgError("b: expected shape (" + std::to_string(a.o) + ",), got " + shape_str(b));
        a.x = x.data(), a.W = W.data(), a.A = A.data(), a.B = B.data(), a.b = b_.is_none() ? nullptr : b.data();
        a.scale = real_arg(scale_, "scale");
        a.eps = real_arg(eps_, "eps");
        a.seeds = seeds.data(), a.K = seeds.shape(0);
        a.layer_id = uint64_t(int_arg(layer_id_, "layer_id", 0, int64_t(1) << 62));
        a.mode = ZoMode(int_arg(mode_, "mode", 0, 1));
        a.dist = Dist(int_arg(dist_, "dist", 0, 1));
        zo_check_linear_args(a);
        const int64_t P = zo_num_streams(a.mode, a.K);
        py::array_t<float> out;
        if (out_.is_none()) {
          out = py::array_t<float>({P, a.n, a.o});
        } else {
          out = require<float>(out_, "out", 3, true);
          if (out.shape(0) != P || out.shape(1) != a.n || out.shape(2) != a.o)
            throw ArgError("out: expected shape (" + std::to_string(P) + ", " + std::to_string(a.n) + ", " +
                           std::to_string(a.o) + "), got " + shape_str(out));
        }
        float* y = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          zo_perturbed_linear_f32(a, y);
        }
        return out_.is_none() ? py::object(out) : out_;
      },
      py::arg("x"), py::arg("W"), py::arg("b"), py::arg("A"), py::arg("B"), py::arg("scale"), py::arg("seeds"),
      py::arg("eps"), py::arg("layer_id"), py::arg("mode"), py::arg("dist"), py::arg("out") = py::none(),
      "y[p] = x[p or 0] W^T + b + scale * (x A_p^T) B_p^T for all P perturbation streams (see edgelearn/zo.h).\n"
      "mode: 0 central (P = 2K), 1 forward (P = K + 1); dist: 0 gaussian, 1 rademacher. Returns y [P, n, o].");
  m.def(
      "zo_replay_seeds_f32",
      [](py::object param_, py::object seeds_, py::object coefs_, py::object layer_id_, py::object slot_,
         py::object dist_) {
        auto param = require<float>(param_, "param", -1, true);
        auto seeds = require<uint64_t>(seeds_, "seeds", 1);
        auto coefs = require<float>(coefs_, "coefs", 1);
        if (coefs.shape(0) != seeds.shape(0))
          throw ArgError("coefs: expected shape (" + std::to_string(seeds.shape(0)) + ",) (one per seed), got " +
                         shape_str(coefs));
        const uint64_t layer_id = uint64_t(int_arg(layer_id_, "layer_id", 0, int64_t(1) << 62));
        const uint64_t slot = uint64_t(int_arg(slot_, "slot", 0, 1));
        const Dist dist = Dist(int_arg(dist_, "dist", 0, 1));
        float* p = param.mutable_data();
        const int64_t numel = param.size(), K = seeds.shape(0);
        {
          py::gil_scoped_release nogil;
          zo_replay_seeds_f32(p, numel, seeds.data(), coefs.data(), K, layer_id, slot, dist);
        }
      },
      py::arg("param"), py::arg("seeds"), py::arg("coefs"), py::arg("layer_id"), py::arg("slot"), py::arg("dist"),
      "In place: param += sum_k coefs[k] * Z(seeds[k], layer_id, slot); dist 0 gaussian, 1 rademacher.");
  m.def(
      "zo_attention_packed_f32",
      [](py::object q_, py::object k_, py::object v_, py::object lengths_, py::object heads_, py::object scale_,
         py::object out_) -> py::object {
        auto q = require<float>(q_, "q", 3);
        auto k = require<float>(k_, "k", 3);
        auto v = require<float>(v_, "v", 3);
        auto lengths = require<int64_t>(lengths_, "lengths", 1);
        for (auto [t, name] : {std::pair{&k, "k"}, std::pair{&v, "v"}})
          if (t->shape(1) != q.shape(1) || t->shape(2) != q.shape(2))
            throw ArgError(std::string(name) + ": expected shape [S, " + std::to_string(q.shape(1)) + ", " +
                           std::to_string(q.shape(2)) + "] to match q, got " + shape_str(*t));
        ZoAttentionArgs a{};
        a.q = q.data(), a.k = k.data(), a.v = v.data();
        a.Sq = q.shape(0), a.Sk = k.shape(0), a.Sv = v.shape(0), a.N = q.shape(1), a.d = q.shape(2);
        a.lengths = lengths.data(), a.B = lengths.shape(0);
        a.heads = int_arg(heads_, "heads", 1, INT_MAX);
        a.scale = real_arg(scale_, "scale");
        const int64_t S = std::max({a.Sq, a.Sk, a.Sv});
        py::array_t<float> out;
        if (out_.is_none()) {
          out = py::array_t<float>({S, a.N, a.d});
        } else {
          out = require<float>(out_, "out", 3, true);
          if (out.shape(0) != S || out.shape(1) != a.N || out.shape(2) != a.d)
            throw ArgError("out: expected shape (" + std::to_string(S) + ", " + std::to_string(a.N) + ", " +
                           std::to_string(a.d) + "), got " + shape_str(out));
        }
        float* y = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          zo_attention_packed_f32(a, y);
        }
        return out_.is_none() ? py::object(out) : out_;
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::arg("lengths"), py::arg("heads"), py::arg("scale"),
      py::arg("out") = py::none(),
      "Multi-head attention over packed sequences for S streams: q, k, v [S or 1, N, d], lengths [B] summing to N.\n"
      "out[s, i] = softmax(scale q_i K^T) V over the rows of i's sequence, per head. Returns [S, N, d].");
}

}  // namespace edgelearn::bind
