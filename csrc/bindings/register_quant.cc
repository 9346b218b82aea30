// Bindings of the quant family: qgemm_pack_s8 (-> _QWeightS8), qgemm_unpack_s8, qgemm_s8, qlinear_s8, qlinear_lora_s8, qadapter_update_s8
// (contract: edgelearn/quant.h). Arguments are taken as Python objects and converted here, so every TypeError /
// ValueError names its argument.
#include <pybind11/stl.h>

#include <cmath>
#include <string>
#include <vector>

#include "arrays.h"
#include "edgelearn/quant.h"

namespace edgelearn::bind {

namespace {

// The packed weight behind a _QWeightS8 object; a plain int8 array gets a TypeError that says what to do.
const QWeightS8& packed_arg(py::handle h, const char* name) {
  if (!py::isinstance<QWeightS8>(h)) {
    if (py::isinstance<py::array>(h))
      throw TypeError_(std::string(name) + ": expected packed weights from qgemm_pack_s8, got an unpacked array " +
                       "(call qgemm_pack_s8(W) once and pass its result)");
    throw TypeError_(std::string(name) + ": expected packed weights from qgemm_pack_s8, got " + type_name(h));
  }
  return h.cast<const QWeightS8&>();
}

// x_scale: a real number (per tensor) or a float32 array [1] or [m] (per token).
py::array_t<float> x_scale_arg(py::handle h, int64_t m, float& tmp) {
  if (py::isinstance<py::array>(h)) {
    auto s = require<float>(h, "x_scale", 1);
    if (s.shape(0) != 1 && s.shape(0) != m)
      throw ArgError("x_scale: expected shape (1,) or (" + std::to_string(m) + ",) (one per row), got " +
                     shape_str(s));
    return s;
  }
  tmp = real_arg(h, "x_scale");
  py::array_t<float> s(1);
  s.mutable_data()[0] = tmp;
  return s;
}

py::array_t<float> w_scale_arg(py::handle h, const QWeightS8& w) {
  auto s = require<float>(h, "w_scale", 1);
  if (s.shape(0) != w.n)
    throw ArgError("w_scale: expected shape (" + std::to_string(w.n) + ",) (one per output channel), got " +
                   shape_str(s));
  return s;
}

py::array_t<float> bias_arg(py::handle h, const QWeightS8& w) {
  auto b = require<float>(h, "bias", 1);
  if (b.shape(0) != w.n)
    throw ArgError("bias: expected shape (" + std::to_string(w.n) + ",), got " + shape_str(b));
  return b;
}

}  // namespace

void register_quant(py::module_& m) {
  py::class_<QWeightS8>(m, "_QWeightS8",
                        "Packed int8 weights [n, k] for qgemm_s8 / qlinear_lora_s8 (create with qgemm_pack_s8).")
      .def_property_readonly("n", [](const QWeightS8& w) { return w.n; })
      .def_property_readonly("k", [](const QWeightS8& w) { return w.k; })
      .def_property_readonly("shape", [](const QWeightS8& w) { return py::make_tuple(w.n, w.k); })
      .def_property_readonly("nbytes", [](const QWeightS8& w) { return int64_t(w.data.size() + 4 * w.colsum.size()); })
      .def_property_readonly(
          "data",
          [](const QWeightS8& w) {
            py::array_t<int8_t> a({w.np / 16, w.kp / 4, int64_t(16), int64_t(4)});
            std::copy(w.data.begin(), w.data.end(), a.mutable_data());
            return a;
          },
          "A copy of the packed bytes, shaped [np/16, kp/4, 16, 4] (the layout of edgelearn/quant.h).")
      .def_property_readonly(
          "colsum",
          [](const QWeightS8& w) {
            py::array_t<int32_t> a(w.np);
            std::copy(w.colsum.begin(), w.colsum.end(), a.mutable_data());
            return a;
          },
          "Per-channel sums of W (int32 [np], 0 for padding).")
      .def("__repr__",
           [](const QWeightS8& w) {
             return "QWeightS8(n=" + std::to_string(w.n) + ", k=" + std::to_string(w.k) + ")";
           })
      .def(py::pickle(
          [](const QWeightS8& w) {
            py::array_t<int8_t> a({w.n, w.k});
            qgemm_unpack_s8(w, a.mutable_data());
            return py::make_tuple(a);
          },
          [](py::tuple t) {
            check(t.size() == 1, "state: expected one array");
            // forcecast: an unpickled int8 array may carry an equal but distinct dtype object
            auto W = py::array_t<int8_t, py::array::c_style | py::array::forcecast>::ensure(t[0]);
            check(W && W.ndim() == 2, "state: expected an int8 array [n, k]");
            return qgemm_pack_s8(W.data(), W.shape(0), W.shape(1));
          }));

  m.def(
      "qgemm_unpack_s8",
      [](const QWeightS8& w) {
        py::array_t<int8_t> a({w.n, w.k});
        qgemm_unpack_s8(w, a.mutable_data());
        return a;
      },
      py::arg("W"), "W [n, k] back from the packed layout, exactly (the inverse of qgemm_pack_s8).");
  m.def("_quant_level", &quant_level, "SIMD path of the quant kernels: 'amx', 'avx512vnni', 'avx2' or 'scalar'.");
  m.def(
      "_quant_force_level", [](const std::string& level) { quant_force_level(level.c_str()); }, py::arg("level"),
      "For tests and benchmarks: 'scalar', 'avx2', 'avx512vnni', 'amx' (clamped to the CPU) or '' (best).");

  m.def(
      "qgemm_pack_s8",
      [](py::object W_) {
        auto W = require<int8_t>(W_, "W", 2);
        const int8_t* p = W.data();
        const int64_t n = W.shape(0), k = W.shape(1);
        QWeightS8 w;
        {
          py::gil_scoped_release nogil;
          w = qgemm_pack_s8(p, n, k);
        }
        return w;
      },
      py::arg("W"),
      "Packs int8 W [n, k] (values in [-127, 127]) once into the layout of the qgemm micro-kernels.");

  m.def(
      "qgemm_s8",
      [](py::object x_, py::object W_, py::object w_scale_, py::object x_scale_, py::object bias_,
         py::object x_zero_point_, py::object out_dtype_, py::object y_scale_, py::object y_zero_point_,
         py::object out_) -> py::object {
        auto x = require<int8_t>(x_, "x", 2);
        const QWeightS8& w = packed_arg(W_, "W");
        QGemmArgs a;
        a.x = x.data(), a.m = x.shape(0), a.k = x.shape(1), a.w = &w;
        if (a.k != w.k)
          throw ArgError("x: expected shape [m, " + std::to_string(w.k) + "] to match W's k, got " + shape_str(x));
        float tmp = 0.0f;
        auto sx = x_scale_arg(x_scale_, a.m, tmp);
        auto sw = w_scale_arg(w_scale_, w);
        py::array_t<float> b;
        if (!bias_.is_none()) b = bias_arg(bias_, w);
        a.x_scale = sx.data(), a.x_scale_len = sx.shape(0), a.w_scale = sw.data();
        a.bias = bias_.is_none() ? nullptr : b.data();
        a.x_zero_point = int32_t(int_arg(x_zero_point_, "x_zero_point", -128, 127));
        a.out = QOut(int_arg(out_dtype_, "out_dtype", 0, 1));
        if (a.out == QOut::S8) {
          a.y_scale = real_arg(y_scale_, "y_scale");
          a.y_zero_point = int32_t(int_arg(y_zero_point_, "y_zero_point", -128, 127));
        }
        qgemm_check_args(a);
        py::array out;
        if (out_.is_none()) {
          if (a.out == QOut::F32)
            out = py::array_t<float>({a.m, w.n});
          else
            out = py::array_t<int8_t>({a.m, w.n});
        } else {
          out = a.out == QOut::F32 ? py::array(require<float>(out_, "out", 2, true))
                                   : py::array(require<int8_t>(out_, "out", 2, true));
          if (out.shape(0) != a.m || out.shape(1) != w.n)
            throw ArgError("out: expected shape (" + std::to_string(a.m) + ", " + std::to_string(w.n) + "), got " +
                           shape_str(out));
        }
        void* y = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          qgemm_s8(a, y);
        }
        return out_.is_none() ? py::object(out) : out_;
      },
      py::arg("x"), py::arg("W"), py::arg("w_scale"), py::arg("x_scale"), py::arg("bias"), py::arg("x_zero_point"),
      py::arg("out_dtype"), py::arg("y_scale"), py::arg("y_zero_point"), py::arg("out") = py::none(),
      "y = ((x - zx) W^T) * (x_scale * w_scale) + bias as float32 (out_dtype 0) or requantised to int8 with\n"
      "y_scale / y_zero_point (out_dtype 1; round half away from zero, saturating). See edgelearn/quant.h.");
  m.def(
      "qlinear_s8",
      [](py::object x_, py::object W_, py::object w_scale_, py::object x_scale_, py::object bias_,
         py::object out_, py::object gelu_) -> py::object {
        auto x = require<float>(x_, "x", 2);
        const QWeightS8& w = packed_arg(W_, "W");
        QLinearArgs a;
        a.x = x.data(), a.m = x.shape(0), a.k = x.shape(1), a.w = &w;
        if (a.k != w.k)
          throw ArgError("x: expected shape [m, " + std::to_string(w.k) + "] to match W's k, got " + shape_str(x));
        a.x_scale = real_arg(x_scale_, "x_scale");
        if (!PyBool_Check(gelu_.ptr())) throw TypeError_("gelu: expected a bool, got " + type_name(gelu_));
        a.gelu = gelu_.cast<bool>();
        auto sw = w_scale_arg(w_scale_, w);
        py::array_t<float> b;
        if (!bias_.is_none()) b = bias_arg(bias_, w);
        a.w_scale = sw.data(), a.bias = bias_.is_none() ? nullptr : b.data();
        py::array_t<float> out;
        if (out_.is_none()) {
          out = py::array_t<float>({a.m, w.n});
        } else {
          out = require<float>(out_, "out", 2, true);
          if (out.shape(0) != a.m || out.shape(1) != w.n)
            throw ArgError("out: expected shape (" + std::to_string(a.m) + ", " + std::to_string(w.n) + "), got " +
                           shape_str(out));
        }
        float* y = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          qlinear_s8(a, y);
        }
        return out_.is_none() ? py::object(out) : out_;
      },
      py::arg("x"), py::arg("W"), py::arg("w_scale"), py::arg("x_scale"), py::arg("bias"), py::arg("out") = py::none(),
      py::arg("gelu") = false,
      "The frozen int8 layer from float32 x [m, k] (finite), quantized per tensor with x_scale inside the kernel:\n"
      "y = qgemm_s8(clip(round_half_away(x / x_scale), -127, 127), W, w_scale, x_scale, bias), then gelu(y) when\n"
      "gelu is True (in the epilogue). See edgelearn/quant.h.");
  m.def(
      "qlinear_lora_s8",
      [](py::object x_, py::object W_, py::object w_scale_, py::object x_scale_, py::object bias_, py::object A_,
         py::object B_, py::object scale_, py::object seeds_, py::object eps_, py::object layer_id_,
         py::object mode_, py::object dist_, py::object out_) -> py::object {
        auto x = require<float>(x_, "x", 3);
        const QWeightS8& w = packed_arg(W_, "W");
        auto A = require<float>(A_, "A", 2);
        auto B = require<float>(B_, "B", 2);
        QLoraArgs a;
        a.S = x.shape(0), a.m = x.shape(1), a.k = x.shape(2), a.w = &w;
        if (a.k != w.k)
          throw ArgError("x: expected shape [S, m, " + std::to_string(w.k) + "] to match W's k, got " + shape_str(x));
        a.r = B.shape(1);
        if (B.shape(0) != w.n)
          throw ArgError("B: expected shape [" + std::to_string(w.n) + ", r] to match W's n, got " + shape_str(B));
        if (A.shape(0) != a.r || A.shape(1) != a.k)
          throw ArgError("A: expected shape (" + std::to_string(a.r) + ", " + std::to_string(a.k) +
                         ") from B's rank and x's last dimension, got " + shape_str(A));
        auto sw = w_scale_arg(w_scale_, w);
        py::array_t<float> b;
        if (!bias_.is_none()) b = bias_arg(bias_, w);
        py::array_t<uint64_t> seeds;
        if (!seeds_.is_none()) {
          seeds = require<uint64_t>(seeds_, "seeds", 1);
          if (seeds.shape(0) < 1) throw ArgError("seeds: need at least one seed (or None for the plain layer)");
          a.seeds = seeds.data(), a.K = seeds.shape(0);
          a.eps = real_arg(eps_, "eps");
          a.layer_id = uint64_t(int_arg(layer_id_, "layer_id", 0, int64_t(1) << 62));
          a.mode = ZoMode(int_arg(mode_, "mode", 0, 1));
          a.dist = Dist(int_arg(dist_, "dist", 0, 1));
        }
        a.x = x.data(), a.x_scale = real_arg(x_scale_, "x_scale"), a.w_scale = sw.data();
        a.bias = bias_.is_none() ? nullptr : b.data();
        a.A = A.data(), a.B = B.data(), a.scale = real_arg(scale_, "scale");
        qlinear_lora_check_args(a);
        const int64_t P = qlora_num_streams(a);
        py::array_t<float> out;
        if (out_.is_none()) {
          out = py::array_t<float>({P, a.m, w.n});
        } else {
          out = require<float>(out_, "out", 3, true);
          if (out.shape(0) != P || out.shape(1) != a.m || out.shape(2) != w.n)
            throw ArgError("out: expected shape (" + std::to_string(P) + ", " + std::to_string(a.m) + ", " +
                           std::to_string(w.n) + "), got " + shape_str(out));
        }
        float* y = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          qlinear_lora_s8(a, y);
        }
        return out_.is_none() ? py::object(out) : out_;
      },
      py::arg("x"), py::arg("W"), py::arg("w_scale"), py::arg("x_scale"), py::arg("bias"), py::arg("A"),
      py::arg("B"), py::arg("scale"), py::arg("seeds"), py::arg("eps"), py::arg("layer_id"), py::arg("mode"),
      py::arg("dist"), py::arg("out") = py::none(),
      "y[p] = qgemm_s8(quantize(x[p or 0], x_scale), W) + bias + scale * (x A_p^T) B_p^T: the int8 base plus a\n"
      "float LoRA adapter, under P perturbation streams of the adapter (seeds None: P = 1). See edgelearn/quant.h.");
  m.def(
      "qadapter_update_s8",
      [](py::object qs_, py::object scales_, py::object grads_, py::object lr_, py::object seed_,
         py::object streams_, py::object qas_) {
        if (!py::isinstance<py::list>(qs_) && !py::isinstance<py::tuple>(qs_))
          throw TypeError_("q: expected a list of arrays, got " + type_name(qs_));
        if (py::len(qs_) < 1) throw ArgError("q: need at least one tensor");
        for (auto [obj, name] : {std::pair{&scales_, "scales"}, {&grads_, "grads"}})
          if (!py::isinstance<py::list>(*obj) && !py::isinstance<py::tuple>(*obj))
            throw TypeError_(std::string(name) + ": expected a list of arrays, got " + type_name(*obj));
        py::sequence qs = qs_, scales = scales_, grads = grads_;
        const int64_t T = int64_t(py::len(qs));
        if (int64_t(py::len(scales)) != T)
          throw ArgError("scales: expected " + std::to_string(T) + " arrays (one per tensor), got " +
                         std::to_string(py::len(scales)));
        if (int64_t(py::len(grads)) != T)
          throw ArgError("grads: expected " + std::to_string(T) + " arrays (one per tensor), got " +
                         std::to_string(py::len(grads)));
        const float lr = real_arg(lr_, "lr");
        const uint64_t seed = u64_arg(seed_, "seed");
        if (!PyBool_Check(qas_.ptr())) throw TypeError_("qas: expected a bool, got " + type_name(qas_));
        const bool qas = qas_.cast<bool>();
        py::array_t<uint64_t> streams;
        if (!streams_.is_none()) {
          streams = require<uint64_t>(streams_, "streams", 1);
          if (streams.shape(0) != T)
            throw ArgError("streams: expected shape (" + std::to_string(T) + ",) (one per tensor), got " +
                           shape_str(streams));
        }
        std::vector<py::array> keep;
        std::vector<QAdapterTensor> ts(static_cast<size_t>(T));
        for (int64_t t = 0; t < T; ++t) {
          const std::string at = "[" + std::to_string(t) + "]";
          const std::string qn = "q" + at, sn = "scales" + at, gn = "grads" + at;
          auto q = require<int8_t>(qs[size_t(t)], qn.c_str(), -1, true);
          auto s = require<float>(scales[size_t(t)], sn.c_str(), 1);
          auto g = require<float>(grads[size_t(t)], gn.c_str(), -1);
          if (q.ndim() < 1 || q.size() < 1) throw ArgError(qn + ": must have at least one dimension and element");
          if (g.ndim() != q.ndim() || !std::equal(q.shape(), q.shape() + q.ndim(), g.shape()))
            throw ArgError(gn + ": expected the shape of q" + at + " " + shape_str(q) + ", got " + shape_str(g));
          if (s.shape(0) != q.shape(0))
            throw ArgError(sn + ": expected shape (" + std::to_string(q.shape(0)) + ",) (one per row of q" + at +
                           "), got " + shape_str(s));
          QAdapterTensor& a = ts[size_t(t)];
          a.q = q.mutable_data(), a.scale = s.data(), a.grad = g.data();
          a.rows = q.shape(0), a.cols = q.size() / q.shape(0);
          a.stream = streams_.is_none() ? uint64_t(t) : streams.data()[t];
          keep.push_back(q), keep.push_back(s), keep.push_back(g);
        }
        std::vector<int64_t> bad(static_cast<size_t>(T), 0);
        {
          py::gil_scoped_release nogil;
          qadapter_update_s8(ts.data(), T, lr, seed, qas, bad.data());
        }
        for (int64_t t = 0; t < T; ++t)
          if (bad[size_t(t)])
            throw ArgError("grads[" + std::to_string(t) + "]: " + std::to_string(bad[size_t(t)]) +
                           " NaN/inf values; those weights were left unchanged (the others were updated)");
      },
      py::arg("q"), py::arg("scales"), py::arg("grads"), py::arg("lr"), py::arg("seed"), py::arg("streams"),
      py::arg("qas"),
      "In place, for every tensor t: q[t] = clip(SR(q - lr * g * s^-1 (qas: s^-2)), -127, 127), stochastic\n"
      "rounding with the uniforms of Philox stream (seed, streams[t] or t). See edgelearn/quant.h.");
}

}  // namespace edgelearn::bind
