"""Reference numbers from Arm's Vela compiler (`ethos-u-vela`, optional): run `vela` on a .tflite in a child
process and a temporary folder, and read its summary and per-layer CSV files.

    run_vela("kws.tflite", "corstone300-u55-128")  ->  VelaResult(total_cycles, npu_cycles, ..., layers)

The accelerator, system config and memory mode come from the target profile (`vela_accelerator`,
`vela_system_config`, `vela_memory_mode`); the config file is Vela's own `Arm/vela.ini`.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from firmware_sim.targets import load_target


@dataclass
class VelaResult:
    accelerator: str
    system_config: str
    total_cycles: float
    npu_cycles: float
    sram_cycles: float
    flash_cycles: float
    macs: int
    encoded_weight_bytes: int
    layers: list[dict] = field(default_factory=list)   # per-layer CSV rows (Vela's column names)


def vela_command() -> list[str] | None:
    """The `vela` command of this environment (next to the interpreter first), or None if not installed."""
    here = Path(sys.executable).with_name("vela")
    if here.exists():
        return [str(here)]
    found = shutil.which("vela")
    return [found] if found else None


def run_vela(model: str | Path, target: str = "corstone300-u55-128", timeout: float = 300.0) -> VelaResult:
    cmd = vela_command()
    if cmd is None:
        raise ImportError("the Vela reference needs ethos-u-vela: pip install ethos-u-vela")
    t = load_target(target)
    acc = t.extra.get("vela_accelerator")
    if not acc:
        raise ValueError(f"target {t.name} has no vela_accelerator (not an Ethos-U profile)")
    sysconf = t.extra.get("vela_system_config", "Ethos_U55_High_End_Embedded")
    mode = t.extra.get("vela_memory_mode", "Shared_Sram")
    model = Path(model).resolve()
    with tempfile.TemporaryDirectory(prefix="vela_") as tmp:
        args = cmd + [str(model), "--accelerator-config", acc, "--config", "Arm/vela.ini", "--system-config",
                      sysconf, "--memory-mode", mode, "--output-dir", tmp]
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=tmp)
        if p.returncode != 0:
            raise RuntimeError(f"vela failed on {model.name} ({p.returncode}): {p.stderr.strip()[-500:]}")
        summary = next(Path(tmp).glob("*_summary_*.csv"), None)
        per_layer = next(Path(tmp).glob("*_per-layer.csv"), None)
        if summary is None:
            raise RuntimeError(f"vela wrote no summary CSV for {model.name}")
        with summary.open() as f:
            s = next(csv.DictReader(f))
        layers = []
        if per_layer is not None:
            with per_layer.open() as f:
                layers = list(csv.DictReader(f))
    return VelaResult(acc, sysconf, float(s["cycles_total"]), float(s["cycles_npu"]),
                      float(s["cycles_sram_access"]), float(s["cycles_off_chip_flash_access"]), int(s["nn_macs"]),
                      int(s["total_npu_encoded_weights"]), layers)
