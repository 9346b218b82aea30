"""firmware_sim: latency, energy, SRAM and flash of a model on a microcontroller or NPU (filled by a later issue)."""

__version__ = "0.1.0"
