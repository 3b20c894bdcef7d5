"""Reading what a report is made of: ``results.json`` and the files it points to (docs/architecture.md §6).

``results.json`` must be valid (it is the report); everything it points to is optional. A missing or damaged
store accounting, training log, overlay or labels file becomes a ``notes`` entry that the report prints where
the section would be, so a report is always complete and honest about what it could not show. Scaling files
named on the command line are required: a user who asked for them gets an error, not a silent omission.

Only aggregates are read: store.json's accounting and labels.json's counts, never manifest.jsonl or labels.csv.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from radadapt.bench.schema import RESULTS_FORMAT, SCALING_FORMAT, BenchmarkResults, ScalingResults
from radadapt.errors import DataError, UsageError

RESULTS_FILE = "results.json"
# Training curves are decimated while streaming so a 10^6-step log costs the same memory as a 4,000-step one.
MAX_CURVE_POINTS = 4000
_TRACKED_SUFFIXES = ("loss", "_kl", "_entropy")


@dataclass
class TrainingLog:
    """A run's metrics.jsonl reduced to numeric curves (step -> value), decimated to ``MAX_CURVE_POINTS``."""

    model: str
    steps: list[int] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=dict)  # name -> values aligned with ``steps``
    rows: int = 0  # rows read (before decimation)
    bad_rows: int = 0  # rows that were not JSON objects with a step
    last: dict[str, float] = field(default_factory=dict)  # the last row's tracked values
    elapsed_s: float | None = None
    images_seen: int | None = None


@dataclass
class ReportInputs:
    results: BenchmarkResults
    results_path: Path
    store_info: dict | None = None  # store.json (for its accounting)
    labels_info: dict | None = None  # labels.json (report counts)
    ood_store_info: dict | None = None
    logs: dict[str, TrainingLog] = field(default_factory=dict)  # model name -> log
    overlays: dict[str, dict[str, list[Path]]] = field(default_factory=dict)  # model -> head -> PNG files found
    scaling: list[tuple[Path, ScalingResults]] = field(default_factory=list)
    include_overlays: bool = False  # overlays are patient images: embedded only when the user asks (--overlays)
    notes: dict[str, list[str]] = field(default_factory=dict)  # section -> what was missing and why

    @property
    def results_dir(self) -> Path:
        return self.results_path.parent

    def note(self, section: str, text: str) -> None:
        self.notes.setdefault(section, []).append(text)


def results_file(path: Path) -> Path:
    """RESULTS may be the results folder or the results.json inside it."""
    f = path / RESULTS_FILE if path.is_dir() else path
    if not f.is_file():
        raise UsageError("report.no_results", f"no benchmark results at {path}",
                         hint="pass the --out folder of `radadapt benchmark` (or its results.json)")
    return f


def load_results(path: Path) -> BenchmarkResults:
    """Parse and validate a results.json; any defect is one ``report.bad_results`` line (no parser text)."""
    from pydantic import ValidationError

    raw = _read_json(path, "report.bad_results", "benchmark results")
    if not isinstance(raw, dict) or raw.get("format") != RESULTS_FORMAT:
        raise DataError("report.bad_results", f"{path} is not a radadapt benchmark results file",
                        hint="pass the results.json written by `radadapt benchmark`")
    try:
        return BenchmarkResults.model_validate(raw)
    except ValidationError as exc:
        raise DataError("report.bad_results", f"{path} does not match the results format ({_where(exc)})",
                        hint="it may be damaged or from another radadapt version; rerun `radadapt benchmark`") from None


def load_scaling(path: Path) -> ScalingResults:
    from pydantic import ValidationError

    if path.is_dir():
        raise UsageError("report.bad_scaling", f"--scaling {path} is a folder; name the JSON file",
                         hint="the file written by `radadapt benchmark scaling ... --out SCALING.json`")
    if not path.is_file():
        raise UsageError("report.no_scaling", f"--scaling file not found: {path}")
    raw = _read_json(path, "report.bad_scaling", "scaling fit")
    if not isinstance(raw, dict) or raw.get("format") != SCALING_FORMAT:
        raise DataError("report.bad_scaling", f"{path} is not a radadapt scaling file",
                        hint="pass the --out file of `radadapt benchmark scaling`")
    try:
        return ScalingResults.model_validate(raw)
    except ValidationError as exc:
        raise DataError("report.bad_scaling", f"{path} does not match the scaling format ({_where(exc)})",
                        hint="rerun `radadapt benchmark scaling ... --out SCALING.json`") from None


def _read_json(path: Path, code: str, what: str) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(code, f"{path} is not a {what} file (not UTF-8 text)") from None
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        at = f" at line {line}" if line else ""
        raise DataError(code, f"{path} is not valid JSON{at} (truncated or damaged?)",
                        hint="rerun the command that wrote it") from None


