// Bindings of the speech family (contract: edgelearn/speech.h): the log-mel front-ends and their streams, segment
// masks and their stream, the int8 gate network, and building blocks for tests. Arrays are checked here too (the
// Python layer checks first, with the same messages).
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "arrays.h"
#include "edgelearn/speech.h"

namespace edgelearn::bind {

namespace {

template <typename T>
py::array_t<T> audio(py::handle obj, const char* name) {
  auto a = require<T>(obj, name);
  if (a.ndim() != 1)
    throw ArgError(std::string(name) + ": expected mono audio, 1 dimension, got " + std::to_string(a.ndim()) +
                   " (mix or pick a channel first)");
  return a;
}

struct MaskStreamPy {
  MaskStream st;
  std::vector<int16_t> buf;
};

}  // namespace

void register_speech(py::module_& m) {
  m.def(
      "speech_logmel_f32",
      [](py::object x_) {
        auto x = audio<float>(x_, "x");
        const int64_t n = x.shape(0);
        if (n < SPEECH_FRAME)
          throw ArgError("x: need at least 480 samples (one 30 ms frame at 16 kHz), got " + std::to_string(n));
        py::array_t<float> y({speech_num_frames(n), int64_t(SPEECH_NMELS)});
        const float* p = x.data();
        float* q = y.mutable_data();
        py::gil_scoped_release nogil;
        speech_logmel_f32(p, n, q);
        return y;
      },
      py::arg("x"), "float32 audio [n] (16 kHz) -> ln(mel + 2^-20) [T, 40] float32 (edgelearn/speech.h).");
  m.def(
      "speech_logmel_q15",
      [](py::object x_) {
        auto x = audio<int16_t>(x_, "x");
        const int64_t n = x.shape(0);
        if (n < SPEECH_FRAME)
          throw ArgError("x: need at least 480 samples (one 30 ms frame at 16 kHz), got " + std::to_string(n));
        py::array_t<int16_t> y({speech_num_frames(n), int64_t(SPEECH_NMELS)});
        const int16_t* p = x.data();
        int16_t* q = y.mutable_data();
        py::gil_scoped_release nogil;
        speech_logmel_q15(p, n, q);
        return y;
      },
      py::arg("x"), "int16 audio [n] (16 kHz) -> Q10 ln(mel) [T, 40] int16, integer algorithm of speech.h.");

  py::class_<LogMelStreamF32>(m, "_LogMelStreamF32", "Streaming float32 front-end state (fixed size).")
      .def(py::init<>())
      .def_readonly("fill", &LogMelStreamF32::fill)
      .def_readonly("frames", &LogMelStreamF32::frames)
      .def("push", [](LogMelStreamF32& st, py::object x_) {
        auto x = audio<float>(x_, "x");
        const int64_t n = x.shape(0);
        py::array_t<float> y({speech_stream_frames_after(st.fill, n), int64_t(SPEECH_NMELS)});
        speech_logmel_stream_push_f32(&st, x.data(), n, y.mutable_data());
        return y;
      });
  py::class_<LogMelStreamQ15>(m, "_LogMelStreamQ15", "Streaming q15 front-end state (fixed size).")
      .def(py::init<>())
      .def_readonly("fill", &LogMelStreamQ15::fill)
      .def_readonly("frames", &LogMelStreamQ15::frames)
      .def("push", [](LogMelStreamQ15& st, py::object x_) {
        auto x = audio<int16_t>(x_, "x");
        const int64_t n = x.shape(0);
        py::array_t<int16_t> y({speech_stream_frames_after(st.fill, n), int64_t(SPEECH_NMELS)});
        speech_logmel_stream_push_q15(&st, x.data(), n, y.mutable_data());
        return y;
      });

  m.def(
      "speech_mask_segments_s16",
      [](py::object x_, py::object g_, py::object L_, py::object R_) {
        auto x = audio<int16_t>(x_, "x");
        auto g = require<uint8_t>(g_, "gates", 1);
        const int64_t L = int_arg(L_, "seg_len", 2, int64_t(1) << 20);
        const int32_t R = int32_t(int_arg(R_, "ramp", 2, MASK_MAX_RAMP));
        py::array_t<int16_t> y(x.shape(0));
        const int16_t* px = x.data();
        const uint8_t* pg = g.data();
        int16_t* py_ = y.mutable_data();
        const int64_t n = x.shape(0), ng = g.shape(0);
        py::gil_scoped_release nogil;
        speech_mask_segments_s16(px, n, pg, ng, L, R, py_);
        return y;
      },
      py::arg("x"), py::arg("gates"), py::arg("seg_len"), py::arg("ramp"),
      "int16 audio [n], gates uint8 {0,1} [>= ceil(n / seg_len)] -> masked int16 [n] (raised-cosine ramps).");

  py::class_<MaskStreamPy>(m, "_MaskStream", "Streaming segment mask (speech.h MaskStream).")
      .def(py::init([](py::object L_, py::object R_, py::object cap_) {
             auto s = std::make_unique<MaskStreamPy>();
             const int64_t cap = int_arg(cap_, "capacity", 1, int64_t(1) << 26);
             s->buf.resize(size_t(cap));
             speech_mask_stream_init(&s->st, int_arg(L_, "seg_len", 2, int64_t(1) << 20),
                                     int32_t(int_arg(R_, "ramp", 2, MASK_MAX_RAMP)), s->buf.data(), cap);
             return s;
           }),
           py::arg("seg_len"), py::arg("ramp"), py::arg("capacity"))
      .def_property_readonly("pending", [](const MaskStreamPy& s) { return s.st.n_in - s.st.n_out; })
      .def_property_readonly("n_in", [](const MaskStreamPy& s) { return s.st.n_in; })
      .def_property_readonly("n_gates", [](const MaskStreamPy& s) { return s.st.n_gates; })
      .def("push",
           [](MaskStreamPy& s, py::object x_, py::object g_) {
             auto x = audio<int16_t>(x_, "x");
             auto g = require<uint8_t>(g_, "gates", 1);
             py::array_t<int16_t> y(s.st.n_in - s.st.n_out + x.shape(0));
             const int64_t k = speech_mask_stream_push(&s.st, x.data(), x.shape(0), g.data(), g.shape(0),
                                                       y.mutable_data());
             return py::array_t<int16_t>(k, y.data());
           })
      .def("finish", [](MaskStreamPy& s) {
        py::array_t<int16_t> y(s.st.n_in - s.st.n_out);
        const int64_t k = speech_mask_stream_finish(&s.st, y.mutable_data());
        return py::array_t<int16_t>(k, y.data());
      });

  py::class_<GateNet>(m, "_GateNet", "A parsed gate-network blob (views into the bytes it was parsed from).")
      .def_readonly("F", &GateNet::F)
      .def_readonly("n_layers", &GateNet::n_layers)
      .def_readonly("macs_per_segment", &GateNet::macs_per_segment);
  m.def(
      "_speech_gate_net_parse",
      [](py::object blob_) {
        auto b = require<uint8_t>(blob_, "net", 1);
        return speech_gate_net_parse(b.data(), b.shape(0), "net");
      },
      py::arg("net"), "Parse + validate a gate-network blob (ValueError naming 'net').");
  m.def(
      "speech_gate_net_s8",
      [](py::object feat_, py::object blob_, int64_t block) {
        auto f = require<int16_t>(feat_, "feat", 2);
        if (f.shape(1) != SPEECH_NMELS)
          throw ArgError("feat: expected shape [T, 40], got [" + std::to_string(f.shape(0)) + ", " +
                         std::to_string(f.shape(1)) + "]");
        if (f.shape(0) < 1) throw ArgError("feat: need at least one frame");
        auto b = require<uint8_t>(blob_, "net", 1);
        const GateNet net = speech_gate_net_parse(b.data(), b.shape(0), "net");
        const int64_t T = f.shape(0), S = speech_gate_net_segments(net, T);
        py::array_t<int32_t> logits(S);
        py::array_t<uint8_t> gates(S);
        std::vector<int8_t> scratch(size_t(speech_gate_net_scratch_bytes(S)));
        const int16_t* pf = f.data();
        int32_t* pl = logits.mutable_data();
        uint8_t* pg = gates.mutable_data();
        {
          py::gil_scoped_release nogil;
          speech_gate_net_s8(net, pf, T, scratch.data(), pl, pg, block);
        }
        return py::make_tuple(logits, gates);
      },
      py::arg("feat"), py::arg("net"), py::arg("block") = 1,
      "q15 log-mel [T, 40] int16, blob uint8 -> (logits int32 [S], gates uint8 [S]), S = ceil(T / F); block B:\n"
      "gates per B consecutive segments, kept when the block's logits sum to > 0.");

  m.def("_speech_level", &speech_level, "Lane path of the float front-end: 'avx512', 'avx2' or 'baseline'.");
  m.def(
      "_speech_force_level", [](const std::string& lv) { speech_force_level(lv.c_str()); }, py::arg("level"),
      "For tests and benchmarks: 'baseline', 'avx2', 'avx512' (clamped to the CPU) or '' (best).");
  m.def(
      "_speech_rfft512_f32",
      [](py::object x_) {
        auto x = require<float>(x_, "x", 1);
        if (x.shape(0) != SPEECH_NFFT) throw ArgError("x: expected 512 samples");
        py::array_t<float> X(2 * SPEECH_NBINS);
        speech_rfft512_f32(x.data(), X.mutable_data());
        return X;
      },
      py::arg("x"), "The float 512-point real FFT of the front-end: [257 * 2] interleaved re, im.");
  m.def(
      "_speech_rfft512_q15",
      [](py::object x_) {
        auto x = require<int32_t>(x_, "x", 1);
        if (x.shape(0) != SPEECH_NFFT) throw ArgError("x: expected 512 samples");
        py::array_t<int32_t> X(2 * SPEECH_NBINS);
        speech_rfft512_q15(x.data(), X.mutable_data());
        return X;
      },
      py::arg("x"), "The integer 512-point real FFT of the q15 front-end (2X): [257 * 2] interleaved int32.");
  m.def(
      "_speech_log_q10",
      [](py::object a_) {
        auto a = require<uint64_t>(a_, "acc", 1);
        py::array_t<int16_t> y(a.shape(0));
        for (py::ssize_t i = 0; i < a.shape(0); ++i) y.mutable_data()[i] = speech_log_q10(a.data()[i]);
        return y;
      },
      py::arg("acc"), "Q10 ln(acc 2^-45) of uint64 mel accumulators (the q15 front-end's log).");
  m.def("_speech_tables", []() {
    const SpeechTables& t = speech_tables();
    py::dict d;
    auto cp = [](const auto* p, int64_t n) {
      using T = std::remove_cv_t<std::remove_pointer_t<decltype(p)>>;
      py::array_t<T> a(n);
      std::copy(p, p + n, a.mutable_data());
      return a;
    };
    d["win"] = cp(t.win, SPEECH_FRAME), d["winq"] = cp(t.winq, SPEECH_FRAME);
    d["twq_re"] = cp(t.twq_re, 128), d["twq_im"] = cp(t.twq_im, 128);
    d["spq_re"] = cp(t.spq_re, SPEECH_NBINS), d["spq_im"] = cp(t.spq_im, SPEECH_NBINS);
    d["mel_lo"] = cp(t.mel_lo, SPEECH_NMELS), d["mel_len"] = cp(t.mel_len, SPEECH_NMELS);
    d["mel_w"] = cp(t.mel_w, t.mel_nnz), d["mel_wq"] = cp(t.mel_wq, t.mel_nnz);
    d["log2_tab"] = cp(t.log2_tab, 65);
    return d;
  });
  m.def("_speech_info", []() {
    const SpeechTables& t = speech_tables();
    py::dict d;
    d["sample_rate"] = SPEECH_SR, d["frame"] = SPEECH_FRAME, d["hop"] = SPEECH_HOP, d["nfft"] = SPEECH_NFFT;
    d["n_mels"] = SPEECH_NMELS, d["mel_nnz"] = t.mel_nnz;
    d["sizeof_tables"] = int64_t(sizeof(SpeechTables));
    d["sizeof_stream_f32"] = int64_t(sizeof(LogMelStreamF32));
    d["sizeof_stream_q15"] = int64_t(sizeof(LogMelStreamQ15));
    d["sizeof_mask_stream"] = int64_t(sizeof(MaskStream));
    // stack scratch of one q15 frame: ar, ai (int32 [256] each), X2 (int32 [514]), P (uint64 [257])
    d["q15_frame_scratch_bytes"] = int64_t(4 * 256 * 2 + 4 * 2 * SPEECH_NBINS + 8 * SPEECH_NBINS);
    d["f32_frame_scratch_bytes"] = int64_t(4 * 256 * 2 + 4 * SPEECH_NBINS + 4);
    d["gate_max_layers"] = GATE_MAX_LAYERS, d["gate_max_ch"] = GATE_MAX_CH, d["gate_max_k"] = GATE_MAX_K;
    d["mask_gate_ring"] = MASK_GATE_RING, d["mask_max_ramp"] = MASK_MAX_RAMP;
    return d;
  });
}

}  // namespace edgelearn::bind
