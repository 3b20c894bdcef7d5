"""The hand-written gold set (tests/labels/data/*.yaml) as CheXpert-convention CSV files for `labels eval`.

Short keys in the YAML map to the schema's column names. Derived columns follow their definitions unless a case
gives them: No Finding = 1 when the text is non-empty and no finding is 1 / -1 and the case is not marked
``other: true``; Support Devices = 1 if a device is present, else -1 if one is uncertain, else 0 if one is removed
or absent. Run ``python tests/labels/labels_gold.py`` to print the accuracy tables used in docs/labels.md.
"""

from __future__ import annotations

import csv
from pathlib import Path

DATA = Path(__file__).parent / "data"

FINDINGS = {
    "nf": "No Finding", "ecm": "Enlarged Cardiomediastinum", "cm": "Cardiomegaly", "lesion": "Lung Lesion",
    "opac": "Lung Opacity", "edema": "Edema", "consol": "Consolidation", "pna": "Pneumonia", "atel": "Atelectasis",
    "ptx": "Pneumothorax", "eff": "Pleural Effusion", "plo": "Pleural Other", "fx": "Fracture",
    "sd": "Support Devices", "nod": "Nodule", "mass": "Mass", "emph": "Emphysema", "ild": "Interstitial Disease",
    "hernia": "Hernia", "pperit": "Pneumoperitoneum", "sce": "Subcutaneous Emphysema", "ribfx": "Rib Fracture",
}
DEVICES = {
    "ett": "endotracheal tube", "trach": "tracheostomy tube", "ent": "enteric tube", "cvc": "central venous catheter",
    "picc": "PICC", "port": "port", "pac": "pulmonary artery catheter", "ct": "chest tube", "card": "cardiac device",
    "stern": "sternotomy wires", "dev": "unspecified device",
}
GROUPS = {"lines_tubes": ("ett", "trach", "ent", "cvc", "picc", "port", "pac", "ct", "dev"), "all_devices": tuple(DEVICES)}
COLUMNS = [*FINDINGS.values(), *DEVICES.values(), *(f"{d} position" for d in DEVICES.values())]


def load_cases(name: str) -> list[dict]:
    import yaml

    return yaml.safe_load((DATA / name).read_text(encoding="utf-8"))


def gold_row(case: dict) -> dict[str, str]:
    row = {c: "" for c in COLUMNS}
    labels = case.get("labels") or {}
    for key, value in labels.items():
        if key in GROUPS:  # "No lines or tubes." names every line and tube at once
            for dev in GROUPS[key]:
                row[DEVICES[dev]] = str(value)
        elif key in FINDINGS:
            row[FINDINGS[key]] = str(value)
        elif key in DEVICES:
            row[DEVICES[key]] = str(value)
        elif key.endswith("_pos") and key[:-4] in DEVICES:
            row[f"{DEVICES[key[:-4]]} position"] = str(value)
        else:
            raise KeyError(f"{case['id']}: unknown label key {key!r}")
    if "nf" not in labels:
        abnormal = case.get("other") or any(
            row[name] in ("1", "-1") for k, name in FINDINGS.items() if k not in ("nf", "sd"))
        row["No Finding"] = "" if abnormal or not case["text"].strip() else "1"
    if "sd" not in labels:
        states = {row[d] for d in DEVICES.values()}
        row["Support Devices"] = ("1" if "present" in states else "-1" if "uncertain" in states
                                  else "0" if states & {"removed", "absent"} else "")
    return row


def write_csvs(cases: list[dict], directory: Path) -> tuple[Path, Path]:
    """reports.csv (case_id, report_text) and gold.csv (case_id + columns) for the CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    reports, gold = directory / "reports.csv", directory / "gold.csv"
    with open(reports, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "report_text"])
        for c in cases:
            w.writerow([c["id"], c["text"]])
    with open(gold, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", *COLUMNS])
        for c in cases:
            r = gold_row(c)
            w.writerow([c["id"], *(r[col] for col in COLUMNS)])
    return reports, gold


def markdown(result: dict) -> str:
    """Per-label presence table + averages, for docs/labels.md."""
    def f(x):
        return "–" if x is None else f"{x:.2f}"

    lines = ["| label | support | precision | recall | F1 | value accuracy |", "|---|---|---|---|---|---|"]
    for name, m in result["labels"].items():
        p = m["presence"]
        if p["support"] == 0 and p["fp"] == 0:
            continue
        lines.append(f"| {name} | {p['support']} | {f(p['precision'])} | {f(p['recall'])} | {f(p['f1'])} | "
                     f"{f(m['values']['accuracy'])} |")
    lines += ["", "| average | labels scored | macro P | macro R | macro F1 | micro P | micro R | micro F1 | value macro-F1 |",
              "|---|---|---|---|---|---|---|---|---|"]
    for group, a in result["averages"].items():
        lines.append(f"| {group} | {a['labels_with_support']} | {f(a['macro']['precision'])} | {f(a['macro']['recall'])}"
                     f" | {f(a['macro']['f1'])} | {f(a['micro']['precision'])} | {f(a['micro']['recall'])} | "
                     f"{f(a['micro']['f1'])} | {f(a['macro_value_f1'])} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - doc helper
    import sys
    import tempfile

    from radadapt.labels.evaluate import evaluate
    from radadapt.labels.extract import label_csv

    names = sys.argv[1:] or ["gold_dev.yaml", "gold_holdout.yaml"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            cases = load_cases(name)
            reports, gold = write_csvs(cases, Path(tmp) / name)
            pred = Path(tmp) / name / "pred.csv"
            label_csv(reports, pred, id_column="case_id")
            print(f"## {name} ({len(cases)} cases)\n")
            print(markdown(evaluate(pred, gold)))
            print()
