"""The labels schema: the packaged file validates, matches the output contract, and mistakes are named clearly."""

from __future__ import annotations

import pytest
import yaml

from radadapt.errors import ConfigError
from radadapt.labels.phrases import expand_phrase
from radadapt.labels.schema import compile_schema, default_schema_path, load_schema

CHEXPERT = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion", "Lung Opacity", "Edema",
            "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
            "Fracture", "Support Devices"]
EXTRA = ["Nodule", "Mass", "Emphysema", "Interstitial Disease", "Hernia", "Pneumoperitoneum",
         "Subcutaneous Emphysema", "Rib Fracture"]
DEVICES = ["endotracheal tube", "tracheostomy tube", "enteric tube", "central venous catheter", "PICC", "port",
           "pulmonary artery catheter", "chest tube", "cardiac device", "sternotomy wires", "unspecified device"]


def test_packaged_schema_validates_and_matches_the_column_contract():
    s = load_schema()
    assert s.findings == CHEXPERT + EXTRA  # docs/architecture.md §3, CheXpert names first
    assert s.devices == DEVICES
    assert s.columns == CHEXPERT + EXTRA + DEVICES + [f"{d} position" for d in DEVICES]
    assert s.no_finding == 0 and s.support_devices == CHEXPERT.index("Support Devices")
    assert s.ancestors[s.findings.index("Rib Fracture")] == (s.findings.index("Fracture"),)
    assert len(s.sha256) == 64 and s.n_phrases > 5000


def test_expand_phrase_groups_and_optional_words():
    assert expand_phrase("(right |left |)chest tube") == ["right chest tube", "left chest tube", "chest tube"]
    assert expand_phrase("ng / og") == ["ng / og"]
    for bad, reason in [("pneumo(thorax", "unbalanced '('"), ("a)b", "unbalanced ')'"), ("a|b", "outside a group"),
                        ("((a|b)|c)", "nested")]:
        with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            expand_phrase(bad)


def _raw():
    """A small valid schema (the packaged one is checked above; edits below break this one entry by entry)."""
    return {
        "version": 1,
        "sections": {"score": ["findings"], "skip": ["history"]},
        "findings": [
            {"name": "No Finding", "derived": "no_finding"},
            {"name": "Fracture", "phrases": ["fracture"]},
            {"name": "Cardiomegaly", "phrases": ["cardiomegaly"], "anatomy": ["heart"], "abnormal": ["enlarged"],
             "normal": ["normal"]},
            {"name": "Rib Fracture", "phrases": ["rib fracture"], "parents": ["Fracture"]},
            {"name": "Support Devices", "derived": "support_devices"},
        ],
        "devices": [{"name": "endotracheal tube", "phrases": ["(ett|endotracheal tube)"],
                     "positions": {"ok": [{"phrases": ["above the carina"], "ok_cm": [2, 7]}]}}],
        "triggers": [{"kind": "negation", "direction": "forward", "phrases": ["no"]}],
    }


