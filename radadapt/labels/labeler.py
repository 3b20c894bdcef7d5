"""The rule-based report labeler: one report text in, one row of label values out.

    from radadapt.labels import Labeler
    labeler = Labeler()                      # packaged schema; Labeler(load_schema(path)) for a site's copy
    result = labeler.label(report_text)
    result.values                            # list[str] in labeler.columns order ("1", "0", "-1", "", "present"...)
    result.section_path                      # "sections" | "body" | "whole_text" | "empty"

Pipeline: clean -> sections -> sentences of normalised tokens -> phrase matches (one pass) -> ConText scoping per
sentence -> per-report aggregation. Pure Python (``re`` only), no network, deterministic; the time per report is
linear in its length (sentences are capped at ``max_sentence_tokens`` words, reports at ``max_chars``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from radadapt.labels.aggregate import aggregate
from radadapt.labels.context import DeviceMention, read_sentence
from radadapt.labels.schema import Schema, load_schema
from radadapt.labels.text import PATH_EMPTY, clean, mark_line_breaks, mostly_capitals, split_sections

DEFAULT_MAX_CHARS = 200_000


@dataclass
class ReportLabels:
    values: list[str]
    section_path: str
    truncated: bool = False
    other_abnormal: bool = False  # an abnormality without a column (scoliosis...) was positive or uncertain
    # Only with keep_evidence: column index -> normalised sentences that made it uncertain (for the plugin).
    evidence: dict[int, list[str]] = field(default_factory=dict)


class Labeler:
    def __init__(self, schema: Schema | None = None, *, max_chars: int = DEFAULT_MAX_CHARS, matcher=None):
        self.schema = schema or load_schema()
        self.max_chars = max_chars
        # Any object with find(tokens) -> list[Match] (benchmarks swap in a naive one).
        self.matcher = matcher or self.schema.matcher

    @property
    def columns(self) -> list[str]:
        return self.schema.columns

    def label(self, text: str | None, *, keep_evidence: bool = False) -> ReportLabels:
        schema = self.schema
        n_f, n_d = len(schema.findings), len(schema.devices)
        if not text or not text.strip():
            return ReportLabels([""] * (n_f + 2 * n_d), PATH_EMPTY)
        text, truncated = clean(text, self.max_chars)
        capitals = mostly_capitals(text)
        parts, path = split_sections(text, schema.sections, capitals)
        finding_values: list[list[int]] = [[] for _ in range(n_f)]
        other_values: list[int] = []
        devices: list[DeviceMention] = []
        evidence: dict[int, list[str]] = {}
        find = self.matcher.find
        anaphora, max_tokens = schema.anaphora, schema.max_sentence_tokens
        sentences = schema.normalizer.sentences
        for part in parts:
            carry: list[DeviceMention] = []
            for tokens in sentences(mark_line_breaks(part, capitals), max_tokens):
                matches = find(tokens)
                if not matches:
                    carry = []
                    continue
                found, others, devs = read_sentence(tokens, matches, schema, carry)
                for idx, value in found:
                    finding_values[idx].append(value)
                other_values.extend(others)
                devices.extend(devs)
                if keep_evidence:
                    for idx, value in found:
                        if value == -1:
                            evidence.setdefault(idx, []).append(" ".join(tokens))
                    for d in devs:
                        if d.state == "uncertain":
                            evidence.setdefault(n_f + d.device, []).append(" ".join(tokens))
                present = [d for d in devs if d.state == "present"]
                if present or any(not d.weak for d in devs):
                    carry = present
                elif not any(t in anaphora for t in tokens):
                    carry = []
        values = aggregate(schema, finding_values, other_values, devices, had_text=path != PATH_EMPTY)
        other = any(v in (1, -1) for v in other_values)
        return ReportLabels(values, path, truncated, other, evidence)
