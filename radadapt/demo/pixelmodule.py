"""The Image Pixel module of a generated image: display image -> stored values plus the tags that undo them.

Each *pixel case* exercises one step of the ingest pixel pipeline (docs/research dicom_ingest.md §1, PS3.3
C.7.6.3 Image Pixel, C.11 LUTs): MONOCHROME1 (stored values inverted, with and without Presentation LUT Shape
INVERSE), a MONOCHROME2 image carrying INVERSE (a conflict: PhotometricInterpretation wins), Rescale
slope/intercept, a Modality LUT Sequence, a VOI LUT Sequence, several windows, SIGMOID, bit depths 8-16, signed
pixels, Pixel Padding Value, and the *flattening window* (a header window entirely below the stored values, so
VOI gives a constant image and ingest must retry without it). Whatever the case, applying the pipeline to the
stored values gives back the display image up to a monotonic map: bones bright, air dark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Special cases, each planted on at least one frontal chest image (cases.py assigns them).
PIXEL_CASES = (
    "mono1", "mono1_rle", "mono1_pls_inverse", "mono2_pls_inverse", "rescale", "modality_lut", "voi_lut",
    "multi_window", "sigmoid", "bits10", "bits14", "bits15", "bits16", "signed", "padding", "flatten_window",
)


@dataclass
class PixelResult:
    stored: np.ndarray  # uint16 / int16 / uint8, (rows, cols)
    tags: dict  # DICOM keyword -> value (pixel description, LUTs, windows); sequences as lists of dicts
    truth: dict = field(default_factory=dict)  # what ground_truth.jsonl records about the pixel encoding


def encode_pixels(display: np.ndarray, case: str, rng: np.random.Generator, *, bits: int = 12,
                  mono1: bool = False, modality: str = "DX") -> PixelResult:
    """Stored values and Image Pixel / LUT tags for ``display`` (float in [0, 1], bright = dense)."""
    bits = {"bits10": 10, "bits14": 14, "bits15": 15, "bits16": 16, "flatten_window": 16, "signed": 16}.get(case, bits)
    if case in ("mono1", "mono1_rle", "mono1_pls_inverse"):
        mono1 = True
    if case in ("mono2_pls_inverse", "flatten_window", "padding", "signed", "modality_lut", "voi_lut", "rescale"):
        mono1 = False
    if case == "jpeg8":
        return _eight_bit(display, rng)
    if case == "signed":
        return _signed(display, rng)
    maxv = 2**bits - 1
    lo, hi = rng.uniform(0.02, 0.12) * maxv, rng.uniform(0.80, 0.97) * maxv
    if case == "flatten_window":  # stored values in the top half of 16 bits; the header window lies far below
        lo, hi = rng.uniform(0.50, 0.55) * maxv, rng.uniform(0.92, 0.97) * maxv
    values = np.rint(lo + display * (hi - lo))
    center, width = (lo + hi) / 2 + rng.uniform(-0.03, 0.03) * (hi - lo), (hi - lo) * rng.uniform(0.95, 1.1)
    if mono1:
        values = maxv - values
        center = maxv - center
    tags: dict = {
        "SamplesPerPixel": 1,
        "PhotometricInterpretation": "MONOCHROME1" if mono1 else "MONOCHROME2",
        "BitsAllocated": 16, "BitsStored": bits, "HighBit": bits - 1, "PixelRepresentation": 0,
        "WindowCenter": _ds(center), "WindowWidth": _ds(width),
    }
    truth = {"pixel_case": case, "bits_stored": bits, "pixel_representation": 0, "voi": "window[0]",
             "voi_function": "LINEAR", "modality_lut": "none"}
    if modality == "DX":  # DX requires these (PS3.3 C.8.11.3); CR files often carry neither
        tags.update(RescaleIntercept="0", RescaleSlope="1", RescaleType="US",
                    PresentationLUTShape="INVERSE" if mono1 else "IDENTITY")
    if case == "mono1":
        tags.pop("PresentationLUTShape", None)
        tags.pop("RescaleType", None)
    elif case == "mono2_pls_inverse":
        tags["PresentationLUTShape"] = "INVERSE"
        truth["polarity_conflict"] = True
    elif case == "rescale":
        slope, intercept = 0.5, -1024.0
        tags.update(RescaleSlope="0.5", RescaleIntercept="-1024", RescaleType="US",
                    WindowCenter=_ds(center * slope + intercept), WindowWidth=_ds(width * slope))
        truth["modality_lut"] = "rescale"
    elif case == "modality_lut":
        _modality_lut(tags, bits, center, width)
        truth["modality_lut"] = "lut_sequence"
    elif case == "voi_lut":
        _voi_lut(tags, bits, lo, hi)
        truth["voi"] = "lut_sequence"
    elif case == "multi_window":
        tags.update(WindowCenter=[_ds(center), _ds(center * 0.9), _ds(center * 1.1)],
                    WindowWidth=[_ds(width), _ds(width * 0.7), _ds(width * 1.5)],
                    WindowCenterWidthExplanation=["NORMAL", "SOFT", "BONE"])
    elif case == "sigmoid":
        tags["VOILUTFunction"] = "SIGMOID"
        truth["voi_function"] = "SIGMOID"
    elif case == "padding":
        _pad_border(values, rng)
        tags["PixelPaddingValue"] = 0
        truth["padding_value"] = 0
    elif case == "flatten_window":
        tags.update(WindowCenter=_ds(2048), WindowWidth=_ds(2048))
        truth["voi"] = "flattening_window"
    stored = np.clip(values, 0, maxv).astype(np.uint16)
    truth["photometric"] = tags["PhotometricInterpretation"]
    return PixelResult(stored, tags, truth)


def constant_pixels(shape: tuple[int, int]) -> PixelResult:
    """A truly constant image (a blank exposure): no window or retry can make it an image."""
    stored = np.full(shape, 1024, dtype=np.uint16)
    tags = {"SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2", "BitsAllocated": 16,
            "BitsStored": 12, "HighBit": 11, "PixelRepresentation": 0, "WindowCenter": "1024", "WindowWidth": "4096",
            "RescaleIntercept": "0", "RescaleSlope": "1", "RescaleType": "US", "PresentationLUTShape": "IDENTITY"}
    return PixelResult(stored, tags, {"pixel_case": "constant", "bits_stored": 12, "photometric": "MONOCHROME2"})


def _ds(v: float) -> str:
    """A DS value: at most 16 characters (PS3.5 6.2)."""
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _eight_bit(display: np.ndarray, rng: np.random.Generator) -> PixelResult:
    """An image scaled to 8 bits first, as a JPEG baseline export must (ground truth: scaled_to_8bit)."""
    lo, hi = rng.uniform(5, 20), rng.uniform(235, 252)
    stored = np.rint(lo + display * (hi - lo)).astype(np.uint8)
    tags = {"SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2", "BitsAllocated": 8, "BitsStored": 8,
            "HighBit": 7, "PixelRepresentation": 0, "WindowCenter": "128", "WindowWidth": "256"}
    truth = {"pixel_case": "jpeg8", "bits_stored": 8, "pixel_representation": 0, "voi": "window[0]",
             "voi_function": "LINEAR", "modality_lut": "none", "scaled_to_8bit": True, "photometric": "MONOCHROME2"}
    return PixelResult(stored, tags, truth)


def _signed(display: np.ndarray, rng: np.random.Generator) -> PixelResult:
    """PixelRepresentation 1: two's complement values around zero (some DR vendors store signed data)."""
    lo, hi = -rng.uniform(5000, 9000), rng.uniform(5000, 9000)
    stored = np.rint(lo + display * (hi - lo)).astype(np.int16)
    tags = {"SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2", "BitsAllocated": 16, "BitsStored": 16,
            "HighBit": 15, "PixelRepresentation": 1, "WindowCenter": _ds((lo + hi) / 2),
            "WindowWidth": _ds(hi - lo), "RescaleIntercept": "0", "RescaleSlope": "1", "RescaleType": "US",
            "PresentationLUTShape": "IDENTITY"}
    truth = {"pixel_case": "signed", "bits_stored": 16, "pixel_representation": 1, "voi": "window[0]",
             "voi_function": "LINEAR", "modality_lut": "none", "photometric": "MONOCHROME2"}
    return PixelResult(stored, tags, truth)


