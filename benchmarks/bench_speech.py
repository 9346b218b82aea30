"""Benchmark of the speech family: the float log-mel front-end on 10 s of audio vs librosa (same parameters) and
its float64 twin; the q15 front-end, segment masks and int8 gate network vs their bit-exact NumPy twins; streams
vs offline; MACs and RAM of front-end + gate network for 4 s.

`python benchmarks/bench_speech.py [--quick] [--json PATH]`; the code lives in edgelearn.bench.speech.
"""

import sys

from edgelearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--family", "speech", *sys.argv[1:]]))
