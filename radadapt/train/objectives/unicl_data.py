"""Image-text pairs for UniCL from the store: each training image with its report or a label prompt.

What a sample's text is (docs/training_mi2.md "Pairs"), drawn per sample from its stream seed:

- **report** (source ``reports``): the study's scrubbed report (the first non-empty one among its images, as
  ``radadapt labels`` reads it). Class: equal token sequences share one class (``report_classes = "text"``: two
  images of one study, or two identical normal reports, are positives), or Microsoft's caption rule
  (``"unique"``: label 0, each pair its own class).
- **label prompt** (sources ``findings``, ``devices``): built from ``labels.csv``: a positive finding (``1``) or a
  present device, rendered with a template such as ``"x-ray chest {view} {label}"`` ({view}: posteroanterior,
  anteroposterior, lateral or nothing). ``label_mode = "one"`` draws one of the study's facts (UniCL's single-label
  path: the class is that fact at that view); ``"set"`` lists them all (the class is the exact set).
  Class ids are a 62-bit hash of (view, facts), so equal labels share an id whatever the template.
- When a study has both, the prompt is used with probability ``label_fraction``; with neither, the pair gets
  label -1 and is left out of the loss.

Scale: nothing here holds report text. ``attach`` streams ``manifest.jsonl`` and ``labels.csv`` once, in
lockstep (labels.csv has one row per manifest study in manifest order), into compact arrays: the training image
keys sorted (for lookup from the key the store stream passes), per image its study number and view, per study the
byte offset of the manifest line holding its report and its facts as a bit field: about 30 bytes per image, shared
copy-on-write by forked loader workers. A worker reads a report by seeking to its line (one JSON line per sample).
Tokenisation (the model's own CLIP tokenizer, loaded from its files in each worker) happens in the collate.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from radadapt.errors import ConfigError, DataError
from radadapt.train.augment_mi2 import MI2Augment, MI2AugmentSpec

if TYPE_CHECKING:
    from radadapt.config import UniclSection
    from radadapt.manifest import Store, StoreIndex

VIEWS = ("unknown", "PA", "AP", "LATERAL")
VIEW_WORDS = {"unknown": "", "PA": "posteroanterior", "AP": "anteroposterior", "LATERAL": "lateral"}
MAX_REPORT_CHARS = 4096  # 76 BPE tokens never span this many characters of real text; bounds tokenising cost
NO_TEXT, REPORT, PROMPT = 0, 1, 2
_HASH_MOD = 2**62 - 1


def class_id(namespace: bytes, payload: bytes) -> int:
    """A positive 62-bit class id (collisions ~ n^2 / 2^63: none in practice)."""
    h = int.from_bytes(hashlib.blake2b(namespace + b"\0" + payload, digest_size=8).digest(), "little")
    return h % _HASH_MOD + 1


@dataclass
class PairTables:
    """Lookup arrays for the training images (see the module docstring)."""

    keys: np.ndarray  # S*, sorted image keys
    study: np.ndarray  # int32 per image (sorted-key order)
    view: np.ndarray  # uint8 per image: index into VIEWS
    report_at: np.ndarray  # int64 per study: byte offset of a manifest line with its report, -1 = none
    facts: np.ndarray  # uint8 [studies, ceil(F/8)]: packed bits, fact order = fact_names
    fact_names: list[str]
    fact_kinds: list[str]  # "finding" | "device"
    stats: dict[str, Any] = field(default_factory=dict)


def _selected(wanted: list[str] | str, available: list[str], what: str) -> list[str]:
    if wanted == "all":
        return list(available)
    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise ConfigError("train.unicl_unknown_label", f"[train.unicl] {what} names column(s) labels.json does not "
                          f"list: {', '.join(unknown)}", hint=f"choose from labels.json's {what}, or use \"all\"")
    return list(wanted)


def build_pair_tables(store: "Store", index: "StoreIndex", cfg: "UniclSection") -> PairTables:
    """One pass over manifest.jsonl (and labels.csv in lockstep) for the images of ``index``."""
    use_reports = "reports" in cfg.sources
    want_labels = any(s in cfg.sources for s in ("findings", "devices"))
    fact_names: list[str] = []
    fact_kinds: list[str] = []
    findings: list[str] = []
    devices: list[str] = []
    labels_rows = None
    if want_labels and store.has_labels():
        info = store.labels_info()
        if "findings" in cfg.sources:
            findings = _selected(cfg.findings, list(info.findings), "findings")
        if "devices" in cfg.sources:
            devices = _selected(cfg.devices, list(info.devices), "devices")
        fact_names, fact_kinds = findings + devices, ["finding"] * len(findings) + ["device"] * len(devices)
        labels_rows = _label_rows(store.labels_csv, fact_names)
    positive = {"finding": {"1"} | ({"-1"} if cfg.use_uncertain else set()),
                "device": {"present"} | ({"uncertain"} if cfg.use_uncertain else set())}
    accepted = [positive[kind] for kind in fact_kinds]
    n_bytes = max(1, (len(fact_names) + 7) // 8)

    wanted = index.image_keys
    n = len(wanted)
    study_of = np.empty(n, dtype=np.int32)
    view_of = np.empty(n, dtype=np.uint8)
    report_at: array = array("q")
    facts = bytearray()
    view_code = {v: i for i, v in enumerate(VIEWS)}
    j = 0
    current, in_training, label_values = None, False, None
    offset = 0
    with open(store.manifest_path, "rb") as fh:
        for line in fh:
            at = offset
            offset += len(line)
            if not line.strip():
                continue
            row = json.loads(line)
            if row["study_key"] != current:
                current, in_training = row["study_key"], False
                label_values = _next_label_row(labels_rows, current)
            if j >= n or row["image_key"] != wanted[j]:
                continue
            if not in_training:  # first training image of this study: a new study entry
                in_training = True
                report_at.append(-1)
                facts += _fact_bits(label_values, accepted, n_bytes)
            s = len(report_at) - 1
            if use_reports and report_at[s] < 0 and (row.get("report_text") or "").strip():
                report_at[s] = at
            study_of[j] = s
            view_of[j] = view_code.get(row.get("view") or "unknown", 0)
            j += 1
    if j != n:
        raise DataError("train.store_changed", "the store's manifest no longer lists every training image",
                        hint="a run must see the store it was planned on; start a new run")
    keys = np.asarray(wanted, dtype="S")
    order = np.argsort(keys, kind="stable")
    tables = PairTables(
        keys=keys[order], study=study_of[order], view=view_of[order],
        report_at=np.frombuffer(report_at, dtype=np.int64).copy() if report_at else np.zeros(0, np.int64),
        facts=np.frombuffer(bytes(facts), dtype=np.uint8).reshape(-1, n_bytes).copy(),
        fact_names=fact_names, fact_kinds=fact_kinds,
    )
    if len(tables.keys) > 1 and (tables.keys[1:] == tables.keys[:-1]).any():
        raise DataError("train.duplicate_images", "the training index lists an image key twice",
                        hint="the store is inconsistent: re-run `radadapt ingest` into a new store")
    tables.stats = _stats(tables, labelled=labels_rows is not None)
    return tables


def _label_rows(path: Path, names: list[str]):  # noqa: ANN202 - a generator of (study_key, [values])
    """labels.csv rows as (study_key, values of ``names``), streamed with the plain csv reader."""
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        missing = [c for c in ["study_key", *names] if c not in header]
        if missing:
            raise DataError("train.unicl_labels_stale", f"labels.csv lacks column(s) labels.json lists: "
                            f"{', '.join(missing)}", hint="re-run `radadapt labels STORE`")
        key_at, cols = header.index("study_key"), [header.index(c) for c in names]
        for row in reader:
            if row:
                yield row[key_at], [row[c] if c < len(row) else "" for c in cols]


def _next_label_row(rows, study_key: str) -> list[str] | None:  # noqa: ANN001
    """The labels.csv row of the next manifest study (labels.csv has one per study, in manifest order)."""
    if rows is None:
        return None
    row = next(rows, None)
    if row is None or row[0] != study_key:
        raise DataError("train.unicl_labels_stale", "labels.csv does not match the store's studies (the store "
                        "changed after labelling, or labels.csv was edited)",
                        hint="re-run `radadapt labels STORE`")
    return row[1]


def _fact_bits(values: list[str] | None, accepted: list[set[str]], n_bytes: int) -> bytes:
    if not values:
        return bytes(n_bytes)
    bits = np.array([v in ok for v, ok in zip(values, accepted)], dtype=bool)
    return np.packbits(bits).tobytes().ljust(n_bytes, b"\0")[:n_bytes]


def _stats(t: PairTables, labelled: bool) -> dict[str, Any]:
    has_report = t.report_at[t.study] >= 0 if len(t.study) else np.zeros(0, bool)
    bits = np.unpackbits(t.facts, axis=1)[:, : len(t.fact_names)] if len(t.fact_names) else np.zeros((len(t.facts), 0))
    per_image = bits[t.study] if len(t.study) else bits[:0]
    has_facts = per_image.any(1) if per_image.shape[1] else np.zeros(len(t.study), bool)
    return {
        "images": int(len(t.study)), "studies": int(len(t.report_at)), "labelled": labelled,
        "with_report": int(has_report.sum()), "with_labels": int(has_facts.sum()),
        "with_both": int((has_report & has_facts).sum()), "with_neither": int((~has_report & ~has_facts).sum()),
        "facts": {name: int(c) for name, c in zip(t.fact_names, per_image.sum(0).tolist())},
    }


class UniCLTransform:
    """Loader-side: (image, rng, image_key) -> augmented pixels, erasing box, text and its class."""

    def __init__(self, tables: PairTables, manifest_path: str | Path, augment: MI2AugmentSpec, cfg: "UniclSection"):
        self.t = tables
        self.manifest_path = str(manifest_path)
        self.augment = MI2Augment(augment)
        self.use_reports = "reports" in cfg.sources
        self.label_fraction = float(cfg.label_fraction)
        self.templates = list(cfg.prompt_templates)
        self.mode = cfg.label_mode
        self._fh = None  # the manifest, opened once per worker process

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fh": None}

    def __call__(self, image: np.ndarray, rng: np.random.Generator, key: str) -> dict[str, Any]:
        out: dict[str, Any] = self.augment(image, rng)
        i = int(np.searchsorted(self.t.keys, key.encode("ascii")))
        if i >= len(self.t.keys) or self.t.keys[i] != key.encode("ascii"):
            raise DataError("train.store_changed", "an image of the training stream is missing from the pair index")
        study, view = int(self.t.study[i]), VIEWS[int(self.t.view[i])]
        facts = np.flatnonzero(np.unpackbits(self.t.facts[study])[: len(self.t.fact_names)])
        has_report = self.use_reports and self.t.report_at[study] >= 0
        if len(facts) and (not has_report or rng.uniform() < self.label_fraction):
            out["text"], out["cls"] = self.prompt(facts, view, rng)
            out["kind"] = PROMPT
        elif has_report:
            out["text"], out["cls"], out["kind"] = self.report(int(self.t.report_at[study])), 0, REPORT
        else:
            out["text"], out["cls"], out["kind"] = "", -1, NO_TEXT
        return out

    def prompt(self, facts: np.ndarray, view: str, rng: np.random.Generator) -> tuple[str, int]:
        names = [self.t.fact_names[f] for f in facts]
        if self.mode == "one":
            names = [names[int(rng.integers(len(names)))]]
        template = self.templates[int(rng.integers(len(self.templates)))] if len(self.templates) > 1 else self.templates[0]
        word = VIEW_WORDS[view] if "{view}" in template else ""
        text = " ".join(template.format(view=word, label=", ".join(names)).split())
        return text, class_id(b"label", "\0".join([word, *names]).encode("utf-8"))

    def report(self, at: int) -> str:
        if self._fh is None:
            self._fh = open(self.manifest_path, "rb")  # noqa: SIM115 - kept open for the worker's life
        self._fh.seek(at)
        try:
            text = json.loads(self._fh.readline()).get("report_text")
        except ValueError:
            text = None
        if not text:
            raise DataError("train.store_changed", "manifest.jsonl changed since the run planned its pairs",
                            hint="a run must see the store it was planned on; start a new run")
        return text[:MAX_REPORT_CHARS]


class UniCLCollate:
    """Loader-side: samples -> {"pixels" uint8 [B,1,S,S], "erase" int32 [B,4], "input_ids", "attention_mask"
    int64 [B,77], "labels" int64 [B] (UniCL targets: >0 class, 0 caption, -1 ignored), "kinds", "positions"}."""

    def __init__(self, tokenizer_dir: str | Path, context_length: int, report_classes: str):
        self.tokenizer_dir = str(tokenizer_dir)
        self.context_length = context_length
        self.report_classes = report_classes
        self._tok = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tok": None}

    def tokenizer(self):  # noqa: ANN201
        if self._tok is None:
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one loader worker = one thread
            from radadapt.models import mi2

            self._tok = mi2.load_tokenizer(self.tokenizer_dir)
        return self._tok

    def __call__(self, samples: list[dict]) -> dict[str, torch.Tensor]:
        from radadapt.models import mi2

        enc = mi2.tokenize(self.tokenizer(), [s["text"] for s in samples], self.context_length)
        ids, mask = enc["input_ids"].to(torch.int64), enc["attention_mask"].to(torch.int64)
        labels = []
        for k, s in enumerate(samples):
            if s["kind"] == REPORT and self.report_classes == "text":
                used = ids[k, : int(mask[k].sum())].numpy().astype("<i8").tobytes()
                labels.append(class_id(b"report", used))
            else:
                labels.append(int(s["cls"]))
        return {
            "pixels": torch.stack([s["image"] for s in samples]),
            "erase": torch.stack([s["erase"] for s in samples]),
            "input_ids": ids, "attention_mask": mask,
            "labels": torch.tensor(labels, dtype=torch.int64),
            "kinds": torch.tensor([s["kind"] for s in samples], dtype=torch.int8),
            "positions": torch.tensor([s["position"] for s in samples], dtype=torch.int64),
        }
