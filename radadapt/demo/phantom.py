"""Chest radiograph phantoms (frontal PA/AP and lateral) with planted findings and devices.

An image is built in display space: float32 in [0, 1], bright = dense (bone, metal), dark = air. The pixel
module (``pixelmodule.py``) later turns it into stored values (MONOCHROME1/2, LUTs, bit depths).

The findings are deliberately conspicuous so that a tiny model trained at 64-128 px can learn them (issue 3):
effusions and consolidations cover a large part of a hemithorax and are much denser than lung, a nodule has a
radius of 4-5 % of the image width, a pneumothorax leaves a wide dark band without lung markings
lateral to a visible pleural line, and cardiomegaly means a cardiothoracic ratio of 0.55-0.62 (normal
0.36-0.45). Device lines are bright and at least ~1 % of the image width thick (``devices.py``).
"""

from __future__ import annotations

import numpy as np

from radadapt.demo.canvas import Canvas, Pose, capsule_sd, ellipse_sd, smooth_noise, soft, superellipse_sd, upsample
from radadapt.demo.devices import draw_devices
from radadapt.demo.truth import ChestState, Finding

THORAX_HALF_WIDTH = 0.80  # inner rib cage half-width, canonical units: the CTR denominator is 1.6


def random_pose(rng: np.random.Generator, degrees: float = 4.0) -> Pose:
    return Pose(
        scale=float(rng.uniform(0.90, 1.0)),
        dx=float(rng.uniform(-0.04, 0.04)),
        dy=float(0.10 + rng.uniform(-0.04, 0.04)),  # the thorax sits a little below the centre of the field
        degrees=float(rng.uniform(-degrees, degrees)),
    )


def expose(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure and contrast variation, as between detectors, patients and technologists (before upsampling)."""
    rows = img.shape[0]
    gamma = rng.uniform(0.85, 1.2)
    gain = rng.uniform(0.85, 1.05)
    offset = rng.uniform(-0.02, 0.05)
    heel = np.linspace(-1.0, 1.0, rows, dtype=np.float32)[:, None] * np.float32(rng.uniform(-0.04, 0.04))
    return (gain * np.clip(img, 0.0, 1.0) ** gamma + offset + heel).astype(np.float32)


def add_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Quantum noise at full resolution, then clipping to the display range."""
    sigma = np.float32(rng.uniform(0.006, 0.016))
    img += sigma * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img, 0.0, 1.0, out=img)


