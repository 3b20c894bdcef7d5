"""``radadapt report``: the benchmark as a report that a radiologist, a data-protection officer and hospital IT read.

Stages of a report: ``load`` (results.json and the aggregate files it names: store.json's accounting, labels.json's
counts, each run's metrics.jsonl, overlay PNGs, scaling fits), ``summary`` (the verdict-first summary, also shown
in the terminal), ``figures`` (matplotlib, Agg, no pyplot), ``tables`` (plain table data) and ``render`` (jinja2
templates ``report.html.j2`` and ``report.md.j2`` from ``radadapt.templates``). No module here imports torch.
docs/report.md explains how to read the result.
"""
