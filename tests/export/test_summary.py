"""The card's aggregates and licence wording (no model needed)."""

from __future__ import annotations

from radadapt.export import summary


def test_small_cells_are_hidden_with_a_complementary_cell():
    assert summary.suppress({"PA": 120, "AP": 40, "unknown": 3}, 10) == [("PA", 120), ("AP", "<10"), ("unknown", "<10")]
    # two small cells hide each other; nothing else needs hiding
    assert summary.suppress({"PA": 120, "AP": 4, "LATERAL": 2}, 10) == [("PA", 120), ("AP", "<10"), ("LATERAL", "<10")]
    assert summary.suppress({"M": 30, "F": 25}, 10) == [("M", 30), ("F", 25)]
    assert summary.suppress({"M": 5}, 10) == [("M", "<10")]
    assert summary.suppress({}, 10) == []


def test_age_bands():
    assert [summary._age_band(a) for a in (None, 0, 17, 18, 29, 30, 45, 89, 90)] == [
        "unknown", "0-17", "0-17", "18-29", "18-29", "30-39", "40-49", "80-89", "90+"]


def test_training_data_without_the_store_keeps_the_recorded_counts(tmp_path):
    run = {"data": {"images": 120, "patients": 40}, "subset": 100, "store": {"store_id": "s1", "path": "/gone"}}
    out = summary.training_data(run, tmp_path, tmp_path / "missing", min_cell=10, manufacturers=True)
    assert out["images"] == 120 and out["patients"] == 40 and out["subset"] == 100
    assert out["breakdowns"] is None and "not available" in out["note"]


def test_licence_is_recorded_never_guessed():
    mit = summary.base_licence("rad_dino", {"repo": "microsoft/rad-dino"}, False, None)
    assert mit["name"] == "MIT" and "MSRLA" in mit["text"]
    mi2 = summary.base_licence("mi2", {"repo": "lion-ai/MedImageInsights"}, False, "site terms apply")
    assert mi2["name"] == "unknown" and "not verified" in mi2["text"] and mi2["note"] == "site terms apply"
    assert summary.base_licence("rad_dino", {"repo": "someone/dinov2-variant"}, False, None)["name"] == "unknown"
    assert summary.base_licence("rad_dino", {}, False, None)["name"] == "unknown"
    other = summary.base_licence("mi2", {"repo": "someone/mi2-copy"}, False, None)
    assert other["name"] == "unknown" and "not pulled from a known repository" in other["text"]
    assert summary.base_licence("mi2", {}, True, None)["name"] == "none"
