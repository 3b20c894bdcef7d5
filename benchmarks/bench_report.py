"""Report speed (docs/benchmarks.md, "Report"): rendering a 33-label, 4-model benchmark, and reading a long run log.

The benchmark output is the committed fixture (tests/report/fixture: real `radadapt benchmark` output with 4
models, OOD, segmentation and scaling), with every schema label made evaluable by giving the labels that had too
few positives a real evaluated label's numbers (so tables and figures carry 33 labels). Timings: import of the
report stack, load + validate, render (figures, HTML, markdown), each the best of --repeat runs, wall and CPU;
then streaming a synthetic metrics.jsonl of --log-rows rows (the training-log reader's decimation). Prints JSON and
a markdown table.

    python benchmarks/bench_report.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RADADAPT_PROGRESS", "0")
ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "report" / "fixture"


def _prepare(work: Path) -> Path:
    shutil.copytree(FIXTURE, work, dirs_exist_ok=True)
    f = work / "bench" / "results.json"
    d = json.loads(f.read_text().replace("@FIXTURE@", str(work)))
    labels = d["classification"]["labels"]
    done = {g: [lab for lab in labels if lab["status"] == "evaluated" and lab["group"] == g] for g in ("findings", "devices")}
    for i, lab in enumerate(labels):
        if lab["status"] != "evaluated":
            labels[i] = {**done[lab["group"]][i % len(done[lab["group"]])], "label": lab["label"], "group": lab["group"]}
    f.write_text(json.dumps(d))
    s = work / "scaling.json"
    s.write_text(s.read_text().replace("@FIXTURE@", str(work)))
    return work


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--log-rows", type=int, default=1_000_000)
    args = ap.parse_args()
    probe = ("import time; t=time.perf_counter(); import radadapt.report.render, matplotlib.figure; "
             "print(time.perf_counter()-t)")
    imp = min(float(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
              for _ in range(args.repeat))
    from radadapt.report.load import load_inputs, read_training_log
    from radadapt.report.render import render_report

    with tempfile.TemporaryDirectory() as tmp:
        work = _prepare(Path(tmp) / "fx")
        loads, renders = [], []
        for i in range(args.repeat):
            inp, w, c = _timed(lambda: load_inputs(work / "bench", [work / "scaling.json"], overlays=True))
            loads.append((w, c))
            rep, w, c = _timed(lambda: render_report(inp, Path(tmp) / f"report{i}"))
            renders.append((w, c))
        n_labels = sum(lab.status == "evaluated" for lab in inp.results.classification.labels)
        html_kb = rep.html.stat().st_size / 1024
        log = Path(tmp) / "metrics.jsonl"
        with open(log, "w") as fh:
            for step in range(1, args.log_rows + 1):
                fh.write(json.dumps({"step": step, "loss": 5 / step ** 0.3, "dino_loss": 1.0, "ibot_loss": 2.0,
                                     "koleo_loss": -0.1, "dino_kl": 0.5, "teacher_entropy": 3.0, "lr": 1e-4,
                                     "elapsed_s": step * 0.5, "images_seen": step * 1024}) + "\n")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        parsed, lw, lc = _timed(lambda: read_training_log(log, "candidate"))
        rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "labels": n_labels, "models": len(inp.results.models), "figures": len(rep.figures),
        "import_s": round(imp, 2),
        "load_wall_s": round(min(w for w, _ in loads), 3), "load_cpu_s": round(min(c for _, c in loads), 3),
        "render_wall_s": round(min(w for w, _ in renders), 2), "render_cpu_s": round(min(c for _, c in renders), 2),
        "html_kb": round(html_kb), "log_rows": args.log_rows, "log_points": len(parsed.steps),
        "log_wall_s": round(lw, 2), "log_cpu_s": round(lc, 2), "log_rss_growth_mb": round(rss_growth_mb, 1),
    }
    print(json.dumps(result, indent=2))
    print("\n| measure | value |\n|---|---|")
    for k, v in result.items():
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
