"""Non-chest radiographs (hand, knee, pelvis): clearly not a chest, so a cheap image check can tell.

Real archives mix other radiographs into the same CR/DX series, often with chest-like tags (issue 3). These
phantoms share the chest's display space, exposure and noise (``phantom.expose``, ``add_noise``) but have no lungs: bones on soft
tissue, with large air margins around a hand or knee.
"""

from __future__ import annotations

import numpy as np

from radadapt.demo.canvas import Canvas, capsule_sd, ellipse_sd, soft, upsample
from radadapt.demo.phantom import add_noise, expose, random_pose

BODY_PARTS = ("hand", "knee", "pelvis")


def render_body_part(part: str, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    cv = Canvas(shape, random_pose(rng, degrees=8.0)).coarse()
    img = {"hand": _hand, "knee": _knee, "pelvis": _pelvis}[part](cv, rng)
    return add_noise(upsample(expose(img, rng), shape), rng)


def _bone(img: np.ndarray, sd: np.ndarray, level: float = 0.42) -> np.ndarray:
    """A bone with a brighter cortex rim (the cortical shell is what makes bones look like bones)."""
    body = soft(sd, 0.012)
    cortex = soft(np.abs(sd + 0.012) - 0.008, 0.006)
    return img + body * level + cortex * 0.18


def _hand(cv: Canvas, rng: np.random.Generator) -> np.ndarray:
    x, y = cv.x, cv.y
    img = np.full(cv.shape, 0.04, dtype=np.float32)
    palm = ellipse_sd(x, y, 0.0, 0.35, 0.42, 0.38)
    forearm = capsule_sd(x, y, (0.0, 0.6), (0.0, 1.6), 0.36)
    fingers = []
    for k, ang in enumerate(np.linspace(-0.55, 0.35, 5)):
        base = (-0.30 + 0.15 * k, 0.05) if k else (-0.38, 0.35)
        length = 0.95 if k in (2, 3) else 0.8 if k in (1, 4) else 0.55
        tip = (base[0] + np.sin(ang) * length, base[1] - np.cos(ang) * length)
        fingers.append((base, tip))
    soft_tissue = np.minimum(np.minimum(palm, forearm), np.min([capsule_sd(x, y, b, t, 0.085) for b, t in fingers], axis=0))
    img += soft(soft_tissue, 0.02) * 0.26
    for base, tip in fingers:  # metacarpal + 3 phalanges with joint gaps
        mc_start = (base[0] * 0.6, 0.62)
        pts = [mc_start, base] + [tuple(np.add(base, np.multiply(np.subtract(tip, base), f))) for f in (0.45, 0.75, 0.97)]
        for a, b in zip(pts[:-1], pts[1:]):
            gap = 0.03
            v = np.subtract(b, a)
            n = np.linalg.norm(v)
            a2 = tuple(np.add(a, v * gap / n))
            b2 = tuple(np.subtract(b, v * gap / n))
            img = _bone(img, capsule_sd(x, y, a2, b2, 0.045))
    for cx, cy in [(-0.2, 0.72), (-0.06, 0.7), (0.08, 0.71), (0.2, 0.74), (-0.13, 0.84), (0.03, 0.85), (0.17, 0.86)]:
        img = _bone(img, ellipse_sd(x, y, cx, cy, 0.065, 0.055), 0.36)  # carpal bones
    img = _bone(img, capsule_sd(x, y, (-0.15, 0.98), (-0.16, 1.6), 0.11))  # radius
    img = _bone(img, capsule_sd(x, y, (0.17, 1.0), (0.17, 1.6), 0.07))  # ulna
    return img


def _knee(cv: Canvas, rng: np.random.Generator) -> np.ndarray:
    x, y = cv.x, cv.y
    img = np.full(cv.shape, 0.04, dtype=np.float32)
    img += soft(np.abs(x) - 0.62 - 0.04 * np.cos(3 * y), 0.03) * 0.28
    femur = np.minimum(capsule_sd(x, y, (0.0, -2.0), (0.0, -0.25), 0.2), ellipse_sd(x, y, 0.0, -0.1, 0.42, 0.2))
    img = _bone(img, femur)
    tibia = np.minimum(capsule_sd(x, y, (-0.02, 0.35), (-0.02, 2.0), 0.19), ellipse_sd(x, y, -0.02, 0.24, 0.44, 0.12))
    img = _bone(img, tibia)
    img = _bone(img, capsule_sd(x, y, (0.38, 0.32), (0.33, 2.0), 0.055))  # fibula
    img = _bone(img, ellipse_sd(x, y, 0.02, -0.16, 0.16, 0.2), 0.15)  # patella through the femur
    return img


def _pelvis(cv: Canvas, rng: np.random.Generator) -> np.ndarray:
    x, y = cv.x, cv.y
    img = np.full(cv.shape, 0.04, dtype=np.float32)
    img += soft(np.abs(x) - 1.1, 0.03) * 0.34
    ax = np.abs(x)
    for i in range(2):  # lower lumbar vertebrae
        img = _bone(img, ellipse_sd(x, y, 0.0, -0.78 + 0.2 * i, 0.17, 0.08), 0.3)
    img = _bone(img, ellipse_sd(x, y, 0.0, -0.28, 0.2, 0.26), 0.3)  # sacrum
    img = _bone(img, ellipse_sd(ax, y, 0.48, -0.35, 0.3, 0.32), 0.3)  # iliac wings
    ring = np.abs(ellipse_sd(x, y, 0.0, 0.05, 0.42, 0.33)) - 0.05
    img = _bone(img, ring, 0.3)
    img -= 0.25 * soft(ellipse_sd(ax, y, 0.24, 0.38, 0.1, 0.08), 0.02)  # obturator foramina
    img = _bone(img, ellipse_sd(ax, y, 0.68, 0.22, 0.13, 0.13))  # femoral heads
    img = _bone(img, capsule_sd(ax, y, (0.7, 0.25), (0.85, 0.45), 0.08))  # necks
    img = _bone(img, capsule_sd(ax, y, (0.86, 0.4), (0.9, 1.5), 0.12))  # shafts
    return np.clip(img, 0.0, 1.0)
