"""Robust DICOM reading: one file in, a dataset or a fixed reason code out, never a raw message.

pydicom is forgiving in ways that hide damage (research/dicom_ingest.md, "Reading robustness", measured):

* a file truncated inside encapsulated Pixel Data reads as an *empty* dataset with only a ``UserWarning``;
* a file truncated inside a header element stops parsing silently, keeping the elements read so far;
* ``force=True`` turns PDFs, PNGs and empty files into empty datasets;
* deeply nested sequences raise ``RecursionError``;
* every warning and most exception messages embed the full file path, which in a PACS export often holds a
  patient's name or ID.

So: warnings are captured (never shown), exceptions are mapped to reason codes keeping only the type name, and
truncation is detected from the file layout (the last element must end exactly at the end of the file). Decoding
checks the codec for the transfer syntax first (PS3.5 Annex A), so a missing package is a ``no_decoder`` quarantine
that names the package, not a crash or an image of zeros.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import numpy as np
    from pydicom.dataset import Dataset

# Values above this are not read with the header; Pixel Data of a filtered file is then never read at all.
DEFER_BYTES = 256 * 1024

# Implicit/explicit VR and endianness -> transfer syntax for bare datasets written without file meta.
_ENCODING_TO_TS = {
    (True, True): "1.2.840.10008.1.2",
    (False, True): "1.2.840.10008.1.2.1",
    (False, False): "1.2.840.10008.1.2.2",
}
JPEG_EXTENDED_12BIT = "1.2.840.10008.1.2.4.51"
DEFLATED = "1.2.840.10008.1.2.1.99"
_DEP_PACKAGES = {  # pydicom's plugin names -> what to pip install
    "pylibjpeg": "pylibjpeg-libjpeg (GPL-3.0, opt-in: pip install 'radadapt[gpl-codecs]')",
    "gdcm": "python-gdcm",
    "pillow": "pillow",
    "pyjpegls": "pyjpegls",
}


class ReadFailure(Exception):
    """A file that cannot be used; ``reason`` is a reason code, ``detail`` a safe detail (a type or package name)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass
class DicomFile:
    dataset: Any  # pydicom FileDataset
    transfer_syntax: str
    warnings: int  # how many warnings pydicom raised while reading (messages are dropped: they embed paths)