def render_chest(
    shape: tuple[int, int], view: str, state: ChestState, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """A chest radiograph of ``view`` (PA, AP or LATERAL) showing ``state``.

    Returns the display image, a binary mask per planted device, and geometry facts for the ground truth
    (cardiothoracic ratio, finding placement).
    """
    # Separate streams: the same seed gives the same patient, exposure and noise whatever is planted, so a
    # finding or device is the only difference between two renders (tests rely on this).
    device_rng, finish_rng = (np.random.default_rng(s) for s in rng.integers(0, 2**63, size=2))
    cv = Canvas(shape, random_pose(rng))
    coarse = cv.coarse()  # anatomy and findings are smooth: draw them at half resolution
    if view == "LATERAL":
        img, geo = _lateral(coarse, state, rng)
    else:
        img, geo = _frontal(coarse, state, rng, portable=(view == "AP"))
    img = upsample(expose(img, finish_rng), shape)
    masks = draw_devices(cv, img, state.devices, lateral=(view == "LATERAL"), geo=geo, rng=device_rng)
    return add_noise(img, finish_rng), masks, {"cardiothoracic_ratio": round(geo["ctr"], 3)}


def _sign(side: str) -> float:
    return 1.0 if side == "left" else -1.0


def _sides(finding: Finding) -> list[float]:
    return [1.0, -1.0] if finding.side == "bilateral" else [_sign(finding.side)]


def _heart_half_width(state: ChestState, rng: np.random.Generator) -> float:
    ctr = rng.uniform(0.55, 0.62) if "Cardiomegaly" in state.findings else rng.uniform(0.36, 0.45)
    return float(ctr * THORAX_HALF_WIDTH)


# -- frontal ---------------------------------------------------------------------------------------------------
def _lung_sd(xs: np.ndarray, y: np.ndarray, dome: float) -> np.ndarray:
    """One lung in side-mirrored coordinates (xs > 0 lateral): a boxy ellipse cut by the hemidiaphragm."""
    body = superellipse_sd(xs, y, 0.44, -0.10, 0.36, 0.78)
    return np.maximum(body, y - (dome + 1.3 * (xs - 0.42) ** 2))


def _frontal(cv: Canvas, state: ChestState, rng: np.random.Generator, portable: bool) -> tuple[np.ndarray, dict]:
    x, y = cv.x, cv.y
    shape = cv.shape
    img = np.full(shape, 0.03, dtype=np.float32)
    lift = 0.05 if portable else 0.0  # AP supine films: poorer inspiration, higher clavicles
    domes = {1.0: 0.50 - lift + rng.uniform(-0.03, 0.03), -1.0: 0.44 - lift + rng.uniform(-0.03, 0.03)}

    # Body outline with neck and sloping shoulders; soft tissue grey.
    ax = np.abs(x)
    top = np.where(ax < 0.26, -2.0, -0.98 + 0.22 * (ax - 0.26))
    body = soft(np.maximum(ax - (0.97 + 0.04 * y), top - y), 0.03)
    img += body * 0.31
    # Mediastinum (dense) and abdomen below the hemidiaphragms.
    img = _over(img, soft(ax - 0.14, 0.03) * body, 0.50)
    dome_at = np.where(x > 0, domes[1.0], domes[-1.0])
    abdomen = soft(dome_at + 1.3 * (ax - 0.42) ** 2 - y, 0.03) * body
    img = _over(img, abdomen, 0.50)
    img = _over(img, soft(ellipse_sd(x, y, 0.40, domes[1.0] + 0.17, 0.11, 0.06), 0.02), 0.20)  # gastric bubble

    # Lungs with vascular markings densest at the hila.
    tex = smooth_noise(rng, shape, max(3, shape[1] // 48))
    lungs: dict[float, np.ndarray] = {}
    for s in (1.0, -1.0):
        xs = s * x
        cover = soft(_lung_sd(xs, y, domes[s]), 0.02)
        hilum = np.exp(-((xs - 0.22) ** 2 + (y + 0.12) ** 2) / 0.12)
        value = 0.17 + 0.09 * hilum + 0.05 * tex * (0.5 + hilum)
        img = img * (1 - cover) + cover * value
        lungs[s] = cover

    # Airway: trachea and main bronchi (air inside the mediastinum).
    carina = -0.30 + rng.uniform(-0.03, 0.03)
    air = soft(capsule_sd(x, y, (0.0, -1.5), (0.0, carina), 0.04), 0.01)
    for s in (1.0, -1.0):
        air = np.maximum(air, soft(capsule_sd(x, y, (0.0, carina), (s * 0.20, carina + 0.16), 0.028), 0.01))
    img = _over(img, air, 0.27)

    # Findings that live in the lungs, before the heart and bones are laid over them.
    for f in state.findings.values():
        if f.name == "Pneumothorax":
            img = _pneumothorax(img, x, y, _sign(f.side), domes, lungs)
        elif f.name == "Pleural Effusion":
            for s in _sides(f):
                img = _effusion(img, s * x, y, domes[s], lungs[s], f)

    # Heart and aortic knob, then the opacities that add density (so a retrocardiac one still shows).
    hw = _heart_half_width(state, rng)
    hx = 0.05 + 0.3 * (hw - 0.32)
    img = _over(img, soft(ellipse_sd(x, y, hx, 0.24 - lift / 2, hw, 0.28), 0.03), 0.52)
    img = _over(img, soft(ellipse_sd(x, y, 0.15, -0.42, 0.07, 0.06), 0.02), 0.50)
    for f in state.findings.values():
        if f.name == "Consolidation":
            img = _consolidation(img, x, y, f, lungs[_sign(f.side)], rng, shape)
        elif f.name == "Nodule":
            s = _sign(f.side)
            cy = {"upper": -0.5, "mid": -0.27, "lower": -0.1}[f.zone] + rng.uniform(-0.05, 0.05)
            r = rng.uniform(0.08, 0.105) / cv.pose.scale
            nod = soft(ellipse_sd(x, y, s * rng.uniform(0.45, 0.58), cy, r, r), 0.012)
            img = img + nod * 0.42

    # Bones, added on top so they show through soft tissue: spine, ribs, clavicles, scapulae, humeral heads.
    spine = soft(ax - 0.075, 0.02) * body
    img += spine * (0.10 + 0.06 * (np.cos(2 * np.pi * y / 0.115) > 0.75))
    # Both sides at once (the skeleton is mirror-symmetric): each pixel is scored against its nearest rib.
    lateral = soft(np.abs(ax - 0.46) - 0.40, 0.03)
    img += 0.10 * _rib_bands(y, -0.80 - lift - 0.22 * (ax - 0.1) + 0.5 * (ax - 0.1) ** 2, 0.024) * lateral
    img += 0.045 * _rib_bands(y, -0.50 - lift + 0.30 * (0.82 - ax), 0.02) * lateral * (ax > 0.35)
    cy = -0.84 - 1.5 * lift
    clav = np.minimum(capsule_sd(ax, y, (0.08, cy), (0.36, cy - 0.03), 0.03),
                      capsule_sd(ax, y, (0.36, cy - 0.03), (0.68, cy - 0.12), 0.028))
    img += 0.16 * soft(clav, 0.01)
    img += (0.07 if portable else 0.035) * soft(ellipse_sd(ax, y, 0.80, -0.58, 0.15, 0.28), 0.04)
    img += 0.22 * soft(ellipse_sd(ax, y, 0.98, -0.92, 0.13, 0.13), 0.02) * body

    geo = {"ctr": 2 * hw / (2 * THORAX_HALF_WIDTH), "carina": carina, "domes": domes, "heart": (hx, hw)}
    return img, geo


def _rib_bands(y: np.ndarray, first: np.ndarray, half_width: float, n: int = 10, gap: float = 0.125) -> np.ndarray:
    """Coverage of ``n`` parallel rib bands, the first centred on ``first``, ``gap`` apart (nearest band only)."""
    i = np.clip(np.rint((y - first) / gap), 0, n - 1)
    return soft(np.abs(y - first - gap * i) - half_width, 0.012)


def _over(img: np.ndarray, cover: np.ndarray, value: float) -> np.ndarray:
    return img * (1 - cover) + cover * value


def _effusion(img, xs, y, dome, lung, f: Finding):
    h = {"small": 0.27, "moderate": 0.38, "large": 0.52}[f.size]
    meniscus = dome + 0.19 - h - 0.25 * np.clip(xs - 0.1, 0.0, None)
    cover = lung * soft(meniscus - y, 0.04) * 0.95
    return _over(img, cover, 0.52)


def _consolidation(img, x, y, f: Finding, lung, rng, shape):
    s = _sign(f.side)
    cy = {"upper": -0.45, "mid": -0.15, "lower": 0.12}[f.zone] + rng.uniform(-0.04, 0.04)
    sd = ellipse_sd(x, y, s * rng.uniform(0.44, 0.52), cy, rng.uniform(0.18, 0.23), rng.uniform(0.15, 0.2))
    patch = smooth_noise(rng, shape, max(4, shape[1] // 24))
    cover = soft(sd + 0.035 * patch, 0.05) * lung
    return img + cover * (0.27 + 0.04 * patch)


def _pneumothorax(img, x, y, s, domes, lungs):
    """Collapse the lung towards its hilum: air without markings laterally, a thin bright visceral pleural line."""
    xs = s * x
    f = 0.70
    hx, hy = 0.22, -0.10
    collapsed_sd = _lung_sd(hx + (xs - hx) / f, hy + (y - hy) / f, domes[s] + 0.3) * f
    upper = soft(y - (domes[s] - 0.05), 0.05)
    lung = lungs[s]
    space = lung * (1 - soft(collapsed_sd, 0.01)) * upper
    img = img * (1 - space) + space * 0.045
    img = img + lung * soft(collapsed_sd, 0.01) * upper * 0.04  # the collapsed lung is denser
    line = lung * upper * soft(np.abs(collapsed_sd) - 0.009, 0.006)
    return img + line * 0.24


# -- lateral ---------------------------------------------------------------------------------------------------
def _lateral(cv: Canvas, state: ChestState, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A left lateral: anterior to the viewer's left, spine on the right. Pneumothorax is not shown (truth 0)."""
    x, y = cv.x, cv.y
    shape = cv.shape
    img = np.full(shape, 0.03, dtype=np.float32)
    body = soft(np.maximum(np.abs(x - 0.02) - 0.86, -1.3 - y), 0.03)
    img += body * 0.34
    dome = 0.40 + rng.uniform(-0.03, 0.03)
    diaphragm = dome + 0.25 * (x + 0.3) ** 2
    img = _over(img, soft(diaphragm - y, 0.03) * body, 0.50)
    tex = smooth_noise(rng, shape, max(3, shape[1] // 48))
    lung = soft(np.maximum(superellipse_sd(x, y, -0.02, -0.08, 0.64, 0.74), y - diaphragm), 0.02)
    img = _over(img, lung, 0.0) + lung * (0.16 + 0.03 * tex)
    carina = -0.30 + rng.uniform(-0.03, 0.03)
    img = _over(img, soft(capsule_sd(x, y, (-0.08, -1.5), (0.02, carina), 0.045), 0.01), 0.26)
    for f in state.findings.values():
        if f.name == "Pleural Effusion":  # posterior costophrenic meniscus
            h = {"small": 0.22, "moderate": 0.34, "large": 0.48}[f.size]
            meniscus = dome + 0.2 - h - 0.2 * np.clip(x, 0.0, None)
            img = _over(img, lung * soft(meniscus - y, 0.04) * 0.9, 0.50)
    hw = _heart_half_width(state, rng)
    img = _over(img, soft(ellipse_sd(x, y, -0.22, 0.18, hw * 0.75, 0.28), 0.03), 0.50)
    for f in state.findings.values():
        if f.name == "Consolidation":
            cy = {"upper": -0.45, "mid": -0.15, "lower": 0.12}[f.zone]
            patch = smooth_noise(rng, shape, max(4, shape[1] // 24))
            img += soft(ellipse_sd(x, y, 0.1, cy, 0.24, 0.17) + 0.035 * patch, 0.05) * lung * 0.27
        elif f.name == "Nodule":
            r = rng.uniform(0.08, 0.105) / cv.pose.scale
            cy = {"upper": -0.5, "mid": -0.25, "lower": -0.05}[f.zone]
            img += soft(ellipse_sd(x, y, rng.uniform(-0.1, 0.25), cy, r, r), 0.012) * 0.42
    spine = soft(np.abs(x - 0.60) - 0.09, 0.02) * body
    img += spine * (0.16 + 0.10 * (np.cos(2 * np.pi * y / 0.12) > 0.6))
    img += 0.12 * soft(np.abs(x + 0.70) - 0.035, 0.01) * soft(np.abs(y + 0.3) - 0.45, 0.02)  # sternum
    for i in range(9):
        rib = -0.75 + 0.14 * i + 0.25 * (x - 0.6)
        img += 0.05 * soft(np.abs(y - rib) - 0.02, 0.012) * soft(np.abs(x - 0.25) - 0.4, 0.05)
    geo = {"ctr": 2 * hw / (2 * THORAX_HALF_WIDTH), "carina": carina, "domes": {1.0: dome, -1.0: dome},
           "heart": (-0.22, hw * 0.75)}
    return img, geo
