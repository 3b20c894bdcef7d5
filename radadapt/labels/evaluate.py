"""`labels eval`: how well predicted labels agree with a gold file, per label and on average.

Rows are joined on an id column. Each gold column is compared with the predicted column of the same name (or the
one named by ``--map GOLD=PRED``). Values are normalised first, so gold files in the CheXpert convention (1 / 0 /
-1 / blank, also 1.0 / 0.0 / -1.0) are accepted for findings and, for devices, read as present / absent /
uncertain. Two views per label:

* presence: positive vs everything else. Positive is "1" for findings, "present" for devices and "malpositioned"
  for position columns (the clinically important state). Precision, recall, F1 and support (gold positives).
* full value set: a confusion table gold x predicted over every value including blank, accuracy, and per-value
  precision/recall/F1 with their macro average over the values that occur in gold.

Averages: macro (mean over labels with at least one gold positive) and micro (pooled counts), for all labels and
per group (findings, devices, positions). Gold rows missing from the predictions count as blank predictions.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from radadapt.errors import DataError, UsageError
from radadapt.labels.table import CsvTable

FINDING_VALUES = ("1", "0", "-1", "")
DEVICE_VALUES = ("present", "removed", "uncertain", "absent", "")
POSITION_VALUES = ("ok", "malpositioned", "unknown", "")
POSITIVE = {"finding": "1", "device": "present", "position": "malpositioned"}

_BLANK = {"", "nan", "none", "na", "n/a", "null", "blank", "not mentioned", "unmentioned"}
_FINDING_WORDS = {"1": "1", "1.0": "1", "0": "0", "0.0": "0", "-0.0": "0", "-1": "-1", "-1.0": "-1",
                  "positive": "1", "pos": "1", "yes": "1", "true": "1", "present": "1",
                  "negative": "0", "neg": "0", "no": "0", "false": "0", "absent": "0",
                  "uncertain": "-1", "unc": "-1", "possible": "-1"}
_DEVICE_WORDS = {"present": "present", "removed": "removed", "uncertain": "uncertain", "absent": "absent",
                 "1": "present", "1.0": "present", "0": "absent", "0.0": "absent", "-1": "uncertain",
                 "-1.0": "uncertain", "yes": "present", "true": "present", "no": "absent", "false": "absent"}
_POSITION_WORDS = {"ok": "ok", "malpositioned": "malpositioned", "unknown": "unknown", "malposition": "malpositioned",
                   "malpositioned ": "malpositioned", "normal": "ok", "correct": "ok", "satisfactory": "ok"}


def _kind(name: str, values: set[str]) -> str:
    if name.lower().endswith(" position") or (values and values <= set(POSITION_VALUES) | {"malposition"}):
        return "position"
    if values & {"present", "removed", "absent"}:
        return "device"
    return "finding"


def _normalise(value: str, kind: str, column: str, row: int, source: str) -> str:
    v = value.strip().lower()
    if v in _BLANK:
        return ""
    table = {"finding": _FINDING_WORDS, "device": _DEVICE_WORDS, "position": _POSITION_WORDS}[kind]
    out = table.get(v)
    if out is None:
        raise DataError("labels.eval_bad_value", f"{source}: unexpected value in column '{column}' (data row {row})",
                        hint=f"{kind} columns take {' / '.join(repr(x) for x in {'finding': FINDING_VALUES, 'device': DEVICE_VALUES, 'position': POSITION_VALUES}[kind])}")
    return out


def _prf(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    """Precision (0 when positives were missed and none predicted), recall, F1; None where undefined."""
    p = tp / (tp + fp) if tp + fp else (0.0 if fn else None)
    r = tp / (tp + fn) if tp + fn else None
    f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return p, r, f


def _load(path: str | Path, id_column: str | None, what: str) -> tuple[CsvTable, int]:
    table = CsvTable(path)
    name = id_column or table.header[0]
    return table, table.column(name, f"id column ({what})")


def evaluate(pred: str | Path, gold: str | Path, *, mapping: dict[str, str] | None = None,
             id_column: str | None = None) -> dict:
    """Compare PRED with GOLD; returns a JSON-able dict (see module docstring)."""
    mapping = dict(mapping or {})
    g_table, g_id = _load(gold, id_column, "gold")
    id_name = id_column or g_table.header[g_id]
    p_table, p_id = _load(pred, id_name, "predictions")
    for g_col, p_col in mapping.items():
        g_table.column(g_col, "gold column given in --map")
        p_table.column(p_col, "predicted column given in --map")
    pairs: list[tuple[int, int, str]] = []
    unmatched: list[str] = []
    p_lower = {h.lower(): i for i, h in enumerate(p_table.header)}
    for gi, g_col in enumerate(g_table.header):
        if gi == g_id:
            continue
        target = mapping.get(g_col, g_col)
        pi = p_lower.get(target.lower())
        if pi is None or pi == p_id:
            unmatched.append(g_col)
        else:
            pairs.append((gi, pi, g_col))
    if not pairs:
        raise DataError("labels.eval_no_columns", "no gold column matches a predicted column",
                        hint="name pairs with --map GOLDCOL=PREDCOL")

    gold_rows: dict[str, list[str]] = {}
    duplicates = 0
    for row in g_table.rows():
        key = row[g_id].strip()
        if key in gold_rows:
            duplicates += 1
            continue
        gold_rows[key] = [row[gi] for gi, _, _ in pairs]
    pred_rows: dict[str, list[str]] = {}
    extra = 0
    for row in p_table.rows():
        key = row[p_id].strip()
        if key in gold_rows and key not in pred_rows:
            pred_rows[key] = [row[pi] for _, pi, _ in pairs]
        elif key not in gold_rows:
            extra += 1
    if not gold_rows:
        raise DataError("labels.eval_empty", f"{gold}: no data rows to evaluate")

    kinds = []
    for j, (_, _, name) in enumerate(pairs):
        seen = {v.strip().lower() for r in gold_rows.values() for v in [r[j]]}
        seen |= {v.strip().lower() for r in pred_rows.values() for v in [r[j]]}
        kinds.append(_kind(name, seen - _BLANK))
    confusion = [Counter() for _ in pairs]
    for n, (key, g_vals) in enumerate(gold_rows.items(), start=1):
        p_vals = pred_rows.get(key)
        for j, (_, _, name) in enumerate(pairs):
            g = _normalise(g_vals[j], kinds[j], name, n, str(gold))
            p = _normalise(p_vals[j], kinds[j], name, n, str(pred)) if p_vals is not None else ""
            confusion[j][(g, p)] += 1

    labels = {}
    pooled: dict[str, Counter] = {g: Counter() for g in ("all", "finding", "device", "position")}
    for j, (_, _, name) in enumerate(pairs):
        labels[name] = _label_metrics(confusion[j], kinds[j])
        c = labels[name]["presence"]
        for group in ("all", kinds[j]):
            pooled[group].update({"tp": c["tp"], "fp": c["fp"], "fn": c["fn"]})
    averages = {}
    for group, counts in pooled.items():
        members = [v for v in labels.values() if group in ("all", v["kind"])]
        if not members:
            continue
        scored = [v["presence"] for v in members if v["presence"]["support"] > 0]
        p, r, f = _prf(counts["tp"], counts["fp"], counts["fn"])
        averages[{"all": "all", "finding": "findings", "device": "devices", "position": "positions"}[group]] = {
            "labels": len(members), "labels_with_support": len(scored),
            "macro": {k: _mean([s[k] for s in scored]) for k in ("precision", "recall", "f1")},
            "micro": {"precision": p, "recall": r, "f1": f, **dict(counts)},
            "macro_value_f1": _mean([v["values"]["macro_f1"] for v in members]),
            "accuracy": _mean([v["values"]["accuracy"] for v in members]),
        }
    return {
        "pred": str(pred), "gold": str(gold), "id_column": id_name, "rows": len(gold_rows),
        "missing_in_pred": len(gold_rows) - len(pred_rows), "extra_in_pred": extra, "duplicate_gold_ids": duplicates,
        "unmatched_gold_columns": unmatched, "labels": labels, "averages": averages,
    }


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _label_metrics(conf: Counter, kind: str) -> dict:
    pos = POSITIVE[kind]
    tp = sum(c for (g, p), c in conf.items() if g == pos and p == pos)
    fp = sum(c for (g, p), c in conf.items() if g != pos and p == pos)
    fn = sum(c for (g, p), c in conf.items() if g == pos and p != pos)
    total = sum(conf.values())
    p, r, f = _prf(tp, fp, fn)
    order = {"finding": FINDING_VALUES, "device": DEVICE_VALUES, "position": POSITION_VALUES}[kind]
    per_value = {}
    for v in order:
        vtp = conf.get((v, v), 0)
        vfp = sum(c for (g, pv), c in conf.items() if pv == v and g != v)
        vfn = sum(c for (g, pv), c in conf.items() if g == v and pv != v)
        vp, vr, vf = _prf(vtp, vfp, vfn)
        per_value[v or "blank"] = {"precision": vp, "recall": vr, "f1": vf, "support": vtp + vfn}
    in_gold = [per_value[v or "blank"]["f1"] for v in order if per_value[v or "blank"]["support"] > 0]
    return {
        "kind": kind,
        "presence": {"precision": p, "recall": r, "f1": f, "support": tp + fn, "tp": tp, "fp": fp, "fn": fn,
                     "tn": total - tp - fp - fn},
        "values": {"accuracy": sum(conf.get((v, v), 0) for v in order) / total if total else None,
                   "macro_f1": _mean(in_gold), "per_value": per_value,
                   "confusion": {g or "blank": {p or "blank": conf.get((g, p), 0) for p in order} for g in order}},
    }


def parse_mapping(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise UsageError("labels.bad_option", f"--map expects GOLDCOL=PREDCOL, got '{item}'")
        g, p = item.split("=", 1)
        if not g.strip() or not p.strip():
            raise UsageError("labels.bad_option", f"--map expects GOLDCOL=PREDCOL, got '{item}'")
        out[g.strip()] = p.strip()
    return out
