"""RAD-DINO checkpoint I/O, preprocessing and frozen-encoder speed, each against transformers in the same run.

Real-size architecture (DINOv2 ViT-B/14 at 518 px, 86.6M parameters, plus the 65,536-prototype DINO head),
random weights, written by ``rad_dino.save_model_dir`` in every layout. Baselines:

- write:      ``Dinov2Model.save_pretrained`` (transformers layout only, no Meta file, no head);
- load:       ``AutoModel.from_pretrained(dir, local_files_only=True)`` vs ``rad_dino.load_backbone`` (header
              checks, strict key/shape match, sha256 of every file read), each in a fresh subprocess;
- preprocess: ``AutoImageProcessor`` (torchvision backend) on RGB copies vs ``ImagePreprocessing`` on the grey
              store images (same output, checked);
- encode:     bare ``model(pixel_values).pooler_output`` vs ``RadDinoEncoder.features`` (cls, patch mean,
              patch grid, 4-layer CLS).

Usage::

    python benchmarks/bench_rad_dino.py --out /tmp/rad_dino_bench [--images 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

_LOAD = {
    "transformers AutoModel": "from transformers import AutoModel\n"
                              "m = AutoModel.from_pretrained({root!r}, local_files_only=True)",
    "radadapt load_backbone (transformers layout)": "from radadapt.models import rad_dino\n"
                                                    "m = rad_dino.load_backbone({root!r}, layout='transformers')",
    "radadapt load_backbone (Meta layout)": "from radadapt.models import rad_dino\n"
                                            "m = rad_dino.load_backbone({root!r}, layout='meta')",
    "radadapt load_pretrained (backbone + head)": "from radadapt.models import rad_dino\n"
                                                  "m = rad_dino.load_pretrained({root!r})",
}
# Peak memory from /proc (VmHWM): ru_maxrss would carry over the parent's peak through fork+exec.
_WRAP = """
import json, time, torch
torch.set_num_threads({threads})
import transformers, radadapt.models.rad_dino  # imports are not timed
t = time.perf_counter()
{body}
dt = time.perf_counter() - t
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({{"s": dt, "peak_rss_gb": int(hwm) / 2**20}}))
"""


def _timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import numpy as np
    import torch
    from transformers import AutoImageProcessor, Dinov2Config

    from radadapt.models import rad_dino
    from radadapt.models.dino_head import DINOHead

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = rad_dino.build_backbone(Dinov2Config(image_size=518)).eval()
    head = DINOHead()
    root, bare = args.out / "rad_dino", args.out / "save_pretrained"
    res: dict = {"threads": args.threads, "parameters": sum(p.numel() for p in model.parameters())}
    res["write_s"] = {
        "transformers save_pretrained (backbone only)": _timed(lambda: model.save_pretrained(bare)),
        "radadapt save_model_dir (both layouts + head)": _timed(
            lambda: rad_dino.save_model_dir(model, head, root, overwrite=True)),
    }
    res["file_bytes"] = {p.name: p.stat().st_size for p in sorted(root.iterdir())}
    res["load"] = {}
    for name, body in _LOAD.items():
        code = _WRAP.format(threads=args.threads, body=body.format(root=str(root)))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        res["load"][name] = json.loads(out.stdout.strip().splitlines()[-1])

    rs = np.random.RandomState(0)
    imgs = [rs.randint(0, 256, (518, 640), dtype=np.uint8) for _ in range(args.images)]  # store-like images
    proc = AutoImageProcessor.from_pretrained(root, local_files_only=True)
    enc = rad_dino.load_encoder(root)
    rgb = [np.repeat(i[..., None], 3, axis=-1) for i in imgs]
    theirs = proc(images=rgb, return_tensors="pt")["pixel_values"]
    ours = enc.preprocess(imgs)
    res["preprocess_max_abs_diff"] = float((theirs - ours).abs().max())
    t_hf = _timed(lambda: proc(images=[np.repeat(i[..., None], 3, axis=-1) for i in imgs], return_tensors="pt"), 3)
    t_ours = _timed(lambda: enc.preprocess(imgs), 3)
    res["preprocess_images_per_s"] = {"AutoImageProcessor": args.images / t_hf, "ImagePreprocessing": args.images / t_ours}

    x = ours[: min(2, args.images)]

    def bare_forward():
        with torch.no_grad():
            model(pixel_values=x).pooler_output

    t_bare = _timed(bare_forward, 2)
    t_enc = _timed(lambda: enc.features(x), 2)
    res["encode_images_per_s"] = {"bare Dinov2Model": len(x) / t_bare, "RadDinoEncoder.features": len(x) / t_enc}
    res["encode_ratio"] = t_bare / t_enc
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