def test_small_schema_compiles():
    s = compile_schema(_raw(), source="site.yaml")
    assert s.columns == ["No Finding", "Fracture", "Cardiomegaly", "Rib Fracture", "Support Devices",
                         "endotracheal tube", "endotracheal tube position"]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r["findings"][2].__setitem__("synonyms", ["x"]), "findings[2]: unknown key 'synonyms'"),
        (lambda r: r["findings"][2].__setitem__("phrases", []), "findings[2] 'Cardiomegaly'.phrases: empty list"),
        (lambda r: r["findings"][3].__setitem__("name", "Cardiomegaly"), "findings[3]: duplicated name 'Cardiomegaly'"),
        (lambda r: r["findings"][1]["phrases"].append("bone (fracture"), "findings[1] 'Fracture'.phrases[1]"),
        (lambda r: r["devices"].append({"name": "Fracture", "phrases": ["x"]}), "duplicated name 'Fracture'"),
        (lambda r: r["findings"][3].__setitem__("parents", ["Fractures"]), "'Fractures' is not another"),
        (lambda r: r["findings"][2].pop("normal") and r["findings"][2].pop("abnormal"), "needs 'abnormal' or 'normal'"),
        (lambda r: r["triggers"][0].__setitem__("kind", "negated"), "triggers[0].kind: unknown kind 'negated'"),
        (lambda r: r["triggers"][0].__setitem__("direction", "left"), "triggers[0].direction"),
        (lambda r: r.__setitem__("version", 2), "version: unsupported version 2"),
        (lambda r: r.__setitem__("finding", []), "top level: unknown key 'finding'"),
        (lambda r: r["devices"][0]["positions"].__setitem__("fine", ["x"]), "unknown key 'fine'"),
        (lambda r: r["devices"][0]["positions"]["ok"][0].__setitem__("ok_cm", [7, 2]), "ok_cm: expected [low, high]"),
        (lambda r: r["sections"]["skip"].append("findings"), "'findings' is listed as both score and skip"),
        (lambda r: r["findings"][0].__setitem__("phrases", ["x"]), "a derived finding takes no 'phrases'"),
        (lambda r: r.__setitem__("device_groups", [{"phrases": ["tubes"], "devices": ["ETT"]}]),
         "device_groups[0].devices[0]: 'ETT' is not a device above"),
        (lambda r: r["findings"][1].__setitem__("describes_devices", "yes"), "describes_devices: expected true or false"),
    ],
)
def test_broken_schema_names_the_entry(edit, message):
    raw = _raw()
    edit(raw)
    with pytest.raises(ConfigError) as info:
        compile_schema(raw, source="site.yaml")
    assert info.value.code == "labels.schema_invalid"
    assert message in str(info.value), str(info.value)
    assert str(info.value).startswith("labels schema site.yaml: ") and "\n" not in str(info.value)


def test_yaml_syntax_error_gives_line_number(tmp_path):
    bad = tmp_path / "schema.yaml"
    bad.write_text("version: 1\nfindings:\n  - name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_schema(bad)
    assert info.value.code == "labels.schema_syntax" and "line " in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_schema(tmp_path / "missing.yaml")
    assert info.value.code == "labels.schema_missing"


def test_site_copy_changes_the_labels(tmp_path, cli):
    """A site adds its own abbreviation to a copy of the packaged schema, without touching code, via --schema."""
    text = default_schema_path().read_text(encoding="utf-8")
    anchor = "      - (nasogastric|orogastric|ngt|ogt|ng|og|dobhoff|dht|ryle|corpak|salem sump)\n"
    assert anchor in text
    site = tmp_path / "site_schema.yaml"
    site.write_text(text.replace(anchor, anchor + "      - nutri tube\n"), encoding="utf-8")
    reports = tmp_path / "r.csv"
    reports.write_text("id,report_text\n1,Nutri tube tip in the stomach.\n", encoding="utf-8")
    for schema, expected in ((None, ("", "")), (site, ("present", "ok"))):
        out = tmp_path / "out.csv"
        args = ["labels", "extract", reports, "--out", out, "--id-column", "id", "--workers", "1"]
        res = cli(*args, *(["--schema", schema] if schema else []))
        assert res.exit_code == 0, res.output
        header, row = out.read_text().splitlines()
        got = dict(zip(header.split(","), row.split(",")))
        assert (got["enteric tube"], got["enteric tube position"]) == expected


def test_schema_command_copies_and_reports_errors(tmp_path, cli):
    copy = tmp_path / "mine.yaml"
    assert cli("labels", "schema", "--copy-to", copy).exit_code == 0
    assert copy.read_bytes() == default_schema_path().read_bytes()
    copy.write_text(copy.read_text().replace("  - name: Edema\n", "  - name: Edema\n    synonym: [x]\n"))
    res = cli("labels", "schema", copy)
    assert res.exit_code == 2
    assert res.stderr.startswith("error[labels.schema_invalid]:") and "unknown key 'synonym'" in res.stderr
