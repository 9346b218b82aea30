"""The adapter bank: per-app LoRA + head files over one shared int8 backbone.

An adapter file (torch.save of tensors and plain values, loaded with weights_only=True) holds the app name, class
names, LoRA placement (targets, layers, r, alpha), the LoRA tensors and the head, and the sha256 of the backbone it
was trained on. Loading it over another backbone is refused. Switching apps swaps only these tensors: the int8
backbone stays loaded, shared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..zo.bert import SentenceClassifier
from ..zo.lora import ZOLinear, assign_layer_ids, layer_index
from .backbone import Int8Backbone
from .qmodules import QLinear, QLoRALinear

ADAPTER_FORMAT = "edgelearn-adapter"
ADAPTER_VERSION = 1


class AdapterError(ValueError):
    """An adapter that cannot be used with this backbone (one-line message)."""


@dataclass
class AdapterSpec:
    targets: tuple[str, ...] = ("query", "value")
    layers: tuple[int, ...] | None = (4, 5)
    r: int = 8
    alpha: float = 16.0


def attach_lora(model: SentenceClassifier, spec: AdapterSpec, seed: int = 0) -> list[str]:
    """Wrap the backbone's QLinear modules named in spec.targets (in spec.layers) as QLoRALinear; returns paths.
    Removes any adapter attached before (the backbone modules are restored first)."""
    detach_lora(model)
    gen = torch.Generator().manual_seed(int(seed))
    found = []
    for name, mod in list(model.bert.named_modules()):
        if not isinstance(mod, QLinear) or name.rsplit(".", 1)[-1] not in spec.targets:
            continue
        if spec.layers is not None and layer_index(name) not in set(spec.layers):
            continue
        parent, leaf = name.rsplit(".", 1)
        setattr(model.bert.get_submodule(parent), leaf, QLoRALinear(mod, spec.r, spec.alpha, generator=gen))
        found.append(name)
    if not found:
        raise AdapterError(f"no int8 Linear named {spec.targets} in layers {spec.layers}")
    for t, _ in model.head.zo_tensors():
        t.requires_grad_(True)
    assign_layer_ids(model)
    return found


def detach_lora(model: SentenceClassifier) -> None:
    for name, mod in list(model.bert.named_modules()):
        if isinstance(mod, QLoRALinear):
            parent, leaf = name.rsplit(".", 1)
            setattr(model.bert.get_submodule(parent), leaf, mod.base)
    assign_layer_ids(model)


def adapter_state(model: SentenceClassifier, app: str, classes, spec: AdapterSpec, backbone_sha256: str,
                  extra: dict | None = None) -> dict:
    lora = {f"{n}.A": m.lora_A.detach().clone() for n, m in model.bert.named_modules() if isinstance(m, QLoRALinear)}
    lora.update({f"{n}.B": m.lora_B.detach().clone() for n, m in model.bert.named_modules()
                 if isinstance(m, QLoRALinear)})
    return {"format": ADAPTER_FORMAT, "version": ADAPTER_VERSION, "app": app, "classes": [str(c) for c in classes],
            "backbone_sha256": backbone_sha256, "targets": list(spec.targets),
            "layers": None if spec.layers is None else list(spec.layers), "r": spec.r, "alpha": spec.alpha,
            "lora": lora, "head_weight": model.head.weight.detach().clone(),
            "head_bias": model.head.bias.detach().clone(), "extra": dict(extra or {})}


def read_adapter(path) -> dict:
    path = Path(path)
    try:
        st = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise AdapterError(f"{path}: no such adapter file") from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a corrupted file
        raise AdapterError(f"{path}: not a readable adapter file ({type(e).__name__})") from None
    if not isinstance(st, dict) or st.get("format") != ADAPTER_FORMAT:
        raise AdapterError(f"{path}: not an edgelearn adapter file")
    if st.get("version") != ADAPTER_VERSION:
        raise AdapterError(f"{path}: adapter format version {st.get('version')}, expected {ADAPTER_VERSION}")
    return st


@dataclass
class AdapterBank:
    """Adapters of many apps in one folder (<folder>/<app>.pt) over one loaded Int8Backbone.

    bank.activate(app) -> the model (a SentenceClassifier over the shared backbone with the app's LoRA + head).
    """

    backbone: Int8Backbone
    folder: Path
    active: str | None = None
    model: SentenceClassifier | None = field(default=None, repr=False)

    def __post_init__(self):
        self.folder = Path(self.folder)

    def path(self, app: str) -> Path:
        return self.folder / f"{app}.pt"

    def apps(self) -> list[dict]:
        """Every adapter of the folder: app, classes, backbone match, metrics."""
        out = []
        for p in sorted(self.folder.glob("*.pt")):
            try:
                st = read_adapter(p)
            except AdapterError as e:
                out.append({"app": p.stem, "error": str(e)})
                continue
            out.append({"app": st["app"], "classes": st["classes"], "r": st["r"], "layers": st["layers"],
                        "backbone_sha256": st["backbone_sha256"],
                        "matches_backbone": st["backbone_sha256"] == self.backbone.sha256, **st["extra"]})
        return out

    def new_model(self, app: str, num_labels: int, spec: AdapterSpec, seed: int = 0) -> SentenceClassifier:
        """A fresh adapter for `app` (LoRA B = 0, new head) over the shared backbone, made active."""
        model = self.backbone.classifier(num_labels, seed)
        attach_lora(model, spec, seed)
        self.model, self.active = model, app
        return model

    def save(self, app: str, classes, spec: AdapterSpec, extra: dict | None = None) -> Path:
        if self.model is None or self.active != app:
            raise AdapterError(f"app {app!r} is not the active adapter")
        self.folder.mkdir(parents=True, exist_ok=True)
        p = self.path(app)
        torch.save(adapter_state(self.model, app, classes, spec, self.backbone.sha256, extra), p)
        return p

    def activate(self, app: str | Path) -> SentenceClassifier:
        """Load one app's adapter over the shared backbone (the backbone is not reloaded)."""
        p = Path(app) if str(app).endswith(".pt") else self.path(str(app))
        st = read_adapter(p)
        if st["backbone_sha256"] != self.backbone.sha256:
            raise AdapterError(f"{p}: adapter was trained for backbone {st['backbone_sha256'][:12]}, this backbone "
                               f"is {self.backbone.sha256[:12]}; retrain it on this backbone")
        spec = AdapterSpec(tuple(st["targets"]), None if st["layers"] is None else tuple(st["layers"]), int(st["r"]),
                           float(st["alpha"]))
        if self.model is None or self.model.head.out_features != st["head_weight"].shape[0]:
            if self.model is not None:
                detach_lora(self.model)
            self.model = self.backbone.classifier(st["head_weight"].shape[0])
        attach_lora(self.model, spec)
        mods = dict(self.model.bert.named_modules())
        try:
            with torch.no_grad():
                for key, t in st["lora"].items():
                    name, which = key.rsplit(".", 1)
                    getattr(mods[name], f"lora_{which}").copy_(t)
                self.model.head.weight.copy_(st["head_weight"])
                self.model.head.bias.copy_(st["head_bias"])
        except (KeyError, RuntimeError) as e:
            raise AdapterError(f"{p}: adapter tensors do not fit this backbone ({type(e).__name__})") from None
        self.active = st["app"]
        self.model.classes = st["classes"]
        return self.model


__all__ = ["ADAPTER_FORMAT", "ADAPTER_VERSION", "AdapterBank", "AdapterError", "AdapterSpec", "adapter_state",
           "attach_lora", "detach_lora", "read_adapter", "ZOLinear"]
