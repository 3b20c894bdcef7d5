"""External sort and merge join: same answers as in memory, with runs spilled to disk."""

from __future__ import annotations

import random

from radadapt.ingest.extsort import merge_join, sort_rows


def test_external_sort_equals_sorted_and_is_stable(tmp_path):
    rng = random.Random(0)
    rows = [[rng.randrange(50), i] for i in range(2000)]
    out = list(sort_rows(iter(rows), key=lambda r: r[0], tmp_dir=tmp_path / "t", run_rows=64))
    assert out == sorted(rows, key=lambda r: r[0])  # Python's sort is stable: ties keep input order
    assert not list((tmp_path / "t").iterdir())  # runs are removed


def test_small_inputs_stay_in_memory(tmp_path):
    out = list(sort_rows([[3], [1], [2]], key=lambda r: r[0], tmp_dir=tmp_path, run_rows=10))
    assert out == [[1], [2], [3]] and not list(tmp_path.iterdir())


def test_merge_join_is_a_full_outer_join():
    left = [["a", 1], ["b", 2], ["b", 3], ["d", 4]]
    right = [["b", "x"], ["c", "y"], ["d", "z"], ["d", "w"]]
    got = [(k, [r[1] for r in lr], [r[1] for r in rr]) for k, lr, rr in merge_join(left, right, lambda r: r[0], lambda r: r[0])]
    assert got == [("a", [1], []), ("b", [2, 3], ["x"]), ("c", [], ["y"]), ("d", [4], ["z", "w"])]
