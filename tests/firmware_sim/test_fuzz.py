"""1000+ truncated or mutated .tflite files: each gives a ValueError naming the problem, never a crash or hang."""

from __future__ import annotations

import random
import signal
import time

import pytest

from firmware_sim.importers.tflite import load_tflite_bytes


def _mutants(seeds: list[bytes], n: int, rng: random.Random):
    for k in range(n):
        base = seeds[k % len(seeds)]
        kind = k % 4
        if kind == 0:                                    # truncation
            yield base[: rng.randrange(0, len(base))]
        elif kind == 1:                                  # random byte flips
            b = bytearray(base)
            for _ in range(rng.randint(1, 20)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            yield bytes(b)
        elif kind == 2:                                  # a 32-bit word (offset/length) set to an extreme
            b = bytearray(base)
            i = rng.randrange(0, len(b) - 4) & ~3
            b[i:i + 4] = rng.choice([b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\xff\xff\xff\xff",
                                     rng.randbytes(4)])
            yield bytes(b)
        else:                                            # mutations in the first 256 bytes (root, vtables)
            b = bytearray(base)
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(min(256, len(b)))] = rng.randrange(256)
            yield bytes(b)


def test_fuzz_1200_mutants(schema, model_paths):
    from firmware_sim.testing import random_model

    seeds = [model_paths[k].read_bytes() for k in ("kws", "ad", "str_ww")] + [random_model(s) for s in range(3)]
    rng = random.Random(1234)

    def alarm(signum, frame):
        raise TimeoutError("parse took longer than 2 s")

    old = signal.signal(signal.SIGALRM, alarm)
    n_ok = n_err = 0
    slowest = 0.0
    try:
        for data in _mutants(seeds, 1200, rng):
            signal.alarm(2)
            t0 = time.perf_counter()
            try:
                load_tflite_bytes(data, source="mutant")
                n_ok += 1                     # a mutation that kept the model valid
            except ValueError as e:
                assert str(e).startswith("mutant") and len(str(e)) < 400
                n_err += 1
            finally:
                signal.alarm(0)
            slowest = max(slowest, time.perf_counter() - t0)
    finally:
        signal.signal(signal.SIGALRM, old)
    assert n_ok + n_err == 1200
    assert n_err >= 400
    assert slowest < 2.0


@pytest.mark.parametrize("data, msg", [(b"", "too short"), (b"\x10\x00\x00\x00TFL3", "past the end"),
                                       (b"\x00" * 4 + b"XXXX" + b"\x00" * 8, "not a .tflite model")])
def test_clear_messages(schema, data, msg):
    with pytest.raises(ValueError, match=msg):
        load_tflite_bytes(data, source="m")
