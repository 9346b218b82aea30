"""Benchmark of the zo family: zo_perturbed_linear_f32 and zo_replay_seeds_f32 at MiniLM shapes (vs NumPy
reference, stacked OpenBLAS sgemm, plain torch), zo_attention_packed_f32 (vs its NumPy twin and torch's
scaled_dot_product_attention over the padded batch) and the forward-gradient training step (vs a FwdLLM-style torch
baseline, memory vs inference and backprop).

`python benchmarks/bench_zo.py [--quick] [--json PATH]`; the code lives in edgelearn.bench.zo_kernels / zo_train.
"""

import sys

from edgelearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--family", "zo", *sys.argv[1:]]))
