"""The pixel pipeline: stored values -> one uint8 image at the store resolution, every step recorded.

Order (PS3.4 N.2; research/dicom_ingest.md section 1), each step a pydicom function where one exists:

1. decode frame 0 (``dicomio.decode_first_frame``): stored values;
2. Modality LUT Sequence, else Rescale Slope/Intercept (``apply_modality_lut``, PS3.3 C.11.1);
3. VOI: VOI LUT Sequence item 0, else window 0 honouring VOI LUT Function LINEAR / LINEAR_EXACT / SIGMOID
   (``apply_voi_lut(index=0, prefer_lut=True)``, PS3.3 C.11.2);
4. invert iff Photometric Interpretation is MONOCHROME1 (PS3.3 C.7.6.3.1.2), against the VOI output range; a
   Presentation LUT Shape that disagrees (MONOCHROME2 + INVERSE, MONOCHROME1 + IDENTITY) is recorded as
   ``polarity_conflict`` and otherwise ignored (viewers that trust it double-invert, e.g. Weasis #620);
5. QC: a VOI whose output is flat (1st-99th percentile spread under ``MIN_SPREAD`` of its range) hides the
   image (a measured trap: a header window lying entirely below the data); the image is retried without VOI
   (reason ``ok_voi_retry``) and quarantined as ``degenerate_image`` if still flat;
6. normalise to [0, 255]: the VOI output range (window: pydicom's y_min..y_max; LUT: its data's min..max), or,
   without VOI, the 0.5th-99.5th percentiles of the modality output over non-padding pixels;
7. resize once so the short side equals the store resolution (aspect kept, rows stay rows), Lanczos in float
   with Pillow's ``reducing_gap=2.0``; then round to uint8. Pixel Padding Value / Range Limit pixels (PS3.3
   C.7.5.1.1.2) are left out of every statistic and drawn black.

Steps 2-6 are pointwise, so they are evaluated once per possible stored value (at most 65536 for the 8/16-bit
data radiographs use) with pydicom's own functions, and the image is mapped through the resulting table; the
statistics come from a histogram of a strided subsample. Same result as applying the functions to the image,
a fraction of the cost (docs/ingest.md, "Speed").
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

MIN_SPREAD = 0.02  # VOI output 1st-99th percentile spread below 2 % of its range = a flattening window
MIN_LEVELS = 4  # fewer distinct non-padding values than this = nothing to see
HIST_PIXELS = 1 << 18  # statistics from a strided subsample of about this many pixels (exact enough, 10x cheaper)
NO_VOI_PERCENTILES = (0.5, 99.5)


class DegenerateImage(Exception):
    """The image carries no usable contrast even without VOI (quarantine ``degenerate_image``)."""


@dataclass
class Rendered:
    image: np.ndarray  # uint8 (height, width), short side == resolution
    steps: list[str] = field(default_factory=list)
    reason: str = "ok"  # ok | ok_voi_retry
    pixel_hash: str = ""  # of the stored values (dedupe by content, whatever the headers say)


def pixel_hash(stored: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{stored.dtype.str}:{stored.shape}".encode())
    h.update(np.ascontiguousarray(stored).data)
    return h.hexdigest()[:32]


def target_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """(height, width) with the short side == resolution and the aspect ratio kept."""
    if height <= width:
        return resolution, max(1, round(width * resolution / height))
    return max(1, round(height * resolution / width)), resolution


def render(stored: np.ndarray, ds: Dataset, resolution: int) -> Rendered:
    """Run steps 2-7 on one decoded frame. Raises ``DegenerateImage``."""
    if stored.ndim != 2:
        raise ValueError("render expects one single-sample frame")
    out = Rendered(image=np.empty((0, 0), np.uint8), steps=["decode:frame0"], pixel_hash=pixel_hash(stored))
    domain, index = _domain(stored)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on float VOI input and sigmoid overflow; both are expected
        table = _table(domain, index, stored, ds, out.steps, out)
    image = np.take(table, index) if index is not None else table
    out.image = resize_u8(image, resolution)
    short = min(stored.shape)
    out.steps.append("resize:" + ("none" if short == resolution else "lanczos:up" if short < resolution else "lanczos:down"))
    return out


def _domain(stored: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Every value the stored dtype can hold, ordered so ``table[stored.view(uint)]`` looks values up.

    8/16-bit data gets a table; anything else (32-bit or float pixel data: not used by CR/DX) is computed on the
    image itself.
    """
    if stored.dtype.kind in "ui" and stored.dtype.itemsize <= 2:
        unsigned = np.dtype(f"u{stored.dtype.itemsize}")
        domain = np.arange(2 ** (8 * stored.dtype.itemsize), dtype=unsigned).view(stored.dtype)
        return domain, stored.view(unsigned)
    return stored, None


