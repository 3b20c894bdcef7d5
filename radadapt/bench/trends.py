"""``radadapt benchmark scaling``: from benchmarks of nested-subset runs to scaling fits per task.

Each results.json contributes one point per candidate run: N (the images the run pretrained on, from its run.json)
and the task metric with its bootstrap replicates. Tasks are the study's: findings classification (macro AUROC),
lines-and-tubes classification (devices macro AUROC) and tube segmentation (Dice), optionally every label. The
fits themselves are in ``scaling.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from radadapt import __version__, atomic
from radadapt.bench.scaling import Fit, bootstrap_b, fit_power_law, fit_quality, leave_largest_out, n_for_error
from radadapt.errors import DataError, UsageError

@dataclass
class _Series:
    task: str
    metric: str
    points: list  # ScalingPoint
    reps: list[np.ndarray | None]
    baseline: float | None


def _normal_reps(point: float, low: float | None, high: float | None, b: int, rng: np.random.Generator) -> np.ndarray:
    """Replicates approximated from a CI when the raw replicates were not kept (per-label tasks)."""
    if low is None or high is None:
        return np.full(b, point)
    return rng.normal(point, max(high - low, 1e-9) / 3.92, size=b)


def collect_series(results: list, paths: list[str], probe: str | None, per_label: bool) -> list[_Series]:
    """One series per task: macro AUROC per label group, segmentation Dice per head, optionally every label."""
    from radadapt.bench.schema import ScalingPoint
    from radadapt.errors import DataError

    series: dict[str, _Series] = {}

    def add(task: str, metric: str, point: ScalingPoint, reps: list[float] | None, base: float | None) -> None:
        s = series.setdefault(task, _Series(task, metric, [], [], base))
        s.points.append(point)
        s.reps.append(None if not reps else np.asarray(reps, dtype=np.float64))
        if s.baseline is None:
            s.baseline = base

    for res, path in zip(results, paths):
        pr = probe or res.headline_probe
        base = next(m for m in res.models if m.role == "baseline")
        for m in res.models:
            if m.role != "candidate":
                continue
            if m.run is None or not m.run.subset_n:
                raise DataError(
                    "scaling.no_n",
                    f"candidate '{m.name}' in {path} has no recorded training-set size (not a training run)",
                    hint="scaling needs benchmarks of `radadapt train` runs, whose run.json records the subset size",
                )
            for macro in res.classification.macro:
                est = macro.results.get(m.name, {}).get(pr, {}).get("auroc")
                if est is None or est.point is None:
                    continue
                diff = macro.differences.get(m.name, {}).get(pr, {}).get("auroc")
                b_est = macro.results.get(base.name, {}).get(pr, {}).get("auroc")
                add(f"{macro.group} macro AUROC ({pr})", "auroc",
                    ScalingPoint(n=m.run.subset_n, model=m.name, results=path, metric=est.point, low=est.low,
                                 high=est.high, verdict_vs_baseline=diff.verdict if diff else None),
                    macro.replicates.get(m.name, {}).get(pr), b_est.point if b_est else None)
            seg = res.segmentation
            if seg is not None and seg.status == "evaluated":
                for head, by_dev in seg.results.get(m.name, {}).items():
                    est = by_dev.get("all", {}).get("dice")
                    if est is None or est.point is None:
                        continue
                    diff = seg.differences.get(m.name, {}).get(head, {}).get("all", {}).get("dice")
                    b_est = seg.results.get(base.name, {}).get(head, {}).get("all", {}).get("dice")
                    add(f"segmentation Dice ({head})", "dice",
                        ScalingPoint(n=m.run.subset_n, model=m.name, results=path, metric=est.point, low=est.low,
                                     high=est.high, verdict_vs_baseline=diff.verdict if diff else None),
                        seg.replicates.get(m.name, {}).get(head), b_est.point if b_est else None)
            if per_label:
                for lab in res.classification.labels:
                    est = lab.results.get(m.name, {}).get(pr)
                    if lab.status != "evaluated" or est is None or est.auroc.point is None:
                        continue
                    diff = lab.differences.get(m.name, {}).get(pr, {}).get("auroc")
                    b_est = lab.results.get(base.name, {}).get(pr)
                    add(f"{lab.label} AUROC ({pr})", "auroc",
                        ScalingPoint(n=m.run.subset_n, model=m.name, results=path, metric=est.auroc.point,
                                     low=est.auroc.low, high=est.auroc.high,
                                     verdict_vs_baseline=diff.verdict if diff else None),
                        None, b_est.auroc.point if b_est else None)
    return list(series.values())


def analyse_series(s: _Series, *, targets: list[float], at: list[float], n_boot: int, max_extrapolation: float,
                   allow_extrapolation: bool, seed: int = 0):
    """Fits, CIs on b, leave-largest-out error and predictions for one task."""
    from radadapt.bench.schema import PowerLawFit, ScalingTask

    pts = sorted(zip(s.points, s.reps), key=lambda t: t[0].n)
    n = np.array([p.n for p, _ in pts], dtype=np.float64)
    e = 1.0 - np.array([p.metric for p, _ in pts], dtype=np.float64)
    rng = np.random.default_rng(seed)
    raw = [r for _, r in pts]
    paired = all(r is not None for r in raw) and len({len(r) for r in raw}) == 1
    if paired:
        reps = 1.0 - np.stack(raw)[:, :n_boot]
    else:
        reps = 1.0 - np.stack([_normal_reps(p.metric, p.low, p.high, n_boot, rng) for p, _ in pts])
    n_max = float(n.max())
    fits, preds = [], []
    for floor, form in ((True, "a*N^-b + c"), (False, "a*N^-b")):
        k = 3 if floor else 2
        fit = fit_power_law(n, e, floor=floor)
        if fit is None:
            fits.append(PowerLawFit(form=form, status="too_few_points", dof=max(0, len(np.unique(n)) - k),
                                    message=f"needs at least {k} distinct N with a positive error"))
            continue
        rmse, r2 = fit_quality(fit, n, e)
        lo, hi, nb = bootstrap_b(n, reps, floor, fit) if n_boot else (None, None, 0)
        dof = int(len(n) - k)
        fits.append(PowerLawFit(
            form=form, status="fitted", a=fit.a, b=fit.b, c=fit.c if floor else None, b_low=lo, b_high=hi,
            n_boot=nb, rmse_log=rmse, r2_log=r2, dof=dof, loo_largest_rel_error=leave_largest_out(n, e, floor),
            message=None if dof > 0 else "exact fit (no degrees of freedom left): its quality cannot be judged",
        ))
        for t in targets:
            preds.append(_predict_target(fit, form, t, n, e, n_max, max_extrapolation, allow_extrapolation))
        for size in at:
            preds.append(_predict_at(fit, form, size, n_max, max_extrapolation, allow_extrapolation))
    crossover = next((int(p.n) for p, _ in pts if p.verdict_vs_baseline == "better"), None)
    return ScalingTask(task=s.task, metric=s.metric, points=[p for p, _ in pts], baseline=s.baseline, fits=fits,
                       predictions=preds, crossover_n=crossover)


def _predict_target(fit: Fit, form: str, target: float, n: np.ndarray, e: np.ndarray, n_max: float,
                    limit: float, allow: bool):
    """The N at which ``fit`` reaches metric ``target``, or a plain statement of why no number is given."""
    from radadapt.bench.schema import Prediction

    err = 1.0 - target
    if np.any(e <= err):
        first = float(n[np.argmax(e <= err)])
        return Prediction(form=form, target=target, n=first, status="reached",
                          message=f"already reached at N={first:,.0f}")
    need = n_for_error(fit, err)
    if need is None:
        if fit.b <= 0:
            why = f"the fitted error does not fall as N grows (b = {fit.b:.3g})"
        else:
            why = f"it is above the fitted ceiling {1.0 - fit.c:.4f} (the irreducible error c = {fit.c:.4f})"
        return Prediction(form=form, target=target, status="unreachable",
                          message=f"the fitted curve never reaches {target:g}: {why}")
    if not np.isfinite(need):
        return Prediction(form=form, target=target, status="unreachable",
                          message=f"the fitted curve is nearly flat (b = {fit.b:.3g}): reaching {target:g} would need "
                                  "more images than can be counted")
    ratio = need / n_max
    if ratio > limit and not allow:
        return Prediction(form=form, target=target, status="withheld_beyond_limit",
                          message=f"would need more than {limit:g}x the largest N ({n_max:,.0f}); "
                                  "pass --allow-extrapolation to see the number")
    if need <= n_max:
        return Prediction(form=form, target=target, n=need, status="within_range")
    msg = f"{ratio:.3g}x the largest N fitted" + (" (beyond the extrapolation limit: unreliable)" if ratio > limit
                                                    else "")
    return Prediction(form=form, target=target, n=need, status="extrapolated", message=msg)


def _predict_at(fit: Fit, form: str, size: float, n_max: float, limit: float, allow: bool):
    """The metric ``fit`` predicts at ``size`` images, withheld beyond the extrapolation limit."""
    from radadapt.bench.schema import Prediction

    ratio = size / n_max
    if ratio > limit and not allow:
        return Prediction(form=form, target=size, status="withheld_beyond_limit",
                          message=f"N is more than {limit:g}x the largest N fitted ({n_max:,.0f})")
    status = "within_range" if size <= n_max else "extrapolated"
    err = float(fit.predict(size))
    if not 0.0 <= err <= 1.0:  # e.g. a pure power law with b < 0, or an N far below the fitted range
        return Prediction(form=form, target=size, n=size, status=status,
                          message=f"the fitted error at this N is {err:.3g}, outside [0, 1]: no metric is given")
    msg = None if ratio <= 1 else f"{ratio:.3g}x the largest N fitted" + (
        " (beyond the extrapolation limit: unreliable)" if ratio > limit else "")
    return Prediction(form=form, target=size, n=size, metric=1.0 - err, status=status, message=msg)


@dataclass
class ScalingRequest:
    inputs: list[Path]
    targets: list[float] = field(default_factory=list)
    at: list[float] = field(default_factory=list)
    probe: str | None = None
    per_label: bool = False
    n_boot: int = 500
    max_extrapolation: float = 10.0
    allow_extrapolation: bool = False
    out: Path | None = None
    seed: int = 0


def load_results(path: Path):
    """A results.json (or the folder holding one) as ``BenchmarkResults``."""
    from pydantic import ValidationError

    from radadapt.bench.schema import BenchmarkResults

    f = path / "results.json" if path.is_dir() else path
    if not f.is_file():
        raise DataError("scaling.no_results", f"no results.json at {path}",
                        hint="pass the --out folders of `radadapt benchmark` runs")
    try:
        return BenchmarkResults.model_validate_json(f.read_text(encoding="utf-8"))
    except (ValidationError, ValueError):
        raise DataError("scaling.bad_results", f"{f} is not a radadapt benchmark results file (or is damaged)") from None


def run_scaling(req: ScalingRequest):
    from radadapt.bench.schema import ScalingResults

    for t in req.targets:
        if not 0.0 < t < 1.0:
            raise UsageError("scaling.bad_target", f"--target {t:g} is not a metric value in (0, 1)")
    if any(not (np.isfinite(a) and a > 0) for a in req.at):
        raise UsageError("scaling.bad_at", "--at must be a positive number of images")
    loaded = [load_results(p) for p in req.inputs]
    paths = [str(p) for p in req.inputs]
    series = collect_series(loaded, paths, req.probe, req.per_label)
    warnings = []
    if not series:
        raise DataError("scaling.no_points", "none of the results has a candidate with a metric to fit",
                        hint="check that the benchmarks evaluated at least one label")
    tasks = []
    for s in series:
        if len({p.n for p in s.points}) < 2:
            warnings.append(f"{s.task}: only one subset size; nothing to fit")
        tasks.append(analyse_series(s, targets=req.targets, at=req.at, n_boot=req.n_boot,
                                    max_extrapolation=req.max_extrapolation,
                                    allow_extrapolation=req.allow_extrapolation, seed=req.seed))
    res = ScalingResults(radadapt_version=__version__, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                         inputs=paths, max_extrapolation=req.max_extrapolation, tasks=tasks, warnings=warnings)
    if req.out is not None:
        atomic.write_json(req.out, res.model_dump(mode="json"))
    return res