def read_dicom(path: str | os.PathLike, size: int) -> DicomFile:
    """Read a file's dataset (large values deferred), or raise ``ReadFailure`` with a reason code.

    ``size`` is the file size from the archive walk; the layout check compares against it.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    if size == 0:
        raise ReadFailure("empty_file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        raise ReadFailure("read_error", type(exc).__name__) from None
    part10 = len(head) == 132 and head[128:132] == b"DICM"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, defer_size=DEFER_BYTES, force=not part10)
        except InvalidDicomError:
            raise ReadFailure("not_dicom") from None
        except RecursionError:
            raise ReadFailure("unreadable_header", "RecursionError") from None
        except EOFError:
            raise ReadFailure("truncated", "EOFError") from None
        except MemoryError:
            raise ReadFailure("unreadable_header", "MemoryError") from None
        except Exception as exc:  # noqa: BLE001 - any parser failure is a reason code, never a crash
            raise ReadFailure("truncated" if _looks_truncated_error(exc) else "unreadable_header", type(exc).__name__) from None
    n_warn = len(caught)
    eof_warning = any("end of file" in str(w.message).lower() for w in caught)
    if not part10:
        # A forced read accepts anything; only a dataset that names what it is counts as DICOM.
        if len(ds) == 0 or "SOPClassUID" not in ds:
            raise ReadFailure("not_dicom")
    elif len(ds) == 0:
        # Empty + end-of-file warning: damage inside encapsulated Pixel Data (the header alone still reads) or a
        # garbled header element whose bogus length swallowed the file (nothing reads).
        raise ReadFailure("truncated" if _header_reads(path) else "unreadable_header", "empty dataset")
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    # A deflated dataset's element offsets refer to the inflated stream, so only zlib's own checks apply there.
    if eof_warning or (ts != DEFLATED and _ends_early(ds, size)):
        raise ReadFailure("truncated")
    if not ts:
        ts = _ENCODING_TO_TS.get(tuple(ds.original_encoding), "")  # type: ignore[arg-type]
        if not ts:
            raise ReadFailure("unreadable_header", "no transfer syntax")
        from pydicom.dataset import FileMetaDataset

        if meta is None:
            ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ts
    return DicomFile(dataset=ds, transfer_syntax=ts, warnings=n_warn)


def _header_reads(path: str | os.PathLike) -> bool:
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            head = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - any failure means: the header itself is broken
            return False
    return len(head) > 0 and "SOPClassUID" in head


def _looks_truncated_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("no tag to read", "end of file", "incomplete or truncated", "truncated stream"))


def _ends_early(ds: Dataset, size: int) -> bool:
    """True when the last element does not end exactly at the end of the file.

    pydicom stops quietly at a partial element header and keeps a short value as it is; a whole file ends where
    its last element ends. Elements with undefined length (sequences, encapsulated pixel data) are checked by
    the end-of-file warning instead.
    """
    raw_dict = getattr(ds, "_dict", None)
    if not raw_dict:
        return False
    last = raw_dict[next(reversed(raw_dict))]
    length = getattr(last, "length", None)
    tell = getattr(last, "value_tell", None)
    if length is None or tell is None or length == 0xFFFFFFFF:
        return False
    value = getattr(last, "value", None)
    if value is not None and isinstance(value, (bytes, bytearray)) and len(value) < length:
        return True
    return tell + length != size


def missing_decoder(ds: Dataset, transfer_syntax: str) -> str | None:
    """The package needed to decode this transfer syntax, or None when one is installed.

    pydicom lists plugins per transfer syntax (pixels/decoders); two known gaps are checked by hand: gdcm and
    pillow accept JPEG Extended (4.51) but only decode 8-bit data, so 12-bit needs pylibjpeg-libjpeg (GPL-3.0).
    """
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(transfer_syntax)
    except NotImplementedError:
        return "a decoder for this transfer syntax (none exists for pydicom yet)"
    if not decoder.is_available:
        names = [d.split(" ")[0] for d in decoder.missing_dependencies]
        return ", ".join(_DEP_PACKAGES.get(n, n) for n in names) or "a decoder plugin"
    if transfer_syntax == JPEG_EXTENDED_12BIT and int(ds.get("BitsAllocated", 8) or 8) > 8:
        if "pylibjpeg" not in decoder.available_plugins:
            return _DEP_PACKAGES["pylibjpeg"]
    return None


def expected_frame_bytes(ds: Dataset) -> int:
    """Bytes one native frame needs (Rows x Columns x SamplesPerPixel x BitsAllocated/8, 1-bit packed)."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.BitsAllocated)
    if bits == 1:
        return (rows * cols * spp + 7) // 8
    return rows * cols * spp * (bits // 8)


# Fastest plugin first, measured per transfer syntax on demo radiographs (docs/ingest.md, "Speed"); pydicom's own
# order would pick its pure-Python RLE decoder (about 10x slower than pylibjpeg-rle) and gdcm for JPEG-LS.
_PREFERRED_PLUGINS = {
    "1.2.840.10008.1.2.5": ("pylibjpeg", "pydicom"),
    "1.2.840.10008.1.2.4.80": ("pyjpegls", "gdcm"),
    "1.2.840.10008.1.2.4.81": ("pyjpegls", "gdcm"),
    "1.2.840.10008.1.2.4.90": ("pylibjpeg", "pillow", "gdcm"),
    "1.2.840.10008.1.2.4.91": ("pylibjpeg", "pillow", "gdcm"),
    "1.2.840.10008.1.2.4.50": ("pillow", "gdcm", "pylibjpeg"),
    "1.2.840.10008.1.2.4.57": ("pylibjpeg", "gdcm"),
    "1.2.840.10008.1.2.4.70": ("pylibjpeg", "gdcm"),
}


def _decode(ds: Dataset, transfer_syntax: str) -> np.ndarray:
    """Frame 0 with the fastest available plugin; any failure falls back to pydicom trying every plugin."""
    from pydicom.pixels import get_decoder, pixel_array

    preferred = _PREFERRED_PLUGINS.get(transfer_syntax)
    if preferred:
        available = get_decoder(transfer_syntax).available_plugins
        for plugin in preferred:
            if plugin in available:
                try:
                    return pixel_array(ds, index=0, decoding_plugin=plugin)
                except Exception:  # noqa: BLE001 - the next plugin, then all of them, get their chance
                    break
    return pixel_array(ds, index=0)


@contextlib.contextmanager
def _c_stderr_silenced() -> Iterator[None]:
    """Codec libraries (openjpeg, gdcm, charls) print to file descriptor 2 from C, past Python's warnings; their
    text is not ours to show and could one day carry file details, so descriptor 2 points at /dev/null meanwhile."""
    try:
        saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def decode_first_frame(ds: Dataset, transfer_syntax: str) -> np.ndarray:
    """Decode frame 0 only (stored values, PS3.5 8.1; pydicom's unused-bit and sign corrections applied).

    Raises ``ReadFailure`` with ``truncated`` (native pixel data shorter than one frame) or ``decode_error``.
    """
    from pydicom.uid import UID

    with warnings.catch_warnings(), _c_stderr_silenced():
        warnings.simplefilter("ignore")
        try:
            if not UID(transfer_syntax).is_compressed:
                n = len(ds.PixelData)
                if n < expected_frame_bytes(ds):
                    raise ReadFailure("truncated", "short pixel data")
            return _decode(ds, transfer_syntax)
        except ReadFailure:
            raise
        except MemoryError:
            raise ReadFailure("decode_error", "MemoryError") from None
        except Exception as exc:  # noqa: BLE001 - codec errors carry paths; keep the type only
            raise ReadFailure("decode_error", type(exc).__name__) from None
