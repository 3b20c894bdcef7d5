"""Ingest speed, as ratios measured in one process run on one generated archive (docs/benchmarks.md, "Ingest").

Baselines, all over the same archive and the same output geometry (short side = --resolution, Pillow Lanczos):

* naive: a single-process loop ``dcmread(path)`` + ``ds.pixel_array`` + resize over every file (failures skipped);
* raw: decode + resize on one core of exactly the images ingest keeps (ok or duplicate), their bytes already in
  RAM (R_dec, research/perf_anchors.md "Suggested ratio goals" 3); divided by the workers, it is the ceiling.

radadapt ingest runs end to end (walk, read, select, decode, pipeline, shards, de-identification, final merge)
into a fresh store, with 1 and with --workers worker processes. Each timing is the best of --repeat runs, since a
shared machine adds noise. Prints a JSON object and a markdown table.

    python benchmarks/bench_ingest.py --n 120 --size 1024 --workers 2
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("RADADAPT_PROGRESS", "0")


def _machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def _resize(arr, resolution: int):
    import numpy as np

    from radadapt.ingest.pixels import resize_u8

    a = arr.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    return resize_u8((a - lo) * (255.0 / max(hi - lo, 1.0)), resolution)


def naive_loop(files: list[Path], resolution: int) -> tuple[float, float, int]:
    """The loop a script would write: read, decode everything pydicom decodes, resize. (wall s, CPU s, images)"""
    import pydicom

    t0, c0 = time.perf_counter(), time.process_time()
    images = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in files:
            try:
                arr = pydicom.dcmread(path, force=True).pixel_array
            except Exception:  # noqa: BLE001 - the naive loop just skips what fails
                continue
            if arr.ndim == 2:
                _resize(arr, resolution)
                images += 1
    return time.perf_counter() - t0, time.process_time() - c0, images


def raw_rate(files: list[Path], resolution: int) -> tuple[float, float, int]:
    """Decode + resize of ``files`` with their bytes already in RAM: (wall s, CPU s, images)."""
    import pydicom
    from pydicom.pixels import pixel_array

    blobs = [path.read_bytes() for path in files]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0, c0 = time.perf_counter(), time.process_time()
        for data in blobs:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            if "TransferSyntaxUID" not in ds.file_meta:  # a bare dataset (no file meta): as ingest does
                implicit, little = ds.original_encoding
                ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2" if implicit else (
                    "1.2.840.10008.1.2.1" if little else "1.2.840.10008.1.2.2")
            _resize(pixel_array(ds, index=0), resolution)
    return time.perf_counter() - t0, time.process_time() - c0, len(blobs)


def ingest_once(archive: Path, reports: Path, key: Path, resolution: int, workers: int, scratch: Path) -> dict:
    from radadapt.config import IngestSection
    from radadapt.ingest.pipeline import IngestRequest, run_ingest

    store = scratch / f"store_w{workers}"
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(scratch / "private", ignore_errors=True)
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_ingest(IngestRequest(archive=archive, reports=reports, store=store, key_file=key, workers=workers,
                                   cfg=IngestSection(resolution=resolution, chunk_files=16),
                                   private_dir=scratch / "private"))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    audit = next((scratch / "private").glob("*.audit.jsonl")).read_text().splitlines()[1:]
    useful = sorted(archive / r["path"] for r in map(json.loads, audit) if r["state"] in ("ok", "duplicate"))
    decoded = sum(d["files"] for d in res["store"]["decode"].values())
    return {"wall_s": round(wall, 3), "cpu_s_this_process": round(cpu, 3), "files": res["total_files"],
            "decoded_images": decoded, "kept_or_duplicate": len(useful), "merge_s": res["store"]["merge_seconds"],
            "decode_by_ts": res["store"]["decode"], "_useful": useful}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=120, help="radiographs in the generated archive")
    ap.add_argument("--size", type=int, default=1024, help="generator image size (pixels)")
    ap.add_argument("--resolution", type=int, default=518)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "radadapt-bench-ingest")
    args = ap.parse_args(argv)

    from radadapt import atomic
    from radadapt.demo.archive import generate_archive

    machine = _machine()
    demo = args.cache / f"demo_n{args.n}_s{args.size}"
    generate_archive(demo, n=args.n, seed=0, size=args.size)
    archive, reports = demo / "archive", demo / "reports.csv"
    files = sorted(p for p in archive.rglob("*") if p.is_file() and not p.is_symlink())
    key = args.cache / "site.key"
    if not key.exists():
        atomic.write_text(key, bytes(range(32)).hex() + "\n", perms=0o600)

    scratch = args.cache / "run"
    runs = {}
    for w in sorted({1, args.workers}):
        runs[w] = min((ingest_once(archive, reports, key, args.resolution, w, scratch) for _ in range(args.repeat)),
                      key=lambda r: r["wall_s"])
    useful = runs[1].pop("_useful")
    for r in runs.values():
        r.pop("_useful", None)
    best = lambda f: min((f() for _ in range(args.repeat)), key=lambda r: r[0])  # noqa: E731
    naive_s, naive_cpu, naive_images = best(lambda: naive_loop(files, args.resolution))
    raw_s, raw_cpu, raw_images = best(lambda: raw_rate(useful, args.resolution))
    one, many = runs[1], runs[args.workers]
    w = args.workers
    result = {
        "machine": machine,
        "archive": {"n": args.n, "size": args.size, "files": len(files), "resolution": args.resolution},
        "naive_loop": {"files": len(files), "images": naive_images, "wall_s": round(naive_s, 3),
                       "cpu_s": round(naive_cpu, 3)},
        "raw_decode_resize_of_kept_images": {"images": raw_images, "wall_s": round(raw_s, 3),
                                             "cpu_s": round(raw_cpu, 3)},
        "ingest": {str(k): r for k, r in runs.items()},
        "ratios": {
            "naive_over_ingest_1_worker_wall": round(naive_s / one["wall_s"], 3),
            "naive_over_ingest_1_worker_cpu": round(naive_cpu / one["cpu_s_this_process"], 3),
            "ingest_1_worker_overhead_over_raw_cpu": round(one["cpu_s_this_process"] / raw_cpu - 1, 3),
            "ingest_1_worker_overhead_over_raw_wall": round(one["wall_s"] / raw_s - 1, 3),
            f"raw_over_{w}_x_ingest_{w}_workers_wall": round(raw_s / (w * many["wall_s"]), 3),
            f"scaling_{w}_vs_1_per_worker_wall": round(one["wall_s"] / many["wall_s"] / w, 3),
        },
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=2))
    rows = [("naive loop over all files, 1 process: wall / CPU s", f"{naive_s:.2f} / {naive_cpu:.2f}"),
            ("raw decode+resize of the kept images, bytes in RAM: wall / CPU s", f"{raw_s:.2f} / {raw_cpu:.2f}")]
    rows += [(f"radadapt ingest, {w} worker(s): wall s", f"{r['wall_s']:.2f}") for w, r in runs.items()]
    rows += [("radadapt ingest, 1 worker: CPU s", f"{one['cpu_s_this_process']:.2f}")]
    rows += [(k, str(v)) for k, v in result["ratios"].items()]
    print("\n| measure | value |\n|---|---|")
    print("\n".join(f"| {a} | {b} |" for a, b in rows))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
