// Bindings of the rng family: rng_philox_u32, rng_fill_f32.
#include <omp.h>

#include "arrays.h"
#include "common/philox_simd.h"
#include "edgelearn/philox.h"

namespace edgelearn::bind {

namespace {

constexpr int64_t kChunk = 1 << 14;  // elements per parallel task; fixed, so output is thread-independent

Dist parse_dist(int dist) {
  check(dist >= 0 && dist <= 2, "dist: must be 0 (gaussian), 1 (rademacher) or 2 (uniform)");
  return static_cast<Dist>(dist);
}

}  // namespace

void register_rng(py::module_& m) {
  m.def("_philox_level", &simd::philox_level, "SIMD path of the philox fills: 'avx512', 'avx2' or 'scalar'.");
  m.def(
      "_philox_blocks",
      [](uint64_t seed, uint64_t stream, uint64_t first_block, int64_t nblocks) {
        check(nblocks >= 0 && nblocks <= (int64_t(1) << 32), "nblocks: must be in [0, 2^32]");
        py::array_t<uint32_t> out({nblocks, int64_t(4)});
        uint32_t* o = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          simd::philox_blocks(seed, stream, first_block, nblocks, o);
        }
        return out;
      },
      py::arg("seed"), py::arg("stream"), py::arg("first_block"), py::arg("nblocks"),
      "For tests: words [nblocks, 4] of counter blocks first_block... (wrapping), via the active SIMD path.");
  m.def(
      "_philox_force_level", [](const std::string& level) { simd::philox_force_level(level.c_str()); },
      py::arg("level"), "For tests and benchmarks: 'scalar', 'avx2', 'avx512' (clamped to the CPU) or '' (best).");
  m.def(
      "rng_philox_u32",
      [](uint64_t seed, uint64_t stream, int64_t count, uint64_t start) {
        check(count >= 0, "count: must be >= 0");
        checked_mul(count, 4, "count");
        py::array_t<uint32_t> out(count);
        uint32_t* o = out.mutable_data();
        {
          py::gil_scoped_release nogil;
#pragma omp parallel for schedule(static) if (count > kChunk)
          for (int64_t c = 0; c < (count + kChunk - 1) / kChunk; ++c) {
            const int64_t i0 = c * kChunk, n = std::min(kChunk, count - i0);
            philox_fill_bits(seed, stream, start + uint64_t(i0), n, o + i0);
          }
        }
        return out;
      },
      py::arg("seed"), py::arg("stream"), py::arg("count"), py::arg("start") = 0,
      "Raw Philox4x32-10 words [start, start+count) of stream (seed, stream).");
  m.def(
      "rng_fill_f32",
      [](uint64_t seed, uint64_t stream, int64_t count, uint64_t start, int dist) {
        check(count >= 0, "count: must be >= 0");
        checked_mul(count, 4, "count");
        const Dist d = parse_dist(dist);
        py::array_t<float> out(count);
        float* o = out.mutable_data();
        {
          py::gil_scoped_release nogil;
#pragma omp parallel for schedule(static) if (count > kChunk)
          for (int64_t c = 0; c < (count + kChunk - 1) / kChunk; ++c) {
            const int64_t i0 = c * kChunk, n = std::min(kChunk, count - i0);
            philox_fill(seed, stream, start + uint64_t(i0), n, d, o + i0);
          }
        }
        return out;
      },
      py::arg("seed"), py::arg("stream"), py::arg("count"), py::arg("start") = 0, py::arg("dist") = 0,
      "Float32 values [start, start+count) of stream (seed, stream): dist 0 gaussian, 1 rademacher, 2 uniform.");
}

}  // namespace edgelearn::bind
