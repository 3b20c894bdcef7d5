"""Device masks (exactly where devices are planted, aligned, thick enough) and findings visible at 64 px."""

from __future__ import annotations

import numpy as np
from PIL import Image

from radadapt.demo.truth import DEVICE_NAMES, ChestState, Device, Finding
from tests.demo.conftest import read_dicom
from tests.demo.test_dicom import _display


def _downsample(a: np.ndarray, width: int = 64) -> np.ndarray:
    h = max(1, round(a.shape[0] * width / a.shape[1]))
    return np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize((width, h), Image.BOX))


def test_masks_exist_exactly_for_planted_devices(demo_out, truth):
    on_disk = {p.name for p in (demo_out / "masks").glob("*.png")}
    listed = set()
    for r in truth:
        listed.update(r["masks"])
        if r["devices"] is None:
            assert r["masks"] == []
            continue
        present = {d for d, state in r["devices"].items() if state == "present"}
        assert {m.split("__")[1][:-4] for m in r["masks"]} == present, r["relpath"]
        assert all(m.startswith(r["sop_instance_uid"] + "__") for m in r["masks"])
    assert listed == on_disk and on_disk
    assert {m.split("__")[1][:-4] for m in on_disk} == set(DEVICE_NAMES)  # the label column names, verbatim


def test_masks_are_binary_at_dicom_geometry_and_lie_on_bright_devices(demo_out, truth):
    from scipy.ndimage import binary_dilation, distance_transform_edt

    checked = 0
    for r in truth:
        if r["kind"] != "radiograph" or r["expected_state"] != "ok" or not r["masks"] or r["bare_dataset"]:
            continue
        shown = _display(read_dicom(demo_out / "archive" / r["relpath"]), retry=True)
        shown = (shown - shown.min()) / np.ptp(shown)
        for name in r["masks"]:
            m = np.asarray(Image.open(demo_out / "masks" / name))
            assert m.shape == (r["rows"], r["columns"]) and set(np.unique(m)) == {0, 255}
            mask = m > 0
            ring = binary_dilation(mask, iterations=4) & ~binary_dilation(mask, iterations=1)
            assert shown[mask].mean() > shown[ring].mean() + 0.15, name  # aligned: the mask covers the bright line
            # Thick enough to survive downsampling: at least ~1 % of the image width across.
            assert 2 * distance_transform_edt(mask).max() >= 0.009 * r["columns"], name
            small_img, small_mask = _downsample(shown), _downsample(mask.astype(np.float32))
            core = small_mask > 0.5
            if core.any():  # at 64 px the device is still brighter than its surroundings
                around = (_downsample(ring.astype(np.float32)) > 0.3) & ~core
                assert small_img[core].mean() > small_img[around].mean(), name
        checked += 1
    assert checked >= 5


def _render_pair(finding: Finding | None, device: Device | None, seed: int = 11):
    from radadapt.demo.phantom import render_chest

    base = render_chest((448, 384), "PA", ChestState(), np.random.default_rng(seed))[0]
    state = ChestState(findings={finding.name: finding} if finding else {},
                       devices={device.name: device} if device else {})
    return base, render_chest((448, 384), "PA", state, np.random.default_rng(seed))


def test_findings_are_visible_at_64_pixels():
    """Same patient, same seed, with and without the finding: the 64 px images differ over a sizeable area."""
    cases = [Finding("Pleural Effusion", "right", "small"), Finding("Consolidation", "left", zone="upper"),
             Finding("Nodule", "right", zone="mid"), Finding("Pneumothorax", "left"), Finding("Cardiomegaly")]
    for f in cases:
        base, (img, _m, geo) = _render_pair(f, None)
        diff = np.abs(_downsample(img) - _downsample(base))
        changed = (diff > 0.06).sum()
        assert changed >= 8, (f.name, changed)  # a nodule covers ~10 px at 64 px width, an effusion hundreds
        if f.name == "Cardiomegaly":
            assert geo["cardiothoracic_ratio"] > 0.5
        if f.name == "Pneumothorax":  # the lateral band is darker (air without lung markings)
            assert (img - base)[(img - base) < -0.05].size > 500
    _b, (_i, _m, normal) = _render_pair(None, None)
    assert normal["cardiothoracic_ratio"] < 0.5


def test_devices_draw_where_their_masks_are():
    for name in DEVICE_NAMES:
        base, (img, masks, _g) = _render_pair(None, Device(name, side="left", tip_cm=4.0))
        mask = masks[name]
        assert mask.any() and (img[mask] > 0.8).mean() > 0.9, name
        assert np.abs(img - base)[~mask].mean() < 0.02, name  # nothing else changed beyond noise


def test_malpositioned_ett_tip_lies_lower_than_a_well_placed_one():
    _b, (_i, ok, _g) = _render_pair(None, Device("endotracheal tube", tip_cm=4.0))
    _b, (_i, low, _g) = _render_pair(None, Device("endotracheal tube", position="malpositioned", tip_cm=None))
    rows_ok = np.nonzero(ok["endotracheal tube"].any(axis=1))[0]
    rows_low = np.nonzero(low["endotracheal tube"].any(axis=1))[0]
    assert rows_low.max() > rows_ok.max() + 0.05 * 448  # beyond the carina, in the right main bronchus
