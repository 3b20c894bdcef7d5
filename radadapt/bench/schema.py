"""``RESULTS/results.json``: what ``radadapt benchmark`` writes and ``radadapt report`` reads (docs/benchmark.md).

Every number is an ``Estimate``: a point value with its 95% patient-cluster bootstrap interval and the counts it
rests on. Every comparison is a ``Difference`` (candidate - baseline, paired replicates) with a verdict. Labels
that cannot be evaluated stay in the file with a status and a reason; nothing is silently dropped. Names used
as keys: models by ``ModelInfo.name`` (``baseline``, ``candidate``, ``candidate-2``...), probes by
``ProbeInfo.name`` (``linear:cls``, ``linear:cls+patch_mean``, ``knn:cls``, ``attentive:patch``), metrics
``auroc``, ``auprc``, ``sensitivity``, ``specificity`` (classification), ``dice``, ``iou``, ``dice_tolerant``
(segmentation), ``recall@1/5/10`` (retrieval).

The file holds no patient data: labels are schema column names, counts are aggregates, models and stores are
named by the paths the user gave.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RESULTS_FORMAT = "radadapt-benchmark"
RESULTS_VERSION = 1
SCALING_FORMAT = "radadapt-scaling"

Verdict = Literal["better", "no evidence of difference", "worse", "not evaluable"]
LabelStatus = Literal["evaluated", "too_few_positives", "too_few_negatives", "no_positives"]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Estimate(_M):
    """A metric: point value, 95% percentile bootstrap CI (None when undefined), and its support."""

    point: float | None
    low: float | None = None
    high: float | None = None
    n: int  # images (or queries) the point value is computed on
    n_patients: int | None = None
    n_pos: int | None = None
    n_neg: int | None = None
    n_boot: int = 0  # bootstrap replicates that were defined (a replicate without a positive is dropped)


class Difference(_M):
    """candidate - baseline on the same images and the same bootstrap replicates."""

    point: float | None
    low: float | None = None
    high: float | None = None
    verdict: Verdict


class StoreRef(_M):
    path: str
    store_id: str
    n_images: int
    splits: dict[str, int]  # images per split in the store
    store_json: str  # the store's accounting, for the report
    labels_json: str | None = None
    label_columns: list[str] = Field(default_factory=list)


class TrainingCheck(_M):
    """Was the model pretrained on any test patient? (docs/architecture.md §5)"""

    status: Literal["disjoint", "unverified", "open_weights"]
    n_train_patients: int | None = None
    message: str | None = None


class RunInfo(_M):
    path: str
    metrics_jsonl: str | None  # the run's training log, for the report's curves
    subset_n: int | None  # images the run was trained on (the scaling axis)
    store_id: str | None = None
    status: str | None = None


class ModelInfo(_M):
    name: str  # key used everywhere below
    role: Literal["baseline", "candidate"]
    path: str  # as given on the command line
    model_dir: str  # the weights actually loaded (a run's final/)
    kind: Literal["run", "export", "weights"]
    family: str
    fingerprint: str
    embed_dim: int
    input_size: int
    run: RunInfo | None = None
    training_check: TrainingCheck


class SplitCount(_M):
    images: int
    patients: int
    labelled: int  # images whose study has a labels row


class ProbeInfo(_M):
    name: str
    kind: Literal["linear", "knn", "attentive"]
    features: str
    settings: dict


class ProbeResult(_M):
    """One model, one probe, one label."""

    auroc: Estimate
    auprc: Estimate
    sensitivity: Estimate
    specificity: Estimate
    threshold: float | None  # chosen on validation (Youden's J), score >= threshold is positive
    c: float | None = None  # linear probe: C chosen on validation
    val_auroc: float | None = None


class LabelCounts(_M):
    pos: int
    neg: int
    excluded: int  # uncertain (under the "exclude" policy) or no labels row


class LabelResult(_M):
    label: str
    group: Literal["findings", "devices"]
    status: LabelStatus
    message: str | None = None
    prevalence: float | None = None  # test positives / (positives + negatives)
    counts: dict[str, LabelCounts]  # per split: probe_train, val, test
    results: dict[str, dict[str, ProbeResult]] = Field(default_factory=dict)  # model -> probe -> metrics
    differences: dict[str, dict[str, dict[str, Difference]]] = Field(default_factory=dict)  # cand -> probe -> metric


class MacroResult(_M):
    """Mean over the evaluated labels of a group, bootstrapped jointly (each replicate averages its labels)."""

    group: Literal["findings", "devices"]
    labels: list[str]
    excluded_labels: list[str]  # in the group but not evaluated (see each label's status)
    results: dict[str, dict[str, dict[str, Estimate]]] = Field(default_factory=dict)  # model -> probe -> metric
    differences: dict[str, dict[str, dict[str, Difference]]] = Field(default_factory=dict)
    replicates: dict[str, dict[str, list[float]]] = Field(default_factory=dict)  # model -> probe -> AUROC reps


class Classification(_M):
    labels: list[LabelResult]
    macro: list[MacroResult]


class SegmentationResult(_M):
    status: Literal["evaluated", "skipped"]
    message: str | None = None
    devices: list[str] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)  # images with masks per split
    heads: list[str] = Field(default_factory=list)  # linear, pyramid
    mask_resolution: int | None = None
    tolerance_px: int | None = None
    # model -> head -> device (or "all") -> metric -> Estimate
    results: dict[str, dict[str, dict[str, dict[str, Estimate]]]] = Field(default_factory=dict)
    differences: dict[str, dict[str, dict[str, dict[str, Difference]]]] = Field(default_factory=dict)
    overlays: dict[str, dict[str, list[str]]] = Field(default_factory=dict)  # model -> head -> PNG names
    replicates: dict[str, dict[str, list[float]]] = Field(default_factory=dict)  # model -> head -> Dice reps


class ZeroShotResult(_M):
    """MI2 models: zero-shot classification from label prompts and image -> report retrieval."""

    model: str
    prompt_set: str
    labels: dict[str, Estimate] = Field(default_factory=dict)  # label -> AUROC
    skipped_labels: dict[str, str] = Field(default_factory=dict)  # label -> reason
    macro_auroc: dict[str, Estimate] = Field(default_factory=dict)  # group -> macro AUROC
    retrieval: dict[str, Estimate] = Field(default_factory=dict)  # recall@k
    retrieval_gallery: int = 0
    retrieval_message: str | None = None
    differences: dict[str, Difference] = Field(default_factory=dict)  # vs the baseline when it is MI2 too


class OODResult(_M):
    store: StoreRef
    n_images: int
    classification: Classification
    warnings: list[str] = Field(default_factory=list)


class CacheInfo(_M):
    dir: str
    models: dict[str, dict[str, int]]  # model -> {"reused": n, "computed": n}


class BenchmarkResults(_M):
    format: Literal["radadapt-benchmark"] = RESULTS_FORMAT
    version: int = RESULTS_VERSION
    radadapt_version: str
    created: str  # UTC, ISO 8601
    store: StoreRef
    settings: dict
    models: list[ModelInfo]
    splits: dict[str, SplitCount]  # probe_train, val, test
    probes: list[ProbeInfo]
    headline_probe: str  # the probe whose AUROC verdicts the summary uses
    classification: Classification
    segmentation: SegmentationResult | None = None
    zeroshot: list[ZeroShotResult] = Field(default_factory=list)
    ood: OODResult | None = None
    cache: CacheInfo
    warnings: list[str] = Field(default_factory=list)


# -- `radadapt benchmark scaling` ------------------------------------------------------------------------------
class PowerLawFit(_M):
    form: Literal["a*N^-b + c", "a*N^-b"]
    status: Literal["fitted", "too_few_points", "failed"]
    a: float | None = None
    b: float | None = None
    c: float | None = None
    b_low: float | None = None
    b_high: float | None = None
    n_boot: int = 0
    rmse_log: float | None = None  # root-mean-square residual of log(error)
    r2_log: float | None = None
    dof: int = 0  # points minus parameters; 0 means an exact fit that says nothing about quality
    loo_largest_rel_error: float | None = None  # fit without the largest N, relative error predicting it
    message: str | None = None


class Prediction(_M):
    form: str  # which fit made it
    target: float  # metric value (e.g. AUROC 0.90) or N asked for
    n: float | None = None
    metric: float | None = None
    status: Literal["within_range", "extrapolated", "withheld_beyond_limit", "unreachable", "reached", "no_fit"]
    message: str | None = None


class ScalingPoint(_M):
    n: int
    model: str
    results: str
    metric: float | None
    low: float | None
    high: float | None
    verdict_vs_baseline: Verdict | None = None


class ScalingTask(_M):
    task: str  # e.g. "findings macro AUROC (linear:cls)"
    metric: str
    points: list[ScalingPoint]
    baseline: float | None = None  # the open-weights model's value, for reference
    fits: list[PowerLawFit]
    predictions: list[Prediction] = Field(default_factory=list)
    crossover_n: int | None = None  # smallest N whose difference vs baseline is "better"


class ScalingResults(_M):
    format: Literal["radadapt-scaling"] = SCALING_FORMAT
    version: int = 1
    radadapt_version: str
    created: str
    inputs: list[str]
    max_extrapolation: float
    tasks: list[ScalingTask]
    warnings: list[str] = Field(default_factory=list)
