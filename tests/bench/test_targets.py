import numpy as np

from radadapt.bench import targets as T
from radadapt.manifest import Store


def test_cohorts_follow_splits_and_caps_keep_whole_patients(bench_store):
    root, info = bench_store
    store = Store(root)
    full = T.select_cohorts(store, {"probe_train": None, "val": None, "test": None},
                            splits_as={"train": "probe_train", "val": "val", "test": "test"})
    assert sorted(set(full["test"].patient_keys)) == info["test_patients"]
    assert len(full["probe_train"]) + len(full["val"]) + len(full["test"]) == info["n"]
    capped = T.select_cohorts(store, {"test": 15}, seed=0)["test"]
    again = T.select_cohorts(store, {"test": 15}, seed=0)["test"]
    assert capped.image_keys == again.image_keys  # deterministic
    assert 0 < len(capped) < len(full["test"])
    for p in set(capped.patient_keys):  # whole patients: all of a kept patient's images are kept
        assert capped.patient_keys.count(p) == full["test"].patient_keys.count(p)
    idx = capped.index()
    assert store.image_at(idx, 0).shape == (idx.heights[0], idx.widths[0])


def test_label_values_become_binary_targets_by_policy(bench_store):
    root, _ = bench_store
    store = Store(root)
    cols = T.label_columns(store)
    assert cols["Cardiomegaly"] == "findings" and cols["endotracheal tube"] == "devices"
    co = T.select_cohorts(store, {"all": None}, splits_as={"train": "all", "val": "all", "test": "all"})
    rows = {r["study_key"]: r for r in store.labels()}
    names = list(cols)
    for policy in ("exclude", "positive", "negative"):
        t, stats = T.build_targets(store, co, cols, policy)
        y, m = t["all"].y, t["all"].mask
        assert stats["unknown_values"] == 0
        for i, sk in enumerate(co["all"].study_keys):
            for j, name in enumerate(names):
                v = rows[sk][name]
                if v in ("1", "present"):
                    assert m[i, j] and y[i, j] == 1
                elif v in ("0", "", "absent", "removed"):
                    assert m[i, j] and y[i, j] == 0
                else:  # -1 / uncertain
                    assert v in ("-1", "uncertain")
                    if policy == "exclude":
                        assert not m[i, j]
                    else:
                        assert m[i, j] and y[i, j] == (1 if policy == "positive" else 0)
    assert np.any(~T.build_targets(store, co, cols, "exclude")[0]["all"].mask)  # some uncertain values exist


def test_images_without_a_labels_row_are_excluded(bench_store, tmp_path):
    import shutil

    root, _ = bench_store
    copy = tmp_path / "store"
    shutil.copytree(root, copy)
    lines = (copy / "labels.csv").read_text().splitlines()
    (copy / "labels.csv").write_text("\n".join(lines[:-3]) + "\n")  # drop three studies
    store = Store(copy)
    cols = T.label_columns(store)
    co = T.select_cohorts(store, {"all": None}, splits_as={"train": "all", "val": "all", "test": "all"})
    t, stats = T.build_targets(store, co, cols)
    assert stats["unlabelled_images"] > 0
    assert (~t["all"].mask.any(axis=1)).sum() == stats["unlabelled_images"]
