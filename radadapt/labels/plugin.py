"""Optional refinement of *uncertain* labels by a local transformers sequence-classification model (off by default).

The rules stand alone; a site that has (or trains) a small classifier can let it settle the cases the rules leave
at -1 / "uncertain". Interface (any object with these methods can be passed as ``refiner``):

    classify(items: list[tuple[str, str]]) -> list[str | None]
        items are (label name, sentence); answers are "positive", "negative", "uncertain", or None when the model
        is not confident (max probability below the threshold).
    apply(results: list[ReportLabels]) -> None
        rewrites uncertain values in place where every sentence behind the value gets the same confident,
        non-uncertain answer, then re-derives No Finding, Support Devices and parent findings.

:class:`TransformersRefiner` implements it for a model *directory* (config.json with ``id2label`` naming
positive / negative / uncertain, ``model.safetensors``, tokenizer files). It never downloads (``local_files_only``),
never unpickles (safetensors only), and runs no remote code. Inputs are sentence pairs (label name, sentence in the
labeler's normalised form: lower case, spelling variants folded). Nothing from the text is logged.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from radadapt.errors import ModelError, UsageError
from radadapt.labels.aggregate import rederive
from radadapt.labels.labeler import ReportLabels
from radadapt.labels.schema import Schema

_CLASS_NAMES = {
    "positive": "positive", "present": "positive", "pos": "positive", "1": "positive",
    "negative": "negative", "absent": "negative", "neg": "negative", "0": "negative",
    "uncertain": "uncertain", "unc": "uncertain", "-1": "uncertain",
}


class UncertainRefiner:
    """Base class: subclasses implement ``classify``; ``apply`` is shared."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self.asked = 0  # uncertain values considered
        self.changed = 0  # values the model settled

    def classify(self, items: list[tuple[str, str]]) -> list[str | None]:  # pragma: no cover - interface
        raise NotImplementedError

    def apply(self, results: list[ReportLabels]) -> None:
        schema = self.schema
        n_f = len(schema.findings)
        names = schema.findings + schema.devices
        jobs: list[tuple[int, int, int]] = []  # result index, column, item index
        items: list[tuple[str, str]] = []
        for r, res in enumerate(results):
            for col, sentences in res.evidence.items():
                if res.values[col] not in ("-1", "uncertain"):
                    continue
                self.asked += 1
                for sent in sentences:
                    jobs.append((r, col, len(items)))
                    items.append((names[col], sent))
        if not items:
            return
        answers = self.classify(items)
        verdicts: dict[tuple[int, int], set] = {}
        for r, col, k in jobs:
            verdicts.setdefault((r, col), set()).add(answers[k])
        for (r, col), got in verdicts.items():
            if len(got) != 1:
                continue
            answer = next(iter(got))
            if answer not in ("positive", "negative"):
                continue
            values = results[r].values
            if col < n_f:
                values[col] = "1" if answer == "positive" else "0"
                if answer == "positive":
                    for a in schema.ancestors.get(col, ()):
                        values[a] = "1"  # positive beats anything a parent had
            else:
                values[col] = "present" if answer == "positive" else "absent"
                if answer == "negative":
                    values[col + len(schema.devices)] = ""  # no position for an absent device
            self.changed += 1
            rederive(schema, values, results[r].other_abnormal, results[r].section_path != "empty")


class TransformersRefiner(UncertainRefiner):
    """A local Hugging Face sequence-classification model directory as the refiner."""

    def __init__(self, model_dir: str | Path, schema: Schema, *, threshold: float = 0.9, batch_size: int = 32,
                 device: str = "cpu", max_length: int = 128):
        super().__init__(schema)
        path = Path(model_dir)
        if not path.is_dir():
            raise UsageError("labels.plugin_missing", f"plugin model directory not found: {path}")
        weights = path / "model.safetensors"
        if not weights.is_file():
            raise ModelError("labels.plugin_format", f"{path} has no model.safetensors",
                             hint="save the model with save_pretrained(..., safe_serialization=True); "
                                  "pickle checkpoints are refused")
        if not 0.0 < threshold <= 1.0:
            raise UsageError("labels.bad_option", "the plugin threshold must be in (0, 1]")
        try:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                path, local_files_only=True, use_safetensors=True, trust_remote_code=False
            ).to(device).eval()
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelError("labels.plugin_load", f"cannot load the plugin model in {path} ({type(exc).__name__})",
                             hint="it must be a transformers sequence-classification directory") from None
        id2label = {int(k): str(v).strip().lower() for k, v in self.model.config.id2label.items()}
        self.classes = [_CLASS_NAMES.get(id2label.get(i, ""), "") for i in range(len(id2label))]
        if "positive" not in self.classes or "negative" not in self.classes:
            raise ModelError("labels.plugin_labels", f"{path}: config.json id2label must name positive and negative "
                             "classes (and optionally uncertain)")
        self.threshold, self.batch_size, self.device, self.max_length = threshold, batch_size, device, max_length
        self.fingerprint = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]

    def classify(self, items: list[tuple[str, str]]) -> list[str | None]:
        import torch

        out: list[str | None] = []
        with torch.inference_mode():
            for i in range(0, len(items), self.batch_size):
                batch = items[i : i + self.batch_size]
                enc = self.tokenizer([b[0].lower() for b in batch], [b[1] for b in batch], padding=True,
                                     truncation=True, max_length=self.max_length, return_tensors="pt").to(self.device)
                probs = torch.softmax(self.model(**enc).logits.float(), dim=-1)
                conf, idx = probs.max(dim=-1)
                for c, k in zip(conf.tolist(), idx.tolist()):
                    out.append(self.classes[k] or None if c >= self.threshold else None)
        return out
