import numpy as np

from radadapt.train.masking import MaskPlan, block_mask


def test_block_mask_reaches_its_target_with_blocks():
    rng = np.random.default_rng(0)
    m = block_mask(rng, (16, 16), 60, min_patches=4, max_patches=128)
    assert m.shape == (16, 16) and 50 <= m.sum() <= 60
    assert block_mask(np.random.default_rng(1), (16, 16), 0).sum() == 0
    # the same generator state gives the same mask
    a = block_mask(np.random.default_rng(5), (8, 8), 20)
    b = block_mask(np.random.default_rng(5), (8, 8), 20)
    assert np.array_equal(a, b)


def test_ratios_are_stratified_and_half_the_crops_are_masked():
    plan = MaskPlan((16, 16), probability=0.5, ratio=(0.1, 0.5), seed=3)
    r = plan.ratios(micro_batch=7, n_slots=40)
    masked = np.sort(r[r > 0])
    assert len(masked) == 20
    edges = np.linspace(0.1, 0.5, 21)
    assert np.all((masked >= edges[:-1]) & (masked <= edges[1:]))  # one ratio per stratum
    masks = plan.masks(7, 40, np.arange(40))
    counts = masks.sum(1)
    assert (counts[r == 0] == 0).all()
    assert np.all(counts[r > 0] <= (r[r > 0] * 256).astype(int))
    assert counts[r > 0].mean() > 0.2 * 256  # block growth gets close to the targets on average


def test_rank_slices_reassemble_the_single_process_masks():
    plan = MaskPlan((8, 8), seed=0)
    n_global, gmb = 2, 6  # 2 global crops, a global micro-batch of 6 images
    slots = lambda off, b: np.array([c * gmb + off + j for c in range(n_global) for j in range(b)])  # noqa: E731
    whole = plan.masks(4, n_global * gmb, slots(0, 6))
    rank0 = plan.masks(4, n_global * gmb, slots(0, 3))
    rank1 = plan.masks(4, n_global * gmb, slots(3, 3))
    # crop-major rows: single process [c0: 0..5, c1: 0..5]; rank r: [c0: its 3, c1: its 3]
    assert np.array_equal(whole[[0, 1, 2, 6, 7, 8]], rank0)
    assert np.array_equal(whole[[3, 4, 5, 9, 10, 11]], rank1)
    assert not np.array_equal(plan.masks(5, 12, slots(0, 6)), whole)  # a new micro-batch, new masks
