"""Benchmark of the speech family: speech_logmel_f32 on 10 s of audio vs librosa (same parameters) and its float64
twin; speech_logmel_q15, speech_mask_segments_s16 and speech_gate_net_s8 vs their bit-exact NumPy twins; the
streaming forms (push / finish) vs offline; MACs and RAM of front-end + gate network for 4 s.

`python benchmarks/bench_speech.py [--quick] [--json PATH]`; the code lives in edgelearn.bench.speech.
"""

import sys

from edgelearn.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--family", "speech", *sys.argv[1:]]))
