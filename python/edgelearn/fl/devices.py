"""Simulated devices: compute speed, memory budget and link speeds of each client, from firmware_sim profiles.

A tier is a share of the population with one device (a firmware_sim target profile, e.g. ``phone-soc``) scaled by
`speed` (1.0 = the profile's big CPU core), an app memory budget and uplink/downlink bandwidths. Client i's tier is
drawn once from the shares with a generator keyed by (seed, i), so a client keeps its device for the whole run and
no table of 100,000 devices is built.

Device assumptions (stated, not measured; override them in the config's [[devices.tier]] tables):
    compute   clock_mhz x cpu_macs_per_cycle x utilisation (0.25: sustained fraction of peak for fp32 transformer
              GEMMs on one core) x speed, in MAC/s
    memory    the budget an app can use for on-device training in the background (Android kills background apps
              well below the physical RAM): flagship 512 MB, mid 256 MB, low-end 128 MB by default
    links     uplink / downlink in Mbit/s (4G-class defaults)
Per round the engine charges each participant compute (MACs / MAC/s) + download (bytes / downlink) + upload
(bytes / uplink), and the round takes the slowest participant's time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


DEFAULT_TIERS = [
    {"name": "flagship", "share": 0.3, "speed": 1.0, "mem_mb": 512, "up_mbps": 20.0, "down_mbps": 100.0},
    {"name": "mid", "share": 0.4, "speed": 0.5, "mem_mb": 256, "up_mbps": 10.0, "down_mbps": 50.0},
    {"name": "low", "share": 0.3, "speed": 0.25, "mem_mb": 128, "up_mbps": 5.0, "down_mbps": 20.0},
]
UTILISATION = 0.25


@dataclass(frozen=True)
class Device:
    name: str
    macs_per_s: float
    mem_bytes: int
    up_bps: float  # bits per second
    down_bps: float
    speed: float = 1.0  # relative to the profile's core (load allocation uses it)

    def compute_s(self, macs: float) -> float:
        return float(macs) / self.macs_per_s

    def comm_s(self, bytes_up: float, bytes_down: float) -> float:
        return 8.0 * bytes_up / self.up_bps + 8.0 * bytes_down / self.down_bps


def _profile_macs(profile: str) -> tuple[float, str]:
    """Peak MAC/s of a firmware_sim target's CPU (clock x cpu_macs_per_cycle)."""
    try:
        from firmware_sim.targets import load_target
    except ImportError:  # pragma: no cover - firmware_sim ships in the same wheel
        return 2800e6 * 16, "phone-soc (built-in numbers)"
    t = load_target(profile)
    return t.clock_mhz * 1e6 * float(t.extra.get("cpu_macs_per_cycle", 1)), t.name


def rng(*key):
    from .client import rng as _rng

    return _rng(*key)


class DevicePool:
    """Assigns each client id a Device from tiers; `device(cid)` is deterministic in (seed, cid)."""

    def __init__(self, tiers: list[dict] | None = None, profile: str = "phone-soc", seed: int = 0,
                 utilisation: float = UTILISATION):
        tiers = [dict(t) for t in (tiers or DEFAULT_TIERS)]
        peak, self.profile = _profile_macs(profile)
        self.devices, shares = [], []
        for i, t in enumerate(tiers):
            for key in ("share", "speed", "mem_mb", "up_mbps", "down_mbps"):
                if key not in t:
                    raise ValueError(f"devices.tier[{i}].{key}: missing")
                if not float(t[key]) > 0:
                    raise ValueError(f"devices.tier[{i}].{key}: must be > 0, got {t[key]}")
            self.devices.append(Device(str(t.get("name", f"tier{i}")), peak * utilisation * float(t["speed"]),
                                       int(float(t["mem_mb"]) * 2**20), float(t["up_mbps"]) * 1e6,
                                       float(t["down_mbps"]) * 1e6, float(t["speed"])))
            shares.append(float(t["share"]))
        self.cum = np.cumsum(shares) / np.sum(shares)
        self.seed = int(seed)
        self.tiers = tiers
        self._tier: dict[int, int] = {}

    def tier_of(self, cid: int) -> int:
        t = self._tier.get(cid)
        if t is None:
            t = self._tier[cid] = self._draw(cid)
        return t

    def _draw(self, cid: int) -> int:
        u = rng(self.seed, 0xD0D0, int(cid)).random()
        return int(np.searchsorted(self.cum, u, side="right"))

    def device(self, cid: int) -> Device:
        return self.devices[min(self.tier_of(cid), len(self.devices) - 1)]
