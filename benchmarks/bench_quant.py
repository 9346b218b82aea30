"""Benchmark of the quant family: qgemm_s8 at transformer shapes (vs OpenBLAS sgemm and torch's dynamic-quantized
Linear), with weights packed once by qgemm_pack_s8, and from float32 activations through qlinear_s8 (x quantized
inside the kernel); qlinear_lora_s8 (vs zo_perturbed_linear_f32 on dequantised
weights and its twin); qadapter_update_s8 on 16M elements (vs measured memory bandwidth and its NumPy reference);
qgemm_pack_s8 and qgemm_unpack_s8 on one backbone weight (vs their twins and torch's permute of the same layout).

`python benchmarks/bench_quant.py [--quick] [--json PATH]`; the code lives in edgelearn.bench.quant.
"""

import sys

from edgelearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--family", "quant", *sys.argv[1:]]))