class _Sampler:
    """Statistics over non-padding pixels: a histogram over the table's domain, or a strided pixel subsample."""

    def __init__(self, stored: np.ndarray, index: np.ndarray | None, values: np.ndarray, ds: Dataset):
        self.step = max(1, int(np.sqrt(stored.size / HIST_PIXELS)))
        self.table = index is not None
        if self.table:
            counts = np.bincount(index[:: self.step, :: self.step].ravel(), minlength=values.size)
            pad = _padding(values, ds)
            self.padding_seen = bool((counts[pad] > 0).any())
            self.weights = np.where(pad, 0, counts).astype(np.float64)
            self.pad = pad
        else:
            pad = _padding(self.sample(values), ds)
            self.padding_seen = bool(pad.any())
            self.weights = (~pad).astype(np.float64)
            self.pad = None
        self.keep = self.weights > 0

    def sample(self, arr: np.ndarray) -> np.ndarray:
        return arr if self.table else arr[:: self.step, :: self.step].ravel()

    def levels(self, values: np.ndarray) -> int:
        if self.table:
            return int(np.count_nonzero(self.keep))
        return int(np.unique(self.sample(values)[self.keep]).size)

    def percentiles(self, arr: np.ndarray, qs: tuple[float, ...]) -> list[float]:
        return _weighted_percentiles(self.sample(arr)[self.keep], self.weights[self.keep], qs)


