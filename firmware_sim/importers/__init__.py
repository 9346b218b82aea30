"""Model importers: .tflite (flatbuffer schema of the tflite-micro / LiteRT packages) and torch modules.

`load(path_or_module)` picks the importer.
"""

from __future__ import annotations

from pathlib import Path

from firmware_sim.graph import Graph


def load(model, **kwargs) -> Graph:
    """A Graph from a .tflite path or bytes, a torch module (kwargs: example_inputs, dtype; see importers.torch),
    or an existing Graph."""
    if isinstance(model, Graph):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        from firmware_sim.importers.tflite import load_tflite_bytes

        return load_tflite_bytes(bytes(model), **kwargs)
    if isinstance(model, (str, Path)):
        p = Path(model)
        if p.suffix.lower() != ".tflite":
            raise ValueError(f"{p}: unsupported model file (expected a .tflite flatbuffer)")
        from firmware_sim.importers.tflite import load_tflite

        return load_tflite(p, **kwargs)
    if type(model).__module__.startswith("torch") or hasattr(model, "named_parameters"):
        from firmware_sim.importers.torch import load_torch

        return load_torch(model, **kwargs)
    raise TypeError(f"cannot import a model of type {type(model).__name__}: give a .tflite path or a torch module")
