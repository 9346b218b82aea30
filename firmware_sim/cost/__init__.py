"""Per-op cost models: Cortex-M int8 stacks (cortex_m.py), Ethos-U NPU (npu.py)."""
