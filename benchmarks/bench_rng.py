"""Benchmark of the rng family: rng_philox_u32, rng_fill_f32 vs their NumPy reference, NumPy's Philox and torch.

`python benchmarks/bench_rng.py [--quick] [--json PATH]`; the code lives in edgelearn.bench.rng.
"""

import sys

from edgelearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--family", "rng", *sys.argv[1:]]))
