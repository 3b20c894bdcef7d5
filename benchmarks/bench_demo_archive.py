"""Demo archive generation speed, against writing the same number of plain DICOM files, in one run.

Baseline: the floor of any generator, ``n`` uncompressed explicit-VR files of the same geometry with a minimal
header and random pixels (pydicom ``dcmwrite``). Measured: ``generate_archive`` with 1 and with ``--workers``
processes (the outputs are byte-identical, checked), and the per-image phases of one process (phantom rendering,
header building, encoding in the planned transfer syntax).

Usage::

    python benchmarks/bench_demo_archive.py --out /tmp/demo_bench [--n 300] [--workers 2]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import time
from pathlib import Path


def _naive(out: Path, n: int, shape: tuple[int, int]) -> float:
    import numpy as np
    from pydicom import dcmwrite
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    rng = np.random.default_rng(0)
    out.mkdir(parents=True)
    t = time.perf_counter()
    for i in range(n):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1", f"2.25.{i + 1}"
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = *shape, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = rng.integers(0, 4096, shape, dtype=np.uint16).tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dcmwrite(out / f"{i:06d}.dcm", ds, enforce_file_format=True)
    return time.perf_counter() - t


def _phases(n: int, size: int) -> dict[str, float]:
    import numpy as np

    from radadapt.demo import phi
    from radadapt.demo.cohort import plan_cohort
    from radadapt.demo.dicomgen import header
    from radadapt.demo.instance import set_pixel_tags
    from radadapt.demo.phantom import render_chest
    from radadapt.demo.pixelmodule import encode_pixels
    from radadapt.demo.transfer import encode

    cohort = plan_cohort(n, 0, size)
    images = [im for im in cohort.images if im.kind == "chest"][:100]
    reg = phi.PhiRegistry()
    totals = {"render": 0.0, "pixel module": 0.0, "header": 0.0, "encode to bytes": 0.0}
    clock = time.process_time  # CPU time per phase (one thread each)
    for im in images:
        rng = np.random.default_rng(im.seed)
        t0 = clock()
        display, _masks, _geo = render_chest(im.shape, im.view, im.study.state, rng)
        t1 = clock()
        px = encode_pixels(display, im.pixel_case, rng, bits=im.bits, mono1=im.mono1, modality=im.study.modality)
        t2 = clock()
        ds = header(im, reg)
        set_pixel_tags(ds, px.tags)
        t3 = clock()
        encode(ds, px.stored, im.ts)
        t4 = clock()
        for k, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            totals[k] += dt
    return {f"{k} (cpu ms)": 1000 * v / len(images) for k, v in totals.items()}


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def main() -> None:
    from radadapt.demo.archive import generate_archive
    from radadapt.demo.cohort import image_shape

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    naive = _naive(args.out / "naive", args.n, image_shape("chest", "PA", args.size))
    runs = {}
    for w in (1, args.workers):
        t, c = time.perf_counter(), time.process_time()
        summary = generate_archive(args.out / f"w{w}", n=args.n, size=args.size, workers=w)
        runs[w] = {"seconds": time.perf_counter() - t, "cpu_s": time.process_time() - c, "files": summary["files"],
                   "digest": _digest(args.out / f"w{w}")}
    result = {
        "n": args.n, "size": args.size, "naive_write_s": naive,
        "generate_s": {w: r["seconds"] for w, r in runs.items()}, "files": runs[1]["files"],
        "generate_cpu_s_1_worker": runs[1]["cpu_s"],  # CPU time of the one process: robust to a busy machine
        "ratio_vs_naive_1_worker": runs[1]["seconds"] / naive,
        "speedup_workers": runs[1]["seconds"] / runs[args.workers]["seconds"],
        "identical_across_workers": runs[1]["digest"] == runs[args.workers]["digest"],
        "per_image_ms": _phases(args.n, args.size),
    }
    print(json.dumps(result, indent=2))
    buf = io.StringIO()
    buf.write(f"naive write of {args.n} files: {naive:.1f} s\n")
    for w, r in runs.items():
        buf.write(f"generate_archive, {w} worker(s): {r['seconds']:.1f} s ({r['files']} files)\n")
    print(buf.getvalue())


if __name__ == "__main__":
    main()
