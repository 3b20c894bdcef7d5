"""Speed of `radadapt labels`: reports per second, as ratios to a naive baseline and to the CheXpert labeler.

    python benchmarks/bench_labels.py                       # 20,000 reports, workers 1 and 2
    python benchmarks/bench_labels.py --reports 50000 --workers 1 2 4 --json

Corpus: realistic whole reports composed deterministically from the hand-written gold set's sentences
(tests/labels/data), in the shapes real reports take (INDICATION / COMPARISON / FINDINGS / IMPRESSION, or one
paragraph), 300-1,500 characters, mean reported. Baselines, same process, same corpus:

* naive: the same labeler with its one-pass token-trie matcher replaced by one pre-compiled regular expression per
  schema phrase, each run over every sentence (the "phrase list + regex" design of rule labelers); its output is
  checked to be identical on the sample it labels.
* CheXpert labeler: 2.6 reports/s, single process (MIT-LCP/mimic-cxr#7: 10,000 reports in 1:04:53; research note
  perf_anchors.md §6). Not rerun here (Java/BLLIP stack); the ratio is to that published figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "labels"))

CHEXPERT_REPORTS_PER_S = 2.6

INDICATIONS = ["Shortness of breath.", "Fever and cough, evaluate for pneumonia.", "Line placement.",
               "Post intubation.", "Chest pain.", "Follow-up effusion.", "Preoperative evaluation.", "Trauma."]
COMPARISONS = ["None.", "Chest radiograph from yesterday.", "Prior study dated 3 days earlier.", "CT chest 1 month ago."]


def corpus(n: int, seed: int = 0) -> list[str]:
    from labels_gold import load_cases

    cases = load_cases("gold_dev.yaml") + load_cases("gold_holdout.yaml")
    sentences = [c["text"].strip() for c in cases if "\n" not in c["text"].strip() and len(c["text"]) < 200]
    wholes = [c["text"] for c in cases if "\n" in c["text"].strip() or len(c["text"]) >= 200]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.2:
            out.append(rng.choice(wholes))
            continue
        findings = " ".join(rng.sample(sentences, rng.randint(6, 14)))
        impression = " ".join(rng.sample(sentences, rng.randint(1, 4)))
        if r < 0.65:
            out.append(f"EXAMINATION: CHEST PORTABLE AP\nINDICATION: {rng.choice(INDICATIONS)}\n"
                       f"COMPARISON: {rng.choice(COMPARISONS)}\nFINDINGS: {findings}\nIMPRESSION: {impression}")
        else:
            out.append(f"{findings} {impression}")
    return out


class NaiveMatcher:
    """One compiled regex per phrase over the normalised sentence; same leftmost-longest result as the trie."""

    def __init__(self, schema):
        from radadapt.labels import matcher as m

        self._m = m
        self.patterns = []
        for tokens, entries in schema.phrase_table.items():
            if any(e[0] == m.EXCLUDE for e in entries):
                entries = [(m.EXCLUDE,)]
            rx = re.compile(r"(?<!\S)" + re.escape(" ".join(tokens)) + r"(?!\S)")
            self.patterns.append((rx, len(tokens), tuple(entries)))

    def find(self, tokens: list[str]):
        text = " ".join(tokens)
        starts, pos = {}, 0
        for i, t in enumerate(tokens):
            starts[pos] = i
            pos += len(t) + 1
        best: dict[int, tuple[int, tuple]] = {}
        for rx, length, entries in self.patterns:
            for hit in rx.finditer(text):
                i = starts[hit.start()]
                if i not in best or length > best[i][0]:
                    best[i] = (length, entries)
        out, i, n = [], 0, len(tokens)
        while i < n:
            if i in best:
                length, entries = best[i]
                out.append(self._m.Match(i, i + length, entries))
                i += length
            else:
                i += 1
        return out


def rate(fn, n: int) -> dict[str, float]:
    """Reports per second of wall-clock time, and per second of CPU time (this process and its finished workers).

    On a shared machine the CPU-time rate is what one dedicated core would deliver; both are reported.
    """
    import resource

    def cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    w0, c0 = time.perf_counter(), cpu()
    fn()
    wall, used = time.perf_counter() - w0, cpu() - c0
    return {"wall": n / wall, "cpu": n / used}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reports", type=int, default=20000)
    ap.add_argument("--naive-reports", type=int, default=100, help="the naive baseline is slow: label fewer")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from radadapt.labels import Labeler, load_schema
    from radadapt.labels.extract import label_texts

    t0 = time.perf_counter()
    schema = load_schema()
    compile_s = time.perf_counter() - t0
    texts = corpus(args.reports)
    mean_chars = sum(map(len, texts)) / len(texts)
    fast = Labeler(schema)
    sample = texts[: args.naive_reports]

    results = {}
    fast.label(texts[0])  # warm the token cache like a long run would
    results["rules_in_process"] = rate(lambda: [fast.label(t) for t in texts], len(texts))
    naive = Labeler(schema, matcher=NaiveMatcher(schema))
    results["naive_in_process"] = rate(lambda: [naive.label(t) for t in sample], len(sample))
    agree = sum(fast.label(t).values == naive.label(t).values for t in sample) / len(sample)
    for w in args.workers:
        results[f"rules_workers_{w}"] = rate(lambda: sum(1 for _ in label_texts(texts, workers=w)), len(texts))

    naive_cpu = results["naive_in_process"]["cpu"]
    out = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "load_average": os.getloadavg()},
        "corpus": {"reports": len(texts), "mean_chars": round(mean_chars), "naive_sample": len(sample)},
        "schema": {"phrases": schema.n_phrases, "compile_s": round(compile_s, 3)},
        "reports_per_s": {k: {m: round(x, 1) for m, x in v.items()} for k, v in results.items()},
        "ratio_vs_naive_cpu": {k: round(v["cpu"] / naive_cpu, 1) for k, v in results.items()},
        "ratio_vs_chexpert_2.6_wall": {k: round(v["wall"] / CHEXPERT_REPORTS_PER_S, 1) for k, v in results.items()},
        "ratio_vs_chexpert_2.6_per_cpu_second": {k: round(v["cpu"] / CHEXPERT_REPORTS_PER_S, 1)
                                                 for k, v in results.items()},
        "naive_output_identical": agree,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"corpus: {len(texts)} reports, mean {mean_chars:.0f} characters; schema {schema.n_phrases} phrases "
          f"(compiled in {compile_s:.2f} s); {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"{'run':<22}{'wall rep/s':>12}{'CPU rep/s':>12}{'x naive':>9}{'x CheXpert (wall)':>19}")
    for k, v in results.items():
        print(f"{k:<22}{v['wall']:>12.0f}{v['cpu']:>12.0f}{v['cpu'] / naive_cpu:>9.0f}"
              f"{v['wall'] / CHEXPERT_REPORTS_PER_S:>19.0f}")
    print(f"naive baseline output identical on {agree:.0%} of its {len(sample)} reports; "
          "x naive compares CPU-time rates")


if __name__ == "__main__":
    main()
