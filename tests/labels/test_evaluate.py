"""`labels eval`: metrics checked against counts worked out by hand."""

from __future__ import annotations

import json

import pytest

GOLD = """case,Pleural Effusion,ETT,endotracheal tube position
1,1.0,1,ok
2,0.0,,
3,-1.0,0,
4,,present,malpositioned
5,1,present,malpositioned
"""
PRED = """case,Pleural Effusion,endotracheal tube,endotracheal tube position,Edema
1,1,present,ok,
2,1,,,1
3,-1,absent,,
4,,present,ok,
9,1,present,,
"""


@pytest.fixture()
def files(tmp_path):
    gold, pred = tmp_path / "gold.csv", tmp_path / "pred.csv"
    gold.write_text(GOLD, encoding="utf-8")
    pred.write_text(PRED, encoding="utf-8")
    return pred, gold


def test_metrics_by_hand(files):
    from radadapt.labels.evaluate import evaluate

    pred, gold = files
    r = evaluate(pred, gold, mapping={"ETT": "endotracheal tube"})
    assert (r["rows"], r["missing_in_pred"], r["extra_in_pred"], r["id_column"]) == (5, 1, 1, "case")
    eff = r["labels"]["Pleural Effusion"]
    assert eff["kind"] == "finding"
    assert {k: eff["presence"][k] for k in ("tp", "fp", "fn", "tn", "support")} == {
        "tp": 1, "fp": 1, "fn": 1, "tn": 2, "support": 2}
    assert eff["presence"]["precision"] == eff["presence"]["recall"] == eff["presence"]["f1"] == 0.5
    assert eff["values"]["accuracy"] == pytest.approx(3 / 5)
    assert eff["values"]["confusion"]["1"] == {"1": 1, "0": 0, "-1": 0, "blank": 1}
    assert eff["values"]["confusion"]["0"]["1"] == 1
    ett = r["labels"]["ETT"]
    assert ett["kind"] == "device" and ett["values"]["confusion"]["absent"]["absent"] == 1  # gold "0" -> absent
    assert (ett["presence"]["precision"], ett["presence"]["recall"]) == (1.0, pytest.approx(2 / 3))
    assert ett["presence"]["f1"] == pytest.approx(0.8)
    pos = r["labels"]["endotracheal tube position"]
    assert pos["kind"] == "position" and pos["presence"]["support"] == 2 and pos["presence"]["f1"] == 0.0
    avg = r["averages"]["all"]
    assert avg["macro"]["f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert (avg["micro"]["tp"], avg["micro"]["fp"], avg["micro"]["fn"]) == (3, 1, 4)
    assert avg["micro"]["precision"] == 0.75 and avg["micro"]["f1"] == pytest.approx(6 / 11)
    assert r["averages"]["devices"]["labels"] == 1 and r["unmatched_gold_columns"] == []


def test_eval_cli_json_table_and_confusion(cli, files):
    pred, gold = files
    res = cli("labels", "eval", pred, gold, "--map", "ETT=endotracheal tube", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["labels"]["ETT"]["presence"]["tp"] == 2
    res = cli("labels", "eval", pred, gold, "--map", "ETT=endotracheal tube", "--confusion", "Pleural Effusion")
    assert res.exit_code == 0 and "Pleural Effusion: gold (rows) x predicted (columns)" in res.stdout
    assert "macro" in res.stdout and "micro" in res.stdout and "1 gold rows missing" in res.stdout
    # Without the mapping the ETT column is reported as not evaluated.
    res = cli("labels", "eval", pred, gold, "--json")
    assert json.loads(res.stdout)["unmatched_gold_columns"] == ["ETT"]


def test_eval_errors(cli, files, tmp_path):
    pred, gold = files
    bad = tmp_path / "bad.csv"
    bad.write_text("case,Pleural Effusion\n1,maybe\n", encoding="utf-8")
    res = cli("labels", "eval", pred, bad)
    assert res.stderr.startswith("error[labels.eval_bad_value]") and "maybe" not in res.stderr
    other = tmp_path / "other.csv"
    other.write_text("case,Something\n1,1\n", encoding="utf-8")
    assert cli("labels", "eval", pred, other).stderr.startswith("error[labels.eval_no_columns]")
    assert cli("labels", "eval", pred, gold, "--map", "nonsense").stderr.startswith("error[labels.bad_option]")
    assert cli("labels", "eval", pred, gold, "--id-column", "nope").stderr.startswith("error[labels.missing_column]")
    header_only = tmp_path / "empty_gold.csv"
    header_only.write_text("case,Pleural Effusion\n", encoding="utf-8")
    assert cli("labels", "eval", pred, header_only).stderr.startswith("error[labels.eval_empty]")
