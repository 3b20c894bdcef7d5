"""Lines, tubes and cardiac devices: paths in the canonical frame, drawn bright, each with its own mask.

Paths follow the usual courses (an ETT down the trachea to a few cm above the carina, or into the right main
bronchus when malpositioned; an enteric tube down the oesophagus and below the left hemidiaphragm into the
stomach; a right internal jugular or left subclavian central line to the cavoatrial region; a chest tube from
the lateral chest wall towards the apex; a pacemaker generator below the clavicle with leads to the right atrium
and ventricle). Widths are fractions of the image width, at least ~1 % (issue 3: learnable at 64-128 px).
The mask of a device is exactly the set of pixels painted for it.
"""

from __future__ import annotations

import numpy as np

from radadapt.demo.canvas import Canvas, Point
from radadapt.demo.truth import CM_PER_UNIT, Device

WIDTH = {  # fraction of the image width: real outer diameters over a ~35 cm wide chest, at least ~1 %
    "endotracheal tube": 0.022,  # 7-8 mm
    "enteric tube": 0.015,  # 5-6 mm (16-18 Fr)
    "central venous catheter": 0.013,
    "chest tube": 0.022,
    "cardiac device": 0.012,  # leads; the generator is a polygon
}
TOP = -1.7  # above any field of view: lines enter from outside the image


def draw_devices(
    cv: Canvas, img: np.ndarray, devices: dict[str, Device], *, lateral: bool, geo: dict, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Paint every device into ``img`` (in place) and return its binary mask, keyed by device name."""
    masks: dict[str, np.ndarray] = {}
    width_px = cv.shape[1]
    for name in sorted(devices):
        dev = devices[name]
        paths, polygons = (_lateral_paths if lateral else _frontal_paths)(dev, geo, rng)
        mask = np.zeros(cv.shape, dtype=bool)
        for pts in paths:
            mask |= cv.polyline_mask(pts, WIDTH[name] * width_px)
        for poly in polygons:
            mask |= cv.polygon_mask(poly)
        level = 1.0 if name == "cardiac device" else float(rng.uniform(0.90, 0.97))
        np.maximum(img, np.where(mask, np.float32(level), np.float32(0.0)), out=img)
        masks[name] = mask
    return masks


def _frontal_paths(dev: Device, geo: dict, rng: np.random.Generator) -> tuple[list[list[Point]], list[list[Point]]]:
    carina = geo["carina"]
    dome_left = geo["domes"][1.0]
    j = lambda: float(rng.uniform(-0.015, 0.015))  # noqa: E731 - small per-image jitter of control points
    s = 1.0 if dev.side == "left" else -1.0
    if dev.name == "endotracheal tube":
        if dev.tip_cm is None:  # past the carina into the right main bronchus
            return [[(0.01, TOP), (0.0 + j(), -1.0), (0.0, carina - 0.05), (-0.13, carina + 0.11)]], []
        tip = carina - dev.tip_cm / CM_PER_UNIT
        return [[(0.01, TOP), (0.0 + j(), -1.0), (0.0, tip)]], []
    if dev.name == "enteric tube":
        return [[(0.05, TOP), (0.035 + j(), -0.9), (0.05, -0.3), (0.08 + j(), 0.2), (0.15, dome_left + 0.07),
                 (0.32 + j(), dome_left + 0.19), (0.46, dome_left + 0.24)]], []
    if dev.name == "central venous catheter":
        if s < 0:  # right internal jugular
            return [[(-0.33, TOP), (-0.26 + j(), -1.0), (-0.13, -0.72), (-0.09 + j(), -0.40), (-0.07, -0.10)]], []
        return [[(1.1, -0.98), (0.62 + j(), -0.83), (0.25, -0.74), (0.0 + j(), -0.58), (-0.07, -0.38),
                 (-0.07, -0.10)]], []
    if dev.name == "chest tube":
        return [[(s * 1.15, 0.34), (s * 0.80, 0.24 + j()), (s * 0.70, -0.10), (s * 0.57 + j(), -0.46),
                 (s * 0.42, -0.63)]], []
    if dev.name == "cardiac device":
        gx, gy = s * 0.60, -0.76
        box = _rotated_box(gx, gy, 0.09, 0.065, degrees=float(rng.uniform(-20, 20)))
        via = [(gx - s * 0.05, gy + 0.02), (s * 0.30, -0.73), (s * 0.10 + j(), -0.62), (-0.04, -0.36), (-0.08, -0.05)]
        hx, hw = geo["heart"]
        ra = via + [(-0.12, 0.06), (-0.05, 0.0)]
        rv = via + [(-0.02, 0.25 + j()), (hx + 0.45 * hw, 0.36)]
        return [ra, rv], [box]
    raise ValueError(dev.name)


def _lateral_paths(dev: Device, geo: dict, rng: np.random.Generator) -> tuple[list[list[Point]], list[list[Point]]]:
    carina = geo["carina"]
    dome = geo["domes"][1.0]
    j = lambda: float(rng.uniform(-0.015, 0.015))  # noqa: E731
    if dev.name == "endotracheal tube":
        tip = carina + 0.08 if dev.tip_cm is None else carina - dev.tip_cm / CM_PER_UNIT
        return [[(-0.11, TOP), (-0.07 + j(), -1.0), (-0.01, tip)]], []
    if dev.name == "enteric tube":
        return [[(0.06, TOP), (0.12 + j(), -0.8), (0.18, 0.2), (0.10 + j(), dome + 0.12), (-0.15, dome + 0.26)]], []
    if dev.name == "central venous catheter":
        return [[(-0.22, TOP), (-0.13 + j(), -0.8), (-0.10, -0.15)]], []
    if dev.name == "chest tube":
        return [[(0.62, 0.62), (0.42 + j(), 0.1), (0.22, -0.55)]], []
    if dev.name == "cardiac device":
        box = _rotated_box(-0.62, -0.62, 0.065, 0.09, degrees=float(rng.uniform(-15, 15)))
        via = [(-0.58, -0.56), (-0.40 + j(), -0.52), (-0.16, -0.30), (-0.20, 0.02)]
        return [via + [(-0.30, 0.10)], via + [(-0.36, 0.34 + j())]], [box]
    raise ValueError(dev.name)


def _rotated_box(cx: float, cy: float, hx: float, hy: float, degrees: float) -> list[Point]:
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    corners = [(-hx, -hy), (hx, -hy), (hx, hy), (-hx, hy)]
    return [(cx + c * a - s * b, cy + s * a + c * b) for a, b in corners]
