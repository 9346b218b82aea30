"""A frozen int8 backbone: export from the fp32 MiniLM encoder, one file with a version and a sha256, read-only load.

Export: every nn.Linear of the encoder becomes int8 with per-output-channel scales (symmetric, [-127, 127]) and an
activation scale calibrated on sample data (the largest |x| the layer sees on the calibration batches, / 127);
the word-embedding table becomes int8 with per-row scales; position / token-type embeddings and LayerNorms stay
float32 (small).

File layout (little-endian):
    b"ELQB"  uint32 version  uint64 header_len  header (JSON, utf-8)  payload  sha256 (32 bytes)
The header holds the BertConfig, the tensor table (name, dtype, shape, offset, nbytes) and every activation scale;
the trailing sha256 digests every byte before it. Its hex form is the backbone's identity: adapters are saved
with it, and a file whose bytes do not hash to it is refused (checked before anything is parsed). Tensors are
read-only views of the file's bytes.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..kernels import quant
from ..zo.bert import BertConfig, BertEncoder, Packed, SentenceClassifier
from ..zo.lora import ZOLinear, assign_layer_ids
from .qmodules import QEmbedding, QLinear, quantize_weight

MAGIC = b"ELQB"
VERSION = 1
_DTYPES = {"int8": np.int8, "float32": np.float32}


class BackboneError(ValueError):
    """A backbone file that cannot be used (one-line message)."""


# ---------------------------------------------------------------------------------------------- export
@torch.inference_mode()
def calibrate(encoder: BertEncoder, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              batch: int = 32) -> dict[str, float]:
    """Activation scale of every nn.Linear of `encoder`: max |input| over the calibration data / 127."""
    amax: dict[str, float] = {}
    hooks = []
    for name, mod in encoder.named_modules():
        if isinstance(mod, nn.Linear):
            def hook(m, inp, out, name=name):
                amax[name] = max(amax.get(name, 0.0), float(inp[0].abs().max()))
            hooks.append(mod.register_forward_hook(hook))
    try:
        for i in range(0, len(input_ids), batch):
            encoder(input_ids[i:i + batch], attention_mask[i:i + batch])
    finally:
        for h in hooks:
            h.remove()
    return {k: max(v, 1e-6) / 127.0 for k, v in amax.items()}


def export_backbone(encoder: BertEncoder, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    path, source: str = "") -> str:
    """Quantize and calibrate `encoder`, write it to `path`; returns the sha256 (the backbone's identity)."""
    x_scales = calibrate(encoder, input_ids, attention_mask)
    tensors: dict[str, np.ndarray] = {}
    for name, mod in encoder.named_modules():
        if isinstance(mod, nn.Linear):
            q, s = quantize_weight(mod.weight)
            tensors[f"{name}.wq"], tensors[f"{name}.ws"] = q, s
            tensors[f"{name}.bias"] = mod.bias.detach().float().numpy()
    e = encoder.embeddings
    tensors["embeddings.word.q"], tensors["embeddings.word.s"] = quantize_weight(e.word_embeddings.weight)
    for key, t in encoder.state_dict().items():
        if key.startswith("embeddings.") and "word_embeddings" not in key:
            tensors[key] = t.detach().float().numpy()
        elif "LayerNorm" in key:
            tensors[key] = t.detach().float().numpy()
    header = {"format": "edgelearn-int8-backbone", "version": VERSION, "config": asdict(encoder.config),
              "x_scales": x_scales, "source": source, "calibration_sequences": int(len(input_ids))}
    write_backbone(path, tensors, header)
    return header["sha256"]


def write_backbone(path, tensors: dict[str, np.ndarray], header: dict) -> None:
    table, chunks, off = [], [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dt = {np.dtype(np.int8): "int8", np.dtype(np.float32): "float32"}[arr.dtype]
        table.append({"name": name, "dtype": dt, "shape": list(arr.shape), "offset": off, "nbytes": arr.nbytes})
        chunks.append(arr.tobytes())
        off += arr.nbytes
        pad = (-off) % 64
        chunks.append(b"\0" * pad)
        off += pad
    payload = b"".join(chunks)
    header["tensors"] = table
    header.pop("sha256", None)
    h = json.dumps(header).encode()
    body = MAGIC + struct.pack("<IQ", VERSION, len(h)) + h + payload
    digest = hashlib.sha256(body).digest()
    header["sha256"] = digest.hex()
    Path(path).write_bytes(body + digest)


# ---------------------------------------------------------------------------------------------- load
def read_backbone(path) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, read-only tensors) of a backbone file; BackboneError (one line) for anything wrong with it."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise BackboneError(f"{path}: cannot read the backbone file ({e.strerror})") from None
    if len(raw) < 48 or raw[:4] != MAGIC:
        raise BackboneError(f"{path}: not an edgelearn int8 backbone (bad magic); export one with "
                            "`edgelearn adapters export`")
    version, hlen = struct.unpack("<IQ", raw[4:16])
    if version != VERSION:
        raise BackboneError(f"{path}: backbone format version {version}, this edgelearn reads version {VERSION}")
    body = memoryview(raw)[:-32]
    got, want = hashlib.sha256(body).hexdigest(), raw[-32:].hex()
    if got != want:
        raise BackboneError(f"{path}: corrupted backbone (sha256 {got[:12]} does not match the recorded "
                            f"{want[:12]}); re-export the backbone")
    try:
        header = json.loads(bytes(body[16:16 + hlen]).decode())
        table = header["tensors"]
    except (ValueError, KeyError, UnicodeDecodeError):
        raise BackboneError(f"{path}: corrupted backbone header; re-export the backbone") from None
    header["sha256"] = want
    payload = body[16 + hlen:]
    tensors = {}
    for t in table:
        a = np.frombuffer(payload, _DTYPES[t["dtype"]], count=int(np.prod(t["shape"], dtype=np.int64)),
                          offset=t["offset"]).reshape(t["shape"])
        tensors[t["name"]] = a  # frombuffer over bytes: read-only
    return header, tensors


class Int8Backbone:
    """The loaded frozen backbone: an encoder whose Linears are QLinear and whose word embeddings are int8.
    One instance is shared by every app's model (``classifier`` wraps it with an app's head)."""

    def __init__(self, path):
        self.path = Path(path)
        self.header, t = read_backbone(path)
        self.sha256: str = self.header["sha256"]
        self.config = BertConfig(**self.header["config"])
        xs = self.header["x_scales"]
        with torch.device("meta"):
            enc = BertEncoder(self.config)
        for name, mod in list(enc.named_modules()):
            if isinstance(mod, nn.Linear):
                try:
                    q = QLinear(quant.qgemm_pack_s8(t[f"{name}.wq"]), t[f"{name}.ws"], t[f"{name}.bias"], xs[name])
                except (KeyError, ValueError, TypeError) as e:
                    raise BackboneError(f"{self.path}: layer {name} is missing or invalid ({e})") from None
                if (q.out_features, q.in_features) != (mod.out_features, mod.in_features):
                    raise BackboneError(f"{self.path}: layer {name} has weights [{q.out_features}, {q.in_features}], "
                                        f"the config needs [{mod.out_features}, {mod.in_features}]")
                parent, leaf = name.rsplit(".", 1)
                setattr(enc.get_submodule(parent), leaf, q)
        enc.embeddings.word_embeddings = QEmbedding(t["embeddings.word.q"], t["embeddings.word.s"])
        rest = {k: torch.from_numpy(v.copy()) for k, v in t.items() if not k.endswith((".wq", ".ws", ".bias"))
                or "LayerNorm" in k}
        rest = {k: v for k, v in rest.items() if not k.startswith("embeddings.word.")}
        missing, unexpected = enc.load_state_dict(rest, strict=False, assign=True)
        left = [m for m in missing if not m.startswith("embeddings.word")]
        if left or unexpected:
            raise BackboneError(f"{self.path}: tensors do not match the config (missing {left[:3]}, "
                                f"unexpected {unexpected[:3]})")
        for p in enc.parameters():
            p.requires_grad_(False)
        self.encoder = enc.eval()

    @property
    def nbytes(self) -> int:
        """Bytes the backbone's weights take in memory (int8 tensors, scales, float32 LayerNorms / embeddings)."""
        n = 0
        for m in self.encoder.modules():
            if isinstance(m, (QLinear, QEmbedding)):
                n += m.nbytes
        n += sum(p.numel() * p.element_size() for p in self.encoder.parameters())
        return n

    def classifier(self, num_labels: int, seed: int = 0) -> SentenceClassifier:
        """A SentenceClassifier over this (shared) backbone with a fresh head (normal(0, 0.02), zero bias)."""
        with torch.device("meta"):
            model = SentenceClassifier(self.config, num_labels)
        model.bert = self.encoder
        model.head = ZOLinear(self.config.hidden_size, num_labels)
        g = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            model.head.weight.normal_(0.0, 0.02, generator=g)
            model.head.bias.zero_()
        assign_layer_ids(model)
        return model.eval()


def fp32_nbytes(encoder: BertEncoder) -> int:
    return sum(p.numel() * 4 for p in encoder.parameters())


__all__ = ["BackboneError", "Int8Backbone", "MAGIC", "VERSION", "calibrate", "export_backbone", "fp32_nbytes",
           "read_backbone", "write_backbone", "Packed"]