def _where(exc) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "top level"
    return f"{loc}: {first['type'].replace('_', ' ')}"


def load_inputs(results: Path, scaling: list[Path] | None = None, *, overlays: bool = False) -> ReportInputs:
    """Everything a report shows, with a note for each optional part that is absent or unreadable.

    ``overlays``: embed the segmentation overlay PNGs. They show test patients' (de-identified) radiographs, so a
    report holds them only on request; without it the report says how many there are and how to include them.
    """
    path = results_file(results)
    inp = ReportInputs(results=load_results(path), results_path=path, include_overlays=overlays)
    res = inp.results
    inp.store_info = _optional_json(inp, "data", Path(res.store.store_json), "the store's accounting (store.json)")
    if res.store.labels_json:
        inp.labels_info = _optional_json(inp, "data", Path(res.store.labels_json), "the store's labels.json")
    if res.ood is not None:
        inp.ood_store_info = _optional_json(inp, "ood", Path(res.ood.store.store_json),
                                            "the out-of-domain store's store.json")
    for m in res.models:
        if m.run is None:
            continue
        if not m.run.metrics_jsonl:
            inp.note("training", f"{m.name}: the run recorded no training log")
            continue
        log = read_training_log(Path(m.run.metrics_jsonl), m.name)
        if log is None:
            inp.note("training", f"{m.name}: training log not found at {m.run.metrics_jsonl}")
        elif not log.steps:
            inp.note("training", f"{m.name}: training log {m.run.metrics_jsonl} has no usable rows")
        else:
            if log.bad_rows:
                inp.note("training", f"{m.name}: {log.bad_rows} unreadable row(s) in the training log were skipped")
            inp.logs[m.name] = log
    _find_overlays(inp)
    for p in scaling or []:
        inp.scaling.append((p, load_scaling(p)))
    return inp


def _optional_json(inp: ReportInputs, section: str, path: Path, what: str) -> dict | None:
    if not path.is_file():
        inp.note(section, f"{what} was not found at {path}")
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        inp.note(section, f"{what} at {path} could not be read (damaged JSON)")
        return None
    if not isinstance(raw, dict):
        inp.note(section, f"{what} at {path} is not a JSON object")
        return None
    return raw


def _find_overlays(inp: ReportInputs) -> None:
    seg = inp.results.segmentation
    if seg is None or seg.status != "evaluated":
        return
    folder = inp.results_dir / "overlays"
    missing = 0
    for model, by_head in seg.overlays.items():
        for head, names in by_head.items():
            found = []
            for name in names:
                f = folder / name
                # names come from the results file: accept plain file names only, never a path out of the folder
                if Path(name).name == name and f.is_file():
                    found.append(f)
                else:
                    missing += 1
            inp.overlays.setdefault(model, {})[head] = found
    if missing:
        inp.note("segmentation", f"{missing} overlay image(s) listed in results.json are missing from {folder}")


def read_training_log(path: Path, model: str, max_points: int = MAX_CURVE_POINTS) -> TrainingLog | None:
    """Stream metrics.jsonl (docs/architecture.md §5): ``loss``, the objective's ``*_loss`` parts, KL and entropy.

    Non-finite numbers are written as strings by the trainer ("nan", "inf"); they become NaN here and show as gaps.
    """
    if not path.is_file():
        return None
    log = TrainingLog(model=model)
    stride = 1
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                log.bad_rows += 1
                continue
            if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                log.bad_rows += 1
                continue
            log.rows += 1
            values = {k: _number(v) for k, v in row.items() if _tracked(k)}
            log.last = values
            log.elapsed_s = _number(row.get("elapsed_s")) if "elapsed_s" in row else log.elapsed_s
            if isinstance(row.get("images_seen"), int):
                log.images_seen = row["images_seen"]
            if (log.rows - 1) % stride:
                continue
            _append(log, row["step"], values)
            if len(log.steps) > max_points:  # keep every other point; later rows are sampled twice as sparsely
                log.steps = log.steps[::2]
                log.series = {k: v[::2] for k, v in log.series.items()}
                stride *= 2
    return log


def _tracked(key: str) -> bool:
    return key == "loss" or key.endswith(_TRACKED_SUFFIXES)


def _number(v: object) -> float:
    if isinstance(v, bool):
        return math.nan
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)  # "nan", "inf", "-inf" as the trainer writes them
        except ValueError:
            return math.nan
    return math.nan


def _append(log: TrainingLog, step: int, values: dict[str, float]) -> None:
    n = len(log.steps)
    log.steps.append(step)
    for k, v in values.items():
        if k not in log.series:
            log.series[k] = [math.nan] * n  # a part that starts later (e.g. after warm-up) is NaN before
        log.series[k].append(v)
    for k, seq in log.series.items():
        if len(seq) < n + 1:
            seq.append(math.nan)
