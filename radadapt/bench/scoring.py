"""One model's pass: features, probes, segmentation heads and zero-shot, down to per-image scores.

Only scores leave this module (features are dropped once a model is done), so memory holds one model's features
at a time however many candidates are compared. Every probe is fitted on the probe-training cohort, tuned on
validation and applied unchanged to test and to the out-of-domain cohort.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from radadapt import console
from radadapt.bench import features as F
from radadapt.bench import segmentation as S
from radadapt.bench.probes import LabelTargets, choose_thresholds, fit_linear_probe, knn_scores
from radadapt.bench.targets import Cohort

if TYPE_CHECKING:
    from radadapt.config import BenchSection
    from radadapt.manifest import Store


@dataclass
class ProbeOutput:
    kind: str
    features: str
    scores: dict[str, np.ndarray]  # cohort -> [n, E]
    thresholds: np.ndarray  # [E]
    c: np.ndarray | None = None
    val_auroc: np.ndarray | None = None  # [E] at the chosen C


@dataclass
class SegOutput:
    pairs: dict[str, np.ndarray]  # dice, iou, dice_tolerant, image, channel (test pairs with a non-empty mask)
    threshold: float
    overlays: list[str] = field(default_factory=list)


@dataclass
class ModelScores:
    name: str
    family: str
    fingerprint: str
    embed_dim: int
    input_size: int
    cache: dict[str, int] = field(default_factory=lambda: {"reused": 0, "computed": 0})
    probes: dict[str, ProbeOutput] = field(default_factory=dict)
    seg: dict[str, SegOutput] = field(default_factory=dict)
    zeroshot: np.ndarray | None = None  # test [n, E]
    retrieval: tuple | None = None  # (query indices, {k: hits}, gallery size)
    warnings: list[str] = field(default_factory=list)


@dataclass
class SegCohorts:
    """Images with masks per split (indices into the cohorts), the devices segmented, the mask files."""

    rows: dict[str, np.ndarray]
    devices: list[str]
    masks: dict[str, list[tuple[str, Path]]]


def _compose(feats: dict[str, np.ndarray], spec: str) -> np.ndarray | None:
    if spec == "cls":
        return feats["cls"]
    if spec == "cls+patch_mean":
        return np.concatenate([feats["cls"], feats["patch_mean"]], axis=1)
    if spec == "layers":
        return feats.get("layers")
    raise ValueError(spec)


def _seg_data(encoder, geo: S.InputGeometry, store: "Store", co: Cohort, rows: np.ndarray, seg: SegCohorts,
              grids: np.ndarray) -> S.SegData:
    index = co.index()
    k = len(seg.devices)
    targets = None
    for n, i in enumerate(rows):
        shape = (int(index.heights[i]), int(index.widths[i]))
        chans = [np.zeros(shape, bool) for _ in range(k)]
        for device, path in seg.masks.get(co.image_keys[i], []):
            if device in seg.devices:
                m = S.read_mask(path)
                if m.shape == shape:
                    chans[seg.devices.index(device)] |= m
        mapped = geo.masks(chans)  # [k, S, S]
        if targets is None:
            targets = np.zeros((len(rows), k, *mapped.shape[-2:]), bool)
        targets[n] = mapped
    return S.SegData(grids=grids, targets=targets, groups=[co.patient_keys[i] for i in rows])


def score_model(
    name: str,
    model_dir: Path,
    store: "Store",
    cohorts: dict[str, Cohort],
    targets: dict[str, LabelTargets],
    label_idx: np.ndarray,
    labels: dict[str, str],
    cfg: "BenchSection",
    *,
    cache_root: Path,
    device: str,
    ood: tuple["Store", Cohort] | None = None,
    seg: SegCohorts | None = None,
    overlay_dir: Path | None = None,
    progress=None,
) -> ModelScores:
    from radadapt.models import registry

    enc = registry.load_encoder(model_dir, device=device)
    out = ModelScores(name=name, family=enc.family, fingerprint=enc.fingerprint, embed_dim=int(enc.embed_dim),
                      input_size=int(enc.input_size))
    pooled = F.FeatureCache(cache_root, enc.fingerprint, "pooled")
    work: list[tuple[str, "Store", Cohort]] = [(c, store, cohorts[c]) for c in ("probe_train", "val", "test")]
    if ood is not None:
        work.append(("ood", ood[0], ood[1]))
    feats: dict[str, dict[str, np.ndarray]] = {}
    for cname, st, co in work:
        tags, stats = F.extract(enc, st, co.index(), pooled, batch_size=cfg.batch_size, progress=progress,
                                description=f"{name}: {cname} features")
        for k in stats:
            out.cache[k] += stats[k]
        feats[cname] = pooled.load(tags, F.POOLED)
    sub = {c: LabelTargets(t.y[:, label_idx], t.mask[:, label_idx]) for c, t in targets.items()}
    score_on = [c for c in ("val", "test", "ood") if c in feats]
    if label_idx.size:
        for spec in cfg.linear_features:
            x = {c: _compose(f, spec) for c, f in feats.items()}
            if any(v is None for v in x.values()):
                out.warnings.append(f"{name}: no '{spec}' features from this family; that probe was skipped")
                continue
            probe = fit_linear_probe(x["probe_train"], sub["probe_train"], x["val"], sub["val"],
                                     cs=_cs(cfg), max_iter=cfg.max_iter, refit_iter=cfg.refit_iter,
                                     patience=cfg.c_patience, device=device)
            j = np.arange(label_idx.size)
            best = np.array([np.nanargmax(np.nan_to_num(probe.val_auroc[:, i], nan=-1)) for i in j])
            out.probes[f"linear:{spec}"] = ProbeOutput(
                kind="linear", features=spec, scores={c: probe.scores(x[c], device) for c in score_on},
                thresholds=probe.thresholds, c=probe.c, val_auroc=probe.val_auroc[best, j])
        knn = {c: knn_scores(feats["probe_train"]["cls"], sub["probe_train"], feats[c]["cls"], k=cfg.knn_k,
                             temperature=cfg.knn_temperature, device=device) for c in score_on}
        out.probes["knn:cls"] = ProbeOutput(kind="knn", features="cls", scores=knn,
                                            thresholds=choose_thresholds(knn["val"], sub["val"]))
        if cfg.attentive_probe:
            from radadapt.bench.attentive import attentive_outputs, trainable_labels

            # One network for all labels: train it on every label the fit splits allow, not just the evaluated
            # ones, so that min_positives (a test-split rule) cannot change what it learns (issue 7).
            fit_idx = np.union1d(trainable_labels(targets["probe_train"], targets["val"]), label_idx)
            fit_sub = {c: LabelTargets(t.y[:, fit_idx], t.mask[:, fit_idx]) for c, t in targets.items()}
            att = attentive_outputs(enc, store, cohorts, fit_sub, cfg, cache_root, device, ood, progress, name)
            keep = np.searchsorted(fit_idx, label_idx)
            att.scores = {c: v[:, keep] for c, v in att.scores.items()}
            att.thresholds = att.thresholds[keep]
            out.probes["attentive:patch"] = att
    del feats
    if seg is not None:
        _segment(enc, out, store, cohorts, seg, cfg, cache_root, device, overlay_dir, progress)
    if enc.has_text:
        _zero_shot(enc, out, store, cohorts["test"], labels, label_idx, cfg, cache_root, progress)
    return out


def _cs(cfg: "BenchSection") -> np.ndarray:
    from radadapt.bench.logistic import c_grid

    return c_grid(cfg.c_values, cfg.c_min, cfg.c_max)


def _segment(enc, out: ModelScores, store, cohorts, seg: SegCohorts, cfg, cache_root, device, overlay_dir,
             progress) -> None:
    grid_cache = F.FeatureCache(cache_root, enc.fingerprint, "grid")
    geo = S.InputGeometry(enc)
    data = {}
    for cname in ("probe_train", "val", "test"):
        co, rows = cohorts[cname], seg.rows[cname]
        index = co.index()
        sub = _subset_index(index, rows)
        tags, stats = F.extract(enc, store, sub, grid_cache, batch_size=cfg.batch_size, progress=progress,
                                description=f"{out.name}: {cname} patch grids")
        grids = grid_cache.load(tags, ["patch_grid"], dtype=np.float16)["patch_grid"]
        data[cname] = _seg_data(enc, geo, store, co, rows, seg, grids)
    test = data["test"]
    size = tuple(test.targets.shape[-2:])
    for head in S.HEADS:
        model, mean, std, thr = S.train_head(head, data["probe_train"], data["val"], epochs=cfg.seg_epochs,
                                             device=device, seed=cfg.seed)
        pred = S.predict(model, mean, std, test.grids, size, device) >= thr
        result = SegOutput(pairs=S.pair_metrics(pred, test.targets, cfg.seg_tolerance_px), threshold=thr)
        if overlay_dir is not None and cfg.overlays:
            shown = [i for i in range(len(pred)) if test.targets[i].any()][: cfg.overlays]
            co = cohorts["test"]
            idx = co.index()
            for n, i in enumerate(shown):
                img = store.image_at(idx, int(seg.rows["test"][i]))
                name = f"seg_{out.name}_{head}_{n + 1}.png"
                S.write_overlay(overlay_dir / name, geo.unit([img])[0], test.targets[i], pred[i])
                result.overlays.append(name)
        out.seg[head] = result


def _subset_index(index, rows: np.ndarray):
    from radadapt.manifest import StoreIndex

    rows = np.asarray(rows, dtype=np.int64)
    return StoreIndex(image_keys=[index.image_keys[i] for i in rows], shard_ids=index.shard_ids[rows],
                      shards=index.shards, offsets=index.offsets[rows], heights=index.heights[rows],
                      widths=index.widths[rows])


def _zero_shot(enc, out: ModelScores, store, test: Cohort, labels: dict[str, str], label_idx: np.ndarray, cfg,
               cache_root, progress) -> None:
    from radadapt.bench import zeroshot as Z

    joint = F.FeatureCache(cache_root, enc.fingerprint, "joint")
    tags, _ = F.extract(enc, store, test.index(), joint, batch_size=cfg.batch_size, progress=progress,
                        description=f"{out.name}: test image embeddings")
    emb = joint.load(tags, ["joint"])["joint"].astype(np.float64)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    names = list(labels)
    chosen = {names[i]: labels[names[i]] for i in label_idx}
    out.zeroshot = Z.zero_shot_scores(enc, emb, chosen) if chosen else np.zeros((len(test), 0))
    if any(r for r in test.reports):
        out.retrieval = Z.retrieval_hits(enc, emb, test.study_keys, test.reports, gallery=cfg.retrieval_gallery)
    else:
        console.info(f"{out.name}: no test image has a report; retrieval skipped")
