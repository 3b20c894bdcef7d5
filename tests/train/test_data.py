import hashlib
import json

import numpy as np
import pytest
from conftest import build_store

from radadapt import atomic
from radadapt.errors import DataError, UsageError
from radadapt.manifest import Store
from radadapt.train.data import StepBatchSampler, StoreStream, StreamLayout, patient_order_key, select_training_set


def _rows(store):
    return [json.loads(line) for line in open(store / "manifest.jsonl")]


def test_training_set_is_the_train_split_only(train_store):
    ts = select_training_set(Store(train_store))
    rows = _rows(train_store)
    train_keys = {r["image_key"] for r in rows if r["split"] == "train"}
    assert set(ts.index.image_keys) == train_keys
    held_out = {r["patient_key"] for r in rows if r["split"] != "train"}
    assert held_out and not held_out & set(ts.patients)
    assert ts.patients == sorted({r["patient_key"] for r in rows if r["split"] == "train"})


def test_subsets_are_nested_patient_ordered_and_exact(train_store):
    store = Store(train_store)
    full = select_training_set(store)
    sizes = [5, 12, 30, len(full.index)]
    sets = [set(select_training_set(store, n).index.image_keys) for n in sizes]
    assert [len(s) for s in sets] == sizes
    assert sets[0] < sets[1] < sets[2] < sets[3]  # 30k in 100k in 1M, in miniature
    rows = [r for r in _rows(train_store) if r["split"] == "train"]
    order = sorted({r["patient_key"] for r in rows}, key=lambda p: hashlib.sha256(p.encode()).hexdigest())
    assert patient_order_key(order[0]) == hashlib.sha256(order[0].encode()).hexdigest()
    first12 = [r["image_key"] for p in order for r in rows if r["patient_key"] == p][:12]
    assert sets[1] == set(first12)  # the first N images in patient-hash order, a patient's in manifest order
    with pytest.raises(UsageError) as info:
        select_training_set(store, len(full.index) + 1)
    assert info.value.code == "train.subset_too_large"


def test_a_patient_in_two_splits_is_refused(tmp_path):
    root = build_store(tmp_path / "s", n_patients=12, images_per_patient=(2, 2))
    rows = _rows(root)
    train_patient = next(r["patient_key"] for r in rows if r["split"] == "train")
    for r in rows:
        if r["patient_key"] == train_patient:
            r["split"] = "test"
            break
    atomic.write_jsonl(root / "manifest.jsonl", rows)
    with pytest.raises(DataError) as info:
        select_training_set(Store(root))
    assert info.value.code == "train.split_leak"


def test_stream_positions_split_a_global_micro_batch_across_ranks():
    single = StreamLayout(batch_size=6, accum=2, world_size=1)
    ranks = [StreamLayout(batch_size=3, accum=2, world_size=2, rank=r) for r in range(2)]
    for step in range(3):
        for micro in range(2):
            joined = np.concatenate([lay.positions(step, micro) for lay in ranks])
            assert np.array_equal(joined, single.positions(step, micro))
    batches = list(StepBatchSampler(single, 2, 4))
    assert len(batches) == 4 and batches[0][0] == 2 * 2 * 6  # resume at step 2 starts where step 2 starts


def test_store_stream_is_a_pure_function_of_seed_and_position(train_store):
    ts = select_training_set(Store(train_store))
    transform = lambda img, rng, key: {"mean": float(img.mean()), "draw": float(rng.uniform()), "key": key}  # noqa: E731
    a, b = StoreStream(str(train_store), ts.index, transform, seed=1), StoreStream(str(train_store), ts.index, transform, seed=1)
    n = len(ts.index)
    epoch0 = [a[p]["key"] for p in range(n)]
    assert sorted(epoch0) == sorted(ts.index.image_keys)  # each epoch is a permutation
    assert [b[p]["key"] for p in range(n, 2 * n)] != epoch0  # a new order each epoch
    assert a[n + 3] == b[n + 3] and a[3]["draw"] != a[n + 3]["draw"]
    assert StoreStream(str(train_store), ts.index, transform, seed=2)[0] != a[0]
