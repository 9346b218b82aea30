"""Device profiles: one TOML file per board or NPU in `targets/profiles/`, sources cited in its comments.

A profile gives the core and clock, the memory banks (size, bus width, wait states or a measured read
bandwidth), caches and active power. `load_target("stm32h7a3")` or `load_target("path/to/board.toml")`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROFILES = Path(__file__).with_name("profiles")


@dataclass
class Memory:
    name: str
    kind: str                 # "sram" or "flash"
    size_bytes: int
    bus_bits: int = 32
    wait_states: int = 0
    read_bytes_per_cycle: float | None = None

    @property
    def bytes_per_cycle(self) -> float:
        """Sustained read bandwidth at the core clock: one bus word per (1 + wait states) cycles unless given."""
        if self.read_bytes_per_cycle:
            return float(self.read_bytes_per_cycle)
        return self.bus_bits / 8 / (1 + self.wait_states)


@dataclass
class Target:
    name: str
    title: str
    kind: str                 # "mcu", "npu" or "mobile"
    core: str
    clock_mhz: float
    active_power_mw: float
    memories: list[Memory]
    power_source: str = ""
    extra: dict = field(default_factory=dict)
    path: str = ""

    def memory(self, name: str) -> Memory:
        for m in self.memories:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def srams(self) -> list[Memory]:
        return [m for m in self.memories if m.kind == "sram"]

    @property
    def flash(self) -> Memory | None:
        return next((m for m in self.memories if m.kind == "flash"), None)


def _parse(d: dict, path: str) -> Target:
    try:
        mems = [Memory(m["name"], m["kind"], int(m["size_kb"] * 1024), int(m.get("bus_bits", 32)),
                       int(m.get("wait_states", 0)), m.get("read_bytes_per_cycle")) for m in d["memory"]]
        known = {"name", "title", "kind", "core", "clock_mhz", "active_power_mw", "memory", "power_source"}
        t = Target(d["name"], d.get("title", d["name"]), d.get("kind", "mcu"), d["core"], float(d["clock_mhz"]),
                   float(d["active_power_mw"]), mems, d.get("power_source", ""),
                   {k: v for k, v in d.items() if k not in known}, path)
    except KeyError as e:
        raise ValueError(f"{path}: target profile lacks the field {e.args[0]!r}") from None
    if t.clock_mhz <= 0 or t.active_power_mw < 0 or not mems:
        raise ValueError(f"{path}: clock_mhz must be > 0, active_power_mw >= 0 and at least one [[memory]] given")
    for m in mems:
        if m.kind not in ("sram", "flash") or m.size_bytes <= 0:
            raise ValueError(f"{path}: memory {m.name!r}: kind must be sram or flash, size_kb > 0")
    return t


def list_targets() -> list[Target]:
    return [_parse(tomllib.loads(p.read_text()), str(p)) for p in sorted(PROFILES.glob("*.toml"))]


def target_names() -> list[str]:
    return [t.name for t in list_targets()]


def load_target(name_or_path: str | Path | Target) -> Target:
    if isinstance(name_or_path, Target):
        return name_or_path
    p = Path(name_or_path)
    if p.suffix == ".toml":
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such target profile")
        try:
            return _parse(tomllib.loads(p.read_text()), str(p))
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{p}: not valid TOML: {e}") from None
    key = str(name_or_path).lower().replace("_", "-")
    for t in list_targets():
        if t.name == key:
            return t
    raise ValueError(f"unknown target {name_or_path!r}; known: {', '.join(target_names())} "
                     "(or give a path to a .toml profile)")
