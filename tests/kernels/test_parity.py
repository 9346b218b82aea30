"""Every registry entry (and its variants): native kernel against its NumPy reference twin, several random cases."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from edgelearn import _kernels
from edgelearn.kernels import registry

from .checks import assert_within, run_case

CASES_PER_MAKER = 6
MAKERS = [(name, i) for name, e in registry.ENTRIES.items() for i in range(1 + len(registry.VARIANTS.get(name, [])))]


@pytest.mark.parametrize(("name", "variant"), MAKERS, ids=[f"{n}-{i}" for n, i in MAKERS])
def test_native_matches_reference(name, variant):
    entry = registry.ENTRIES[name]
    make = ([entry.make] + registry.VARIANTS.get(name, []))[variant]
    rng = np.random.default_rng(zlib.crc32(f"{name}/{variant}".encode()))
    for i in range(CASES_PER_MAKER):
        case = make(rng, "small")
        got = run_case(entry.native, case)
        want = run_case(entry.reference, case)
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype
        assert_within(got, want, entry.tol, f"{name} variant {variant} case {i}")


def test_every_kernel_has_a_registry_entry():
    public = {n for n in dir(_kernels) if not n.startswith("_") and callable(getattr(_kernels, n))}
    missing = sorted(public - set(registry.ENTRIES))
    assert not missing, f"kernels without a registry entry (add one in edgelearn/kernels/registry.py): {missing}"


def test_registry_entries_are_complete():
    for name, e in registry.ENTRIES.items():
        assert e.name == name and callable(e.native) and callable(e.reference) and callable(e.make)
        assert hasattr(_kernels, name), f"{name}: no compiled kernel of that name"
        t = e.tol
        assert t.exact or t.ulp is not None or t.rtol > 0 or t.atol > 0, f"{name}: tolerance says nothing"


def test_type_stubs_cover_the_compiled_module():
    import re
    from pathlib import Path

    import edgelearn

    stub = Path(edgelearn.__file__).with_name("_kernels.pyi").read_text()
    stubbed = set(re.findall(r"^def (\w+)\(", stub, flags=re.M))
    compiled = {n for n in dir(_kernels) if callable(getattr(_kernels, n)) and not n.startswith("__")}
    compiled = {n for n in compiled if type(getattr(_kernels, n)).__name__ == "builtin_function_or_method"}
    assert compiled <= stubbed, f"missing from _kernels.pyi: {sorted(compiled - stubbed)}"
