"""Geometry for the phantoms: a canonical patient frame, soft shapes on it, and rasterised device lines.

Every phantom is drawn in a *canonical frame*: x runs across the image (-1 at the left edge of the
field of view, +1 at the right edge before jitter), y runs down, one unit being half the image width. A
per-image pose (scale, shift, rotation) maps the canonical frame to pixels. Anatomy is evaluated on the
inverse-mapped pixel grid; device lines are mapped forward and drawn with Pillow. Both use the same pose, so
a device mask lies exactly on the device drawn into the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

Point = tuple[float, float]


@dataclass(frozen=True)
class Pose:
    """Where the patient sits in the field of view: scale, shift (canonical units) and rotation (degrees)."""

    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0
    degrees: float = 0.0


class Canvas:
    """A pixel grid of ``shape`` (rows, cols) with canonical coordinates ``x``, ``y`` under ``pose``."""

    def __init__(self, shape: tuple[int, int], pose: Pose = Pose(), step: int = 1):
        self.full_shape = shape
        self.shape = (-(-shape[0] // step), -(-shape[1] // step))  # the grid: one sample per step x step block
        self.step = step
        self.pose = pose
        self._half = shape[1] / 2.0
        self.px_per_unit = self._half * pose.scale  # full-resolution pixels per canonical unit
        self._xy: tuple[np.ndarray, np.ndarray] | None = None

    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        if self._xy is None:  # lazily: a canvas used only to draw devices never needs the grid
            rows, _cols = self.full_shape
            half, pose, step = self._half, self.pose, self.step
            # Sample k sits at the centre of full-resolution block k: pixel coordinate step*k + step/2.
            c = (step * np.arange(self.shape[1], dtype=np.float32) + step / 2 - half) / half - pose.dx
            r = (step * np.arange(self.shape[0], dtype=np.float32) + step / 2 - rows / 2.0) / half - pose.dy
            px, py = np.meshgrid(c, r)
            t = np.deg2rad(pose.degrees)
            cos, sin = np.float32(np.cos(t)), np.float32(np.sin(t))
            # Inverse rotation then inverse scale: canonical = R(-t) (p - shift) / scale.
            self._xy = ((cos * px + sin * py) / pose.scale, (-sin * px + cos * py) / pose.scale)
        return self._xy

    @property
    def x(self) -> np.ndarray:
        return self._grid()[0]

    @property
    def y(self) -> np.ndarray:
        return self._grid()[1]

    def coarse(self) -> "Canvas":
        """The same pose sampled on 2x2 blocks (smooth anatomy is drawn there, 4x cheaper; see ``upsample``)."""
        return Canvas(self.full_shape, self.pose, step=2)

    def to_pixels(self, points: Sequence[Point]) -> list[tuple[float, float]]:
        """Canonical points to (col, row) pixel coordinates (Pillow's order)."""
        p = self.pose
        t = np.deg2rad(p.degrees)
        cos, sin = np.cos(t), np.sin(t)
        rows, _cols = self.full_shape
        out = []
        for x, y in points:
            qx = (cos * x - sin * y) * p.scale + p.dx
            qy = (sin * x + cos * y) * p.scale + p.dy
            out.append((qx * self._half + self._half - 0.5, qy * self._half + rows / 2.0 - 0.5))
        return out

    def polyline_mask(self, points: Sequence[Point], width_px: float) -> np.ndarray:
        """A binary mask of a smooth polyline through ``points`` (canonical), ``width_px`` pixels thick."""
        from PIL import Image, ImageDraw

        rows, cols = self.full_shape
        img = Image.new("L", (cols, rows), 0)
        draw = ImageDraw.Draw(img)
        pts = self.to_pixels(smooth_path(points))
        w = max(2, int(round(width_px)))
        draw.line(pts, fill=255, width=w, joint="curve")
        r = w / 2.0  # round caps: Pillow leaves line ends square
        for cx, cy in (pts[0], pts[-1]):
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        return np.asarray(img) > 0

    def polygon_mask(self, points: Sequence[Point]) -> np.ndarray:
        from PIL import Image, ImageDraw

        rows, cols = self.full_shape
        img = Image.new("L", (cols, rows), 0)
        ImageDraw.Draw(img).polygon(self.to_pixels(points), fill=255)
        return np.asarray(img) > 0


def smooth_path(points: Sequence[Point], per_segment: int = 12) -> list[Point]:
    """A Catmull-Rom spline through ``points`` (so tubes curve instead of kinking)."""
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 3:
        return [tuple(p) for p in pts]
    ext = np.vstack([2 * pts[0] - pts[1], pts, 2 * pts[-1] - pts[-2]])
    out: list[Point] = []
    t = np.linspace(0.0, 1.0, per_segment, endpoint=False)[:, None]
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        seg = 0.5 * (
            2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
        )
        out.extend(tuple(q) for q in seg)
    out.append(tuple(pts[-1]))
    return out


# -- soft shapes on coordinate arrays: each returns a signed distance (negative inside), canonical units ----------
def soft(signed_distance: np.ndarray, edge: float) -> np.ndarray:
    """Coverage in [0, 1] from a signed distance; ``edge`` is the blur width in canonical units (anti-aliasing)."""
    return np.clip(0.5 - signed_distance / max(edge, 1e-6), 0.0, 1.0).astype(np.float32)


def ellipse_sd(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (exact on the axes, good enough for soft edges)."""
    return (np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2) - 1.0) * min(ax, ay)


def superellipse_sd(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Approximate signed distance to the superellipse |u|^3 + |v|^3 = 1 (boxier than an ellipse, like a lung).

    The exponent is fixed at 3 so that only multiplications and a cube root are needed (no float ``pow``).
    """
    u = np.abs((x - cx) / ax)
    v = np.abs((y - cy) / ay)
    return (np.cbrt(u * u * u + v * v * v) - 1.0) * min(ax, ay)


def capsule_sd(x: np.ndarray, y: np.ndarray, a: Point, b: Point, radius: float) -> np.ndarray:
    """Signed distance to the segment ``a``-``b`` thickened by ``radius`` (a bone shaft, a finger, a bronchus)."""
    ax, ay = a
    vx, vy = b[0] - ax, b[1] - ay
    wx, wy = x - ax, y - ay
    t = np.clip((wx * vx + wy * vy) / max(vx * vx + vy * vy, 1e-12), 0.0, 1.0)
    return np.hypot(wx - t * vx, wy - t * vy) - radius


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """Zero-mean, roughly unit-variance smooth noise: a coarse Gaussian grid upsampled bilinearly (Pillow, fast).

    ``cell`` is the feature size in pixels.
    """
    from PIL import Image

    rows, cols = shape
    coarse = rng.standard_normal((max(2, rows // cell + 2), max(2, cols // cell + 2))).astype(np.float32)
    up = Image.fromarray(coarse, mode="F").resize((cols, rows), Image.BILINEAR)
    return np.asarray(up, dtype=np.float32)


def upsample(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear 2x upsampling of a ``Canvas.coarse()`` image to ``shape`` (rows, cols), pixel centres aligned.

    Full pixel i lies at coarse position i/2 - 1/4: even i mixes its block with the previous one 3:1, odd i
    with the next one 3:1 (edges clamp).
    """
    def double(a: np.ndarray, axis: int) -> np.ndarray:
        a = np.moveaxis(a, axis, 0)
        prev = np.concatenate([a[:1], a[:-1]])
        nxt = np.concatenate([a[1:], a[-1:]])
        out = np.empty((2 * a.shape[0],) + a.shape[1:], dtype=np.float32)
        out[0::2] = 0.75 * a + 0.25 * prev
        out[1::2] = 0.75 * a + 0.25 * nxt
        return np.moveaxis(out, 0, axis)

    up = double(double(img.astype(np.float32, copy=False), 0), 1)
    return np.ascontiguousarray(up[: shape[0], : shape[1]])
