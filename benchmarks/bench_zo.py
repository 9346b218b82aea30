"""Benchmark of the zo family (kernels and training step): `python benchmarks/bench_zo.py [--quick] [--json PATH]`.

The code lives in edgelearn.bench.zo_kernels / zo_train so the installed `edgelearn bench --family zo` runs it too.
"""

import sys

from edgelearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--family", "zo", *sys.argv[1:]]))