def _padding(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """Boolean mask: values that are Pixel Padding (the Value, or Value..Range Limit; stored-value space)."""
    mask = np.zeros(values.shape, dtype=bool)
    value = ds.get("PixelPaddingValue")
    if value is None or isinstance(value, (bytes, list)):
        return mask
    limit = ds.get("PixelPaddingRangeLimit")
    if limit is None or isinstance(limit, (bytes, list)):
        mask |= values == int(value)
    else:
        lo, hi = sorted((int(value), int(limit)))
        mask |= (values >= lo) & (values <= hi)
    return mask


def _weighted_percentiles(values: np.ndarray, weights: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    total = cum[-1]
    return [float(v[min(int(np.searchsorted(cum, q / 100 * total, side="left")), len(v) - 1)]) for q in qs]


def _table(domain: np.ndarray, index: np.ndarray | None, stored: np.ndarray, ds: Dataset, steps: list[str],
           out: Rendered) -> np.ndarray:
    """Map every value through modality, VOI, polarity and normalisation; float32 in [0, 255]."""
    from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut

    stats = _Sampler(stored, index, domain, ds)
    if stats.levels(domain) < MIN_LEVELS:
        raise DegenerateImage("too few distinct values")

    modality = apply_modality_lut(domain, ds)
    source = voi_source(ds)
    normed: np.ndarray | None = None
    qc = "qc:ok"
    if source != "none":
        try:
            voi = apply_voi_lut(modality, ds, index=0, prefer_lut=True).astype(np.float64)
            lo, hi = voi_output_range(ds)
            if hi > lo:
                normed = np.clip((voi - lo) / (hi - lo), 0.0, 1.0)
                p1, p99 = stats.percentiles(normed, (1, 99))
                if p99 - p1 < MIN_SPREAD:
                    normed = None
            if normed is None:
                qc = "qc:voi_flat:retry_without_voi"
        except Exception as exc:  # noqa: BLE001 - a malformed VOI (width < 1, unknown function) is dropped, not fatal
            qc = f"qc:voi_error:{type(exc).__name__}:retry_without_voi"
        if normed is None:
            out.reason = "ok_voi_retry"
    if normed is None:
        as_float = modality.astype(np.float64)
        lo, hi = stats.percentiles(as_float, NO_VOI_PERCENTILES)
        if not hi > lo:
            raise DegenerateImage("flat without VOI")
        normed = np.clip((as_float - lo) / (hi - lo), 0.0, 1.0)
        norm_step = "normalize:p0.5-p99.5"
    else:
        norm_step = "normalize:voi_range"

    steps += ["modality:" + _modality_source(ds), f"voi:{source}"]
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        normed = 1.0 - normed
        steps.append("invert:MONOCHROME1")
    if polarity_conflict(ds):
        steps.append("polarity_conflict")
    steps += [qc, norm_step]
    table = (normed * 255.0).astype(np.float32)
    if stats.padding_seen:
        table[stats.pad if stats.pad is not None else _padding(domain, ds)] = 0.0
        steps.append("padding:black")
    return table


def _modality_source(ds: Dataset) -> str:
    if ds.get("ModalityLUTSequence"):
        return "lut"
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        return "rescale"
    return "none"


def voi_source(ds: Dataset) -> str:
    """What ``apply_voi_lut(index=0, prefer_lut=True)`` will apply: ``lut[0]``, ``window[0]:<function>`` or ``none``."""
    seq = ds.get("VOILUTSequence")
    if seq and seq[0].get("LUTDescriptor") is not None and seq[0].get("LUTData") is not None:
        return "lut[0]"
    if ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        func = str(ds.get("VOILUTFunction", "") or "LINEAR").strip().upper()
        return f"window[0]:{func}"
    return "none"


def voi_output_range(ds: Dataset) -> tuple[float, float]:
    """The range VOI maps onto: the window's y_min..y_max (as pydicom computes it), or the LUT data's min..max.

    A LUT's descriptor often claims more bits than its data uses, so the data range is the honest one.
    """
    from pydicom.pixels.processing import apply_voi_lut

    if voi_source(ds) == "lut[0]":
        item = ds.VOILUTSequence[0]
        n_entries = int(item.LUTDescriptor[0]) or 2**16
        first = int(item.LUTDescriptor[1])
        inputs = np.arange(first, first + n_entries, dtype=np.int64)
        lut = apply_voi_lut(inputs, ds, index=0, prefer_lut=True).astype(np.float64)
        return float(lut.min()), float(lut.max())
    # Windowing sends values far below / above the window to y_min / y_max (LINEAR) or towards them (SIGMOID).
    extremes = np.array([-1e30, 1e30], dtype=np.float64)
    ends = apply_voi_lut(extremes, ds, index=0, prefer_lut=True).astype(np.float64)
    return float(ends.min()), float(ends.max())


def polarity_conflict(ds: Dataset) -> bool:
    """Presentation LUT Shape disagrees with Photometric Interpretation (PS3.3 C.11.6.1.2)."""
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    pi = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    return (pi == "MONOCHROME2" and shape == "INVERSE") or (pi == "MONOCHROME1" and shape == "IDENTITY")


def resize_u8(image: np.ndarray, resolution: int) -> np.ndarray:
    """Resize a float image in [0, 255] once (short side -> resolution, Lanczos) and round to uint8."""
    from PIL import Image

    h, w = image.shape
    th, tw = target_size(h, w, resolution)
    im = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32), mode="F")
    if (th, tw) != (h, w):
        im = im.resize((tw, th), Image.Resampling.LANCZOS, reducing_gap=2.0)
    out = np.asarray(im, dtype=np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def describe(ds: Any) -> dict[str, Any]:
    """Allow-listed pixel facts for the record (no free text)."""
    return {
        "photometric": str(ds.get("PhotometricInterpretation", "") or "").strip().upper() or None,
        "bits_stored": int(ds.BitsStored) if ds.get("BitsStored") is not None else None,
    }
