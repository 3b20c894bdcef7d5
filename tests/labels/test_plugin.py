"""The optional uncertain-label refiner with a tiny random transformers model written to tmp_path.

Marked slow: importing torch + transformers dominates (about 10 s of CPU); the labeler itself never imports them.
"""

from __future__ import annotations

import csv

import pytest

pytestmark = pytest.mark.slow

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "pneumonia", "possible", "effusion", "pleural", "left",
         "small", "no", "the", "tube", "?", "enteric", "cannot", "be", "excluded", "."]


def tiny_model(directory, id2label, bias):
    """A 1-layer BERT classifier whose output is decided by the classifier bias (weights zeroed)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    BertTokenizer(str(directory / "vocab.txt")).save_pretrained(directory)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, num_labels=len(id2label),
                        id2label=dict(enumerate(id2label)), label2id={v: k for k, v in enumerate(id2label)})
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    model.save_pretrained(directory, safe_serialization=True)
    return directory


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("plugin")
    labels = ["negative", "positive", "uncertain"]
    return {
        "negative": tiny_model(root / "neg", labels, [8.0, 0.0, 0.0]),  # always "negative", p ~ 0.999
        "flat": tiny_model(root / "flat", labels, [0.0, 0.0, 0.0]),  # p = 1/3 each: never confident
        "badlabels": tiny_model(root / "bad", ["LABEL_0", "LABEL_1"], [0.0, 0.0]),
    }


def test_refiner_settles_only_uncertain_values(models, labeler):
    from radadapt.labels.plugin import TransformersRefiner

    text = "Possible pneumonia. Small left pleural effusion. Possible enteric tube."
    results = [labeler.label(text, keep_evidence=True), labeler.label("No effusion.", keep_evidence=True)]
    col = labeler.columns.index
    assert results[0].values[col("Pneumonia")] == "-1" and results[0].values[col("enteric tube")] == "uncertain"
    assert results[0].values[col("Support Devices")] == "-1" and results[0].values[col("No Finding")] == ""
    refiner = TransformersRefiner(models["negative"], labeler.schema, threshold=0.9)
    refiner.apply(results)
    v = results[0].values
    assert v[col("Pneumonia")] == "0" and v[col("enteric tube")] == "absent"  # the model said negative
    assert v[col("Pleural Effusion")] == "1"  # certain values are never touched
    assert v[col("Support Devices")] == "0" and v[col("No Finding")] == ""  # re-derived (effusion still 1)
    assert results[1].values[col("Pleural Effusion")] == "0"
    assert (refiner.asked, refiner.changed) == (2, 2) and len(refiner.fingerprint) == 16


def test_unconfident_model_changes_nothing_and_cli_plugin(models, labeler, cli, tmp_path):
    from radadapt.labels.plugin import TransformersRefiner

    result = labeler.label("Possible pneumonia.", keep_evidence=True)
    before = list(result.values)
    TransformersRefiner(models["flat"], labeler.schema, threshold=0.5).apply([result])
    assert result.values == before
    src = tmp_path / "r.csv"
    src.write_text("id,report_text\n1,Possible pneumonia.\n2,Pneumonia.\n", encoding="utf-8")
    out = tmp_path / "o.csv"
    res = cli("labels", "extract", src, "--out", out, "--id-column", "id", "--workers", "2",
              "--plugin-model", models["negative"], "--json")
    assert res.exit_code == 0, res.output
    with open(out, newline="") as fh:
        assert [r["Pneumonia"] for r in csv.DictReader(fh)] == ["0", "1"]


def test_plugin_errors(models, labeler, tmp_path, cli):
    from radadapt.errors import ModelError, UsageError
    from radadapt.labels.plugin import TransformersRefiner

    with pytest.raises(UsageError) as info:
        TransformersRefiner(tmp_path / "nope", labeler.schema)
    assert info.value.code == "labels.plugin_missing"
    with pytest.raises(ModelError) as info:
        TransformersRefiner(models["badlabels"], labeler.schema)
    assert info.value.code == "labels.plugin_labels"
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelError) as info:
        TransformersRefiner(pickled, labeler.schema)
    assert info.value.code == "labels.plugin_format"