def _modality_lut(tags: dict, bits: int, center: float, width: float) -> None:
    """A Modality LUT Sequence (PS3.3 C.11.1) mapping stored values through a gamma curve to 16 bits."""
    n = 2**bits
    curve = lambda v: 65535.0 * (np.clip(v, 0, n - 1) / (n - 1)) ** 0.7  # noqa: E731
    lut = np.rint(curve(np.arange(n))).astype(np.uint16)
    for k in ("RescaleIntercept", "RescaleSlope", "RescaleType"):
        tags.pop(k, None)  # a Modality LUT Sequence and Rescale must not both be present
    lo, hi = curve(center - width / 2), curve(center + width / 2)
    tags.update(WindowCenter=_ds((lo + hi) / 2), WindowWidth=_ds(hi - lo),
                ModalityLUTSequence=[{"LUTDescriptor": [n % 65536, 0, 16], "ModalityLUTType": "US",
                                      "LUTExplanation": "DEMO GAMMA 0.7", "LUTData": lut}])


def _voi_lut(tags: dict, bits: int, lo: float, hi: float) -> None:
    """A VOI LUT Sequence (PS3.3 C.11.2) with a smooth S-curve over the stored range; a window is present too."""
    n = 2**bits
    v = np.arange(n, dtype=np.float64)
    s = 1.0 / (1.0 + np.exp(-4.0 * (v - (lo + hi) / 2) / max(hi - lo, 1.0)))
    s = (s - s.min()) / (s.max() - s.min())
    lut = np.rint(s * 65535).astype(np.uint16)
    tags["VOILUTSequence"] = [{"LUTDescriptor": [n % 65536, 0, 16], "LUTExplanation": "DEMO S-CURVE", "LUTData": lut}]


def _pad_border(values: np.ndarray, rng: np.random.Generator) -> None:
    """Collimation: a border outside the exposed field set to the Pixel Padding Value (0)."""
    rows, cols = values.shape
    t, b = int(rows * rng.uniform(0.03, 0.07)), int(rows * rng.uniform(0.03, 0.07))
    left, right = int(cols * rng.uniform(0.03, 0.07)), int(cols * rng.uniform(0.03, 0.07))
    values[:t] = 0
    values[rows - b:] = 0
    values[:, :left] = 0
    values[:, cols - right:] = 0
