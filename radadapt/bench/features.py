"""Frozen features, extracted once per model and image and cached as safetensors shards.

Cache layout (default ``RESULTS/cache``, or ``[benchmark] cache_dir`` to share it between benchmarks)::

    CACHE/<model fingerprint[:32]>-<kind>-v<FEATURE_VERSION>/part-<time>-<pid>.safetensors

A shard holds up to ``shard_rows`` images: one tensor per feature (``cls``, ``patch_mean``, ``layers`` for kind
``pooled``; ``patch_grid`` for kind ``grid``; ``tokens``, the grid pooled to at most 8 x 8, for kind ``tokens``;
``joint``, the L2-normalised image-text embedding, for kind ``joint``), float16 unless a value would overflow it, and in its metadata the
list of image tags of its rows. An image tag hashes the store id, the image key and where its pixels live in the
store, so a different model (fingerprint: sha256 of the weights and the preprocessing config) or a re-ingested
image never hits a stale entry. Shards are written atomically as extraction goes, so an interrupted benchmark
resumes where it stopped.

Extraction runs the encoder in eval mode with its own preprocessing, batched, under bf16 autocast on CUDA; the
next batch is read and preprocessed on a background thread while the model runs, so the model waits little.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from radadapt import atomic
from radadapt.errors import DataError

if TYPE_CHECKING:
    from radadapt.manifest import Store, StoreIndex
    from radadapt.models.encoder import Encoder

FEATURE_VERSION = 1
POOLED = ("cls", "patch_mean", "layers")
_F16_MAX = 60000.0


def image_tags(store: "Store", index: "StoreIndex") -> list[str]:
    """One tag per image: changes when the store, the image or its stored pixels change."""
    sid = store.info.store_id
    out = []
    for i, key in enumerate(index.image_keys):
        raw = f"{sid}\0{key}\0{index.shards[index.shard_ids[i]]}\0{index.offsets[i]}\0{index.heights[i]}x{index.widths[i]}"
        out.append(hashlib.blake2b(raw.encode(), digest_size=12).hexdigest())
    return out


class FeatureCache:
    """Feature shards of one model (fingerprint) and one kind (``pooled`` or ``grid``)."""

    def __init__(self, root: str | Path, fingerprint: str, kind: str = "pooled"):
        self.dir = Path(root) / f"{fingerprint[:32]}-{kind}-v{FEATURE_VERSION}"
        self.kind = kind
        self._where: dict[str, tuple[str, int]] | None = None

    def _index(self) -> dict[str, tuple[str, int]]:
        if self._where is None:
            from safetensors import safe_open

            where: dict[str, tuple[str, int]] = {}
            if self.dir.is_dir():
                for shard in sorted(self.dir.glob("part-*.safetensors")):
                    try:
                        with safe_open(str(shard), framework="np") as fh:
                            tags = json.loads((fh.metadata() or {}).get("tags", "[]"))
                    except Exception:  # noqa: BLE001 - a damaged shard is recomputed, never trusted
                        continue
                    for row, tag in enumerate(tags):
                        where[tag] = (shard.name, row)
            self._where = where
        return self._where

    def missing(self, tags: Sequence[str]) -> list[int]:
        where = self._index()
        return [i for i, t in enumerate(tags) if t not in where]

    def write(self, tags: Sequence[str], arrays: dict[str, np.ndarray]) -> None:
        from safetensors.numpy import save

        tensors = {}
        for name, a in arrays.items():
            a = np.ascontiguousarray(a)
            small = np.isfinite(a).all() and float(np.abs(a).max(initial=0.0)) < _F16_MAX
            tensors[name] = a.astype(np.float16 if small else np.float32)
        name = f"part-{time.time_ns()}-{os.getpid()}.safetensors"
        atomic.write_bytes(self.dir / name, save(tensors, metadata={"tags": json.dumps(list(tags)), "kind": self.kind}))
        where = self._index()
        for row, tag in enumerate(tags):
            where[tag] = (name, row)

    def load(self, tags: Sequence[str], names: Sequence[str], dtype: type = np.float32) -> dict[str, np.ndarray]:
        """Arrays [len(tags), ...] in the order of ``tags`` (all must be cached)."""
        from safetensors import safe_open

        where = self._index()
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for i, t in enumerate(tags):
            shard, row = where[t]
            by_shard.setdefault(shard, []).append((i, row))
        out: dict[str, np.ndarray] = {}
        for shard, pairs in by_shard.items():
            dst = np.array([p[0] for p in pairs])
            src = np.array([p[1] for p in pairs])
            with safe_open(str(self.dir / shard), framework="np") as fh:
                for n in names:
                    if n not in fh.keys():
                        continue
                    a = fh.get_tensor(n)
                    if n not in out:
                        out[n] = np.empty((len(tags), *a.shape[1:]), dtype=dtype)
                    out[n][dst] = a[src]
        return out


def _forward(encoder: "Encoder", pixels, kind: str) -> dict[str, np.ndarray]:
    """The arrays a cache kind stores: pooled features, the patch grid, or the joint image embedding (MI2)."""
    if kind == "joint":
        return {"joint": encoder.encode_image(pixels).float().cpu().numpy()}
    feats = encoder.features(pixels)
    if kind == "tokens":
        from radadapt.bench.attentive import pool_tokens

        return {"tokens": pool_tokens(feats["patch_grid"]).cpu().numpy()}
    if kind == "grid":
        return {"patch_grid": feats["patch_grid"].float().cpu().numpy()}
    out = {"cls": feats["cls"].float().cpu().numpy(), "patch_mean": feats["patch_mean"].float().cpu().numpy()}
    if "layers" in feats:
        lay = feats["layers"].float().cpu().numpy()
        out["layers"] = lay.reshape(lay.shape[0], -1)
    return out


def extract(
    encoder: "Encoder",
    store: "Store",
    index: "StoreIndex",
    cache: FeatureCache,
    *,
    batch_size: int = 32,
    shard_rows: int = 2048,
    progress: object | None = None,
    description: str = "features",
) -> tuple[list[str], dict[str, int]]:
    """Make sure every image of ``index`` has features in ``cache``; returns (tags, {"reused", "computed"})."""
    import torch

    tags = image_tags(store, index)
    todo = cache.missing(tags)
    stats = {"reused": len(tags) - len(todo), "computed": len(todo)}
    if not todo:
        return tags, stats
    task = progress.add_task(description, total=len(todo)) if progress is not None else None
    device = str(encoder.device)
    amp = device.startswith("cuda")

    def prepare(rows: list[int]):
        return encoder.preprocess([store.image_at(index, i) for i in rows])

    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    buf_tags: list[str] = []
    buf: dict[str, list[np.ndarray]] = {}

    def flush() -> None:
        if buf_tags:
            cache.write(buf_tags, {k: np.concatenate(v) for k, v in buf.items()})
            buf_tags.clear()
            buf.clear()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(prepare, batches[0])
        for b, rows in enumerate(batches):
            try:
                pixels = pending.result()
            except (OSError, ValueError) as exc:
                raise DataError("bench.image_read", f"could not read a store image ({type(exc).__name__})",
                                hint="check the store with `radadapt ingest --verify` or re-ingest") from None
            if b + 1 < len(batches):
                pending = pool.submit(prepare, batches[b + 1])
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                arrays = _forward(encoder, pixels, cache.kind)
            for k, v in arrays.items():
                buf.setdefault(k, []).append(v)
            buf_tags.extend(tags[i] for i in rows)
            if len(buf_tags) >= shard_rows:
                flush()
            if task is not None:
                progress.advance(task, len(rows))
    flush()
    return tags, stats


def bare_forward(encoder: "Encoder", batches: Sequence, sync: Callable[[], None] | None = None) -> float:
    """Seconds for the model alone on already-preprocessed ``batches`` (the baseline of bench_benchmark.py)."""
    import torch

    amp = str(encoder.device).startswith("cuda")
    t0 = time.perf_counter()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        for x in batches:
            encoder.features(x)
    if sync:
        sync()
    return time.perf_counter() - t0
