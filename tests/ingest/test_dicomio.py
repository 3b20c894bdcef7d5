"""Robust reading: damaged and foreign files map to reason codes, never to exceptions or printed paths."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from pydicom.dataset import Dataset

from radadapt.ingest.dicomio import ReadFailure, decode_first_frame, missing_decoder, read_dicom

from .factory import chest_phantom, make_dataset, write


def reason(path) -> str:
    try:
        f = read_dicom(path, os.path.getsize(path))
    except ReadFailure as exc:
        return exc.reason
    try:
        decode_first_frame(f.dataset, f.transfer_syntax)
    except ReadFailure as exc:
        return exc.reason
    return "ok"


@pytest.fixture()
def good(tmp_path):
    return write(make_dataset(chest_phantom()), tmp_path / "PATIENT^NAME" / "good.dcm")


def test_good_file_reads_and_decodes(good):
    f = read_dicom(good, os.path.getsize(good))
    arr = decode_first_frame(f.dataset, f.transfer_syntax)
    assert arr.shape == (160, 128) and arr.dtype == np.uint16
    assert np.array_equal(arr, chest_phantom())


@pytest.mark.parametrize("fraction", [0.999, 0.7, 0.3, 0.05])
def test_truncation_anywhere_is_truncated(good, tmp_path, fraction):
    data = good.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: int(len(data) * fraction)])
    assert reason(cut) == "truncated"


def test_truncated_encapsulated_pixel_data(tmp_path):
    # pydicom returns an *empty* dataset here, with only a warning (research: measured trap).
    path = write(make_dataset(chest_phantom()), tmp_path / "rle.dcm", "1.2.840.10008.1.2.5")
    data = path.read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - 200])
    assert reason(cut) == "truncated"


def test_foreign_and_empty_files(tmp_path):
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 20)
    (tmp_path / "notes.txt").write_text("patient list\n" * 40)
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 500)
    assert reason(tmp_path / "report.pdf") == "not_dicom"
    assert reason(tmp_path / "notes.txt") == "not_dicom"
    assert reason(tmp_path / "image.png") == "not_dicom"
    assert reason(tmp_path / "empty") == "empty_file"


def test_bare_dataset_without_file_meta_is_read(tmp_path):
    from pydicom.filebase import DicomFileLike
    from pydicom.filewriter import write_dataset

    ds = make_dataset(chest_phantom())
    path = tmp_path / "bare"
    with open(path, "wb") as raw:  # a bare dataset: no preamble, no file meta (older PACS exports)
        fh = DicomFileLike(raw)
        fh.is_little_endian, fh.is_implicit_VR = True, True
        write_dataset(fh, _plain(ds))
    data = path.read_bytes()
    assert data[128:132] != b"DICM"
    f = read_dicom(path, len(data))
    assert f.transfer_syntax == "1.2.840.10008.1.2"
    assert decode_first_frame(f.dataset, f.transfer_syntax).shape == (160, 128)


def _plain(ds):
    plain = Dataset()
    plain.update(ds)
    plain.set_original_encoding(True, True)
    return plain


def _deep_sequence(depth: int) -> bytes:
    """(0040,A730) Content Sequence nested ``depth`` times, explicit VR little endian, undefined lengths."""
    import struct

    undefined = b"\xff\xff\xff\xff"
    seq = struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0" + undefined
    item = struct.pack("<HH", 0xFFFE, 0xE000) + undefined
    leaf = struct.pack("<HH", 0x0008, 0x0100) + b"SH" + struct.pack("<H", 2) + b"X "
    end = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return (seq + item) * depth + leaf + end * depth


def test_deeply_nested_sequences_are_unreadable_header(tmp_path):
    path = write(make_dataset(None), tmp_path / "deep.dcm")
    with open(path, "ab") as fh:
        fh.write(_deep_sequence(5000))
    assert reason(path) == "unreadable_header"


def test_short_native_pixel_data_is_truncated_before_decoding(tmp_path):
    ds = make_dataset(chest_phantom())
    ds.PixelData = ds.PixelData[:1000]
    path = write(ds, tmp_path / "short.dcm")
    assert reason(path) == "truncated"


def test_no_decoder_names_the_package():
    from pydicom.data import get_testdata_file

    path = get_testdata_file("JPGExtended.dcm")  # JPEG Extended 12-bit: gdcm and pillow only decode 8-bit
    if path is None:
        pytest.skip("pydicom test file missing")
    f = read_dicom(path, os.path.getsize(path))
    needed = missing_decoder(f.dataset, f.transfer_syntax)
    try:
        import libjpeg  # noqa: F401
    except ImportError:
        assert needed is not None and "pylibjpeg-libjpeg" in needed and "GPL" in needed
    else:  # pragma: no cover - only where the opt-in GPL codec is installed
        assert needed is None


def test_unknown_transfer_syntax_has_no_decoder(good):
    f = read_dicom(good, os.path.getsize(good))
    assert missing_decoder(f.dataset, "1.2.840.10008.1.2.4.110") is not None  # JPEG XL: nothing decodes it


def test_nothing_is_printed_or_warned(tmp_path, capsys, good):
    data = good.read_bytes()
    cut = tmp_path / "DOE^JANE" / "cut.dcm"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning escaping read_dicom would fail here
        assert reason(cut) == "truncated"
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
