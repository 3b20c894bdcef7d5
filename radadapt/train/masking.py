"""iBOT block masks for the student's global crops (BEiT §2.2 blockwise masking; DINOv2 ``data/masking.py`` and
``data/collate.py``).

Per global micro-batch of ``n`` global crops: ``int(n * probability)`` crops are masked, with mask ratios
stratified over ``[ratio_min, ratio_max]`` (crop i of the masked ones draws its ratio uniformly from the i-th of
equal sub-intervals), the assignment of ratios to crops shuffled. Each mask is grown from random rectangles of at
least ``min_patches`` patches and aspect ratio in ``[min_aspect, 1/min_aspect]``, each adding at most
``max_patches`` (DINOv2: half the grid) new patches, until the target count is reached or no rectangle fits.

Determinism, so that a resumed or multi-GPU run draws exactly the same masks: the ratio assignment depends only
on (seed, global micro-batch number), and each crop's mask only on (seed, micro-batch, crop slot). A rank
computes the masks of its own slots only, so the union over ranks equals the single-process batch.
"""

from __future__ import annotations

import math

import numpy as np

_STREAM = 0x6D61736B  # "mask": keeps these random streams apart from the augmentation streams


def block_mask(rng: np.random.Generator, grid: tuple[int, int], n_masked: int, *, min_patches: int = 4,
               max_patches: int | None = None, min_aspect: float = 0.3) -> np.ndarray:
    """A boolean [h, w] mask with about ``n_masked`` patches set, grown from random blocks."""
    h, w = grid
    mask = np.zeros((h, w), dtype=bool)
    max_patches = n_masked if max_patches is None else max_patches
    log_aspect = (math.log(min_aspect), math.log(1.0 / min_aspect))
    count = 0
    while count < n_masked:
        budget = min(n_masked - count, max_patches)
        added = 0
        for _ in range(10):  # a few tries to place one block
            target = min_patches + (budget - min_patches) * rng.random()  # random.uniform, also if budget < min
            aspect = math.exp(rng.uniform(*log_aspect))
            bh = int(round(math.sqrt(target * aspect)))
            bw = int(round(math.sqrt(target / aspect)))
            if bh < 1 or bw < 1 or bh >= h or bw >= w:
                continue
            top = int(rng.integers(0, h - bh + 1))
            left = int(rng.integers(0, w - bw + 1))
            block = mask[top : top + bh, left : left + bw]
            new = bh * bw - int(block.sum())
            if 0 < new <= budget:
                block[:] = True
                added = new
                break
        if added == 0:
            break
        count += added
    return mask


class MaskPlan:
    """Which global crops of a global micro-batch are masked, at which ratio, and their masks."""

    def __init__(self, grid: tuple[int, int], *, probability: float = 0.5, ratio: tuple[float, float] = (0.1, 0.5),
                 min_patches: int = 4, max_fraction: float = 0.5, min_aspect: float = 0.3, seed: int = 0):
        self.grid = grid
        self.n_tokens = grid[0] * grid[1]
        self.probability = probability
        self.ratio = ratio
        self.min_patches = min_patches
        self.max_patches = int(max_fraction * self.n_tokens)
        self.min_aspect = min_aspect
        self.seed = seed

    def ratios(self, micro_batch: int, n_slots: int) -> np.ndarray:
        """Mask ratio per slot of the global micro-batch (0 = unmasked); depends on (seed, micro_batch) only."""
        rng = np.random.default_rng([self.seed, _STREAM, micro_batch])
        n_masked = int(n_slots * self.probability)
        edges = np.linspace(self.ratio[0], self.ratio[1], n_masked + 1)
        per_masked = rng.uniform(edges[:-1], edges[1:]) if n_masked else np.zeros(0)
        out = np.zeros(n_slots)
        out[:n_masked] = per_masked
        return out[rng.permutation(n_slots)]

    def masks(self, micro_batch: int, n_slots: int, slots: np.ndarray) -> np.ndarray:
        """Boolean masks [len(slots), n_tokens] for the given slots of global micro-batch ``micro_batch``."""
        ratios = self.ratios(micro_batch, n_slots)
        out = np.zeros((len(slots), self.n_tokens), dtype=bool)
        for row, slot in enumerate(slots):
            n = int(self.n_tokens * ratios[slot])
            if n <= 0:
                continue
            rng = np.random.default_rng([self.seed, _STREAM, micro_batch, int(slot) + 1])
            out[row] = block_mask(rng, self.grid, n, min_patches=self.min_patches, max_patches=self.max_patches,
                                  min_aspect=self.min_aspect).reshape(-1)
        return out
