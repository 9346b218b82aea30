"""Fixtures of the firmware_sim tests: the five MLPerf Tiny models (skip when the shared folder is absent)."""

from __future__ import annotations

import pytest

MODELS = {
    "kws": "kws_ref_model.tflite",
    "vww": "vww_96_int8.tflite",
    "ic": "pretrainedResnet_quant.tflite",
    "ad": "ad01_int8.tflite",
    "str_ww": "str_ww_ref_model.tflite",
}


@pytest.fixture(scope="session")
def model_paths(shared):
    folder = shared / "models" / "mlperf_tiny"
    paths = {k: folder / v for k, v in MODELS.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        pytest.skip(f"MLPerf Tiny models missing: {missing}")
    return paths


@pytest.fixture(scope="session")
def schema():
    pytest.importorskip("flatbuffers", reason="the .tflite schema needs flatbuffers (edgelearn[litert])")
    try:
        from firmware_sim.importers.tflite import schema as get

        return get()
    except ImportError as e:
        pytest.skip(f"no .tflite schema module: {e}")


@pytest.fixture(scope="session")
def tflm():
    from firmware_sim.memory.recording import have_tflite_micro

    if not have_tflite_micro():
        pytest.skip("tflite-micro not installed (pip install 'edgelearn[litert]')")
    return True
