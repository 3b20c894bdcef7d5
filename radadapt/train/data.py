"""Training data from the store: the train split only, a nested patient-level subset, and a resumable order.

- **What is used.** Only ``split == "train"`` images (``Store.index("train", ...)``); the patients of val/test are
  read once to prove none of them is in the training set (a store with a patient in two splits is refused).
- **``--subset N``.** Train patients are ordered by ``sha256(patient_key)`` (no site key needed, stable as the
  store grows); the subset is the first N images in that order, a patient's images in manifest order. So the
  30k subset is inside the 100k subset, which is inside the 1M subset: the study's nested design.
- **Order.** Training consumes an endless stream of positions ``p = 0, 1, 2, ...``; position p is image
  ``perm_e[p mod n]`` of epoch ``e = p // n``, with ``perm_e`` a permutation drawn from (seed, e). Optimizer step
  s, micro-batch k, rank r reads positions ``((s*K + k)*W + r)*B + [0, B)``. The stream is a pure function of
  (seed, B, K, W), so a resume at step s reads exactly what the uninterrupted run would have, and a run on W
  processes with batch B reads, per micro-batch, the same images as one process with batch W*B.
- **Augmentation randomness** comes from ``numpy.random.default_rng([seed, p])`` per sample: independent of the
  number of loader workers, the rank and restarts.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from radadapt.errors import DataError, UsageError
from radadapt.manifest import Store, StoreIndex

_AUGMENT_STREAM = 0x61756720  # "aug ": keeps sample streams apart from other seeded streams


def patient_order_key(patient_key: str) -> str:
    """The subset order: a plain sha256 of the pseudonym (independent of the site key)."""
    return hashlib.sha256(patient_key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TrainingSet:
    index: StoreIndex
    patients: list[str]  # sorted patient keys with at least one image in the set
    n_train_images: int  # images in the whole train split (before --subset)
    n_train_patients: int


def select_training_set(store: Store, subset: int | None = None) -> TrainingSet:
    """The images pretraining may use: the train split, or its first ``subset`` images in patient-hash order."""
    counts: Counter[str] = Counter()
    held_out: set[str] = set()
    with open(store.manifest_path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            if row["split"] == "train":
                counts[row["patient_key"]] += 1
            else:
                held_out.add(row["patient_key"])
    leak = held_out.intersection(counts)
    if leak:
        raise DataError(
            "train.split_leak",
            f"{len(leak)} patient(s) have images in both the train split and val/test; pretraining would see "
            "evaluation patients",
            hint="the store is inconsistent: re-run `radadapt ingest` into a new store",
        )
    n_train = sum(counts.values())
    if n_train == 0:
        raise DataError("train.no_images", "the store has no train-split images",
                        hint="check the split fractions used at ingest (`[ingest.split]`)")
    if subset is not None and subset <= 0:
        raise UsageError("train.bad_subset", f"--subset must be a positive number of images (got {subset})")
    if subset is None or subset >= n_train:
        if subset is not None and subset > n_train:
            raise UsageError(
                "train.subset_too_large",
                f"--subset {subset} asks for more images than the train split has ({n_train})",
                hint=f"use --subset {n_train} or fewer, or omit --subset to use every train image",
            )
        index = store.index("train")
        return TrainingSet(index, sorted(counts), n_train, len(counts))

    chosen: list[str] = []
    total = 0
    for patient in sorted(counts, key=patient_order_key):
        chosen.append(patient)
        total += counts[patient]
        if total >= subset:
            break
    index = store.index("train", set(chosen))
    if total > subset:  # the last patient contributes only their first images (manifest order)
        last = chosen[-1]
        keep_last = counts[last] - (total - subset)
        drop = set(store.index("train", {last}).image_keys[keep_last:])
        keep = np.array([k not in drop for k in index.image_keys], dtype=bool)
        index = _take(index, keep)
    return TrainingSet(index, sorted(chosen), n_train, len(counts))


def _take(index: StoreIndex, keep: np.ndarray) -> StoreIndex:
    return StoreIndex(
        image_keys=[k for k, m in zip(index.image_keys, keep) if m],
        shard_ids=index.shard_ids[keep],
        shards=index.shards,
        offsets=index.offsets[keep],
        heights=index.heights[keep],
        widths=index.widths[keep],
    )


@dataclass(frozen=True)
class StreamLayout:
    """How the position stream is cut: micro-batch B per rank, K micro-batches per step, W ranks."""

    batch_size: int
    accum: int = 1
    world_size: int = 1
    rank: int = 0

    @property
    def global_micro_batch(self) -> int:
        return self.batch_size * self.world_size

    @property
    def images_per_step(self) -> int:
        return self.batch_size * self.accum * self.world_size

    def positions(self, step: int, micro: int) -> np.ndarray:
        base = ((step * self.accum + micro) * self.world_size + self.rank) * self.batch_size
        return np.arange(base, base + self.batch_size, dtype=np.int64)


class StepBatchSampler:
    """Yields, for steps ``start .. stop-1`` and each micro-batch, the list of stream positions of this rank."""

    def __init__(self, layout: StreamLayout, start_step: int, stop_step: int):
        self.layout, self.start, self.stop = layout, start_step, stop_step

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            for micro in range(self.layout.accum):
                yield self.layout.positions(step, micro).tolist()

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.layout.accum


class StoreStream:
    """Map-style dataset over stream positions: position -> augmented sample of the store image it names.

    Holds only numpy arrays (image keys as fixed-width bytes, shard ids, offsets, sizes), so loader workers share
    them copy-on-write: about 20 bytes per image, instead of a Python string object per image in every worker.
    """

    def __init__(self, store_path: str, index: StoreIndex, transform: Callable[[np.ndarray, np.random.Generator, str], dict],
                 seed: int = 0):
        self.store_path = str(store_path)
        self.n = len(index)
        self.keys = np.asarray(index.image_keys, dtype="S")  # pseudonyms are ASCII hex
        self.shards = list(index.shards)
        self.shard_ids, self.offsets = index.shard_ids, index.offsets
        self.heights, self.widths = index.heights, index.widths
        self.transform = transform
        self.seed = seed
        self._store: Store | None = None  # opened lazily, once per worker process (memory maps do not pickle)
        self._perm_epoch = -1
        self._perm: np.ndarray | None = None

    def __len__(self) -> int:  # positions are unbounded; this is the size of one epoch
        return self.n

    def image_number(self, position: int) -> tuple[int, int]:
        """(epoch, index into the StoreIndex) of a stream position."""
        epoch, offset = divmod(int(position), self.n)
        if epoch != self._perm_epoch:
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._perm = perm.astype(np.int32 if self.n < 2**31 else np.int64)
            self._perm_epoch = epoch
        assert self._perm is not None
        return epoch, int(self._perm[offset])

    def __getitem__(self, position: int) -> dict[str, Any]:
        if self._store is None:
            self._store = Store(self.store_path)
        _, i = self.image_number(position)
        image = self._store.read(self.shards[self.shard_ids[i]], int(self.offsets[i]), int(self.heights[i]),
                                 int(self.widths[i]))
        rng = np.random.default_rng([self.seed, _AUGMENT_STREAM, int(position)])
        sample = self.transform(image, rng, self.keys[i].decode("ascii"))
        sample["position"] = int(position)
        return sample


def worker_init(_worker_id: int) -> None:
    """Loader workers: one intra-op thread each (N workers x all cores would oversubscribe the CPU)."""
    import torch

    torch.set_num_threads(1)
