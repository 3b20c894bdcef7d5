"""Encoding a dataset and its stored values in a transfer syntax, to bytes (PS3.5 §8, §10, Annex A).

Native syntaxes are written by pydicom (deflate is dataset-level zlib). Compressed ones use pydicom 3's
encoders: RLE (native or pylibjpeg-rle), JPEG-LS via pyjpegls, JPEG 2000 via pylibjpeg-openjpeg. JPEG baseline
has no pydicom encoder, so the 8-bit image is written by Pillow and encapsulated (PS3.5 A.4). "Encapsulated
Uncompressed" (1.2.840.10008.1.2.1.98) has no decoder in pydicom 3.0: it is the archive's ``no_decoder`` case.
Lossy syntaxes set Lossy Image Compression (0028,2110) with ratio and method, as PS3.3 C.7.6.1.1.5 asks.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from radadapt.demo.cases import TRANSFER_SYNTAXES


def encode(ds: Any, stored: np.ndarray, ts: str) -> bytes:
    """Set Rows/Columns/PixelData for ``stored`` (2-D, or 3-D frames) in syntax ``ts`` and return the file bytes."""
    from pydicom import dcmwrite
    from pydicom.encaps import encapsulate
    from pydicom.uid import UID

    uid, lossy = TRANSFER_SYNTAXES[ts]
    frames = stored if stored.ndim == 3 and ds.get("SamplesPerPixel", 1) == 1 else stored[None]
    ds.Rows, ds.Columns = int(frames.shape[1]), int(frames.shape[2])
    raw = len(frames) * frames[0].nbytes
    if ts in ("explicit", "implicit", "deflated", "bare"):
        ds.PixelData = stored.tobytes()
        ds["PixelData"].VR = "OB" if stored.dtype.itemsize == 1 else "OW"
    elif ts == "jpeg8":
        ds.PixelData = encapsulate([_jpeg_baseline(f) for f in frames])
        ds["PixelData"].VR = "OB"
    elif ts == "encapsulated_uncompressed":
        ds.PixelData = encapsulate([f.tobytes() for f in frames])
        ds["PixelData"].VR = "OB"
    else:
        kwargs = {"jpegls_near": {"jls_error": 2}, "j2k_lossy": {"j2k_cr": [12]}}.get(ts, {})
        # generate_instance_uid defaults to True in pydicom 3: a random SOP UID would break determinism.
        ds.compress(UID(uid), stored, encoding_plugin="pyjpegls" if ts.startswith("jpegls") else "",
                    generate_instance_uid=False, **kwargs)
    if lossy:
        size = len(ds.PixelData)
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = f"{raw / max(size, 1):.2f}"
        ds.LossyImageCompressionMethod = "ISO_10918_1" if ts == "jpeg8" else (
            "ISO_14495_1" if ts == "jpegls_near" else "ISO_15444_1")
    buf = io.BytesIO()
    if ts == "bare":  # no preamble, no file meta: readable only with force=True (issue 3)
        meta = ds.file_meta
        del ds.file_meta
        dcmwrite(buf, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
        ds.file_meta = meta
    else:
        ds.file_meta.TransferSyntaxUID = UID(uid)
        dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def _jpeg_baseline(frame: np.ndarray) -> bytes:
    """8-bit grayscale JPEG (ISO 10918-1 baseline) by Pillow; quality fixed so bytes are reproducible."""
    from PIL import Image

    if frame.dtype != np.uint8:
        raise ValueError("JPEG baseline needs 8-bit values; scale first")
    out = io.BytesIO()
    Image.fromarray(frame, mode="L").save(out, format="JPEG", quality=88, optimize=False)
    return out.getvalue()
