"""The pixel pipeline on datasets built here: every step, each trap, exact values."""

from __future__ import annotations

import numpy as np
import pytest
from .factory import make_dataset
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from radadapt.ingest.pixels import DegenerateImage, render, target_size, voi_output_range


def ramp(rows: int = 64, cols: int = 64, lo: int = 0, hi: int = 4095, dtype=np.uint16) -> np.ndarray:
    return np.linspace(lo, hi, rows * cols).round().astype(dtype).reshape(rows, cols)


def unresized(stored: np.ndarray, ds: Dataset):
    """Render without resizing (resolution == short side), so values are the table's, rounded."""
    return render(stored, ds, min(stored.shape))


def test_linear_window_matches_ps33_formula():
    x = ramp()
    ds = make_dataset(x, WindowCenter=2048, WindowWidth=1024)
    out = unresized(x, ds)
    c, w = 2048 - 0.5, 1024 - 1  # PS3.3 C.11.2.1.2.1
    expected = np.rint(np.clip((x - c) / w + 0.5, 0, 1) * 255)
    assert np.array_equal(out.image, expected.astype(np.uint8))
    assert out.steps[:3] == ["decode:frame0", "modality:none", "voi:window[0]:LINEAR"]
    assert "normalize:voi_range" in out.steps and out.reason == "ok"


def test_linear_exact_and_sigmoid_functions():
    x = ramp()
    exact = unresized(x, make_dataset(x, WindowCenter=2048, WindowWidth=1024, VOILUTFunction="LINEAR_EXACT"))
    expected = np.rint(np.clip((x - 2048.0) / 1024 + 0.5, 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(exact.image, expected)
    sig = unresized(x, make_dataset(x, WindowCenter=2048, WindowWidth=1024, VOILUTFunction="SIGMOID"))
    expected = np.rint(255 / (1 + np.exp(-4 * (x - 2048.0) / 1024))).astype(np.uint8)
    assert np.abs(sig.image.astype(int) - expected).max() <= 1
    assert "voi:window[0]:SIGMOID" in sig.steps


def test_second_window_is_ignored_first_is_used():
    x = ramp()
    ds = make_dataset(x, WindowCenter=[1000, 3000], WindowWidth=[500, 800])
    out = unresized(x, ds)
    assert out.image[x < 700].max() == 0 and out.image[x > 1300].min() == 255


def test_voi_lut_sequence_beats_window_and_normalises_by_lut_data_range():
    x = ramp()
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]  # claims 16 bits, data only uses 0..1000: the data range decides
    lut = (np.sqrt(np.arange(4096) / 4095) * 1000).astype(np.uint16)
    item.LUTData = lut.tolist()
    ds = make_dataset(x, WindowCenter=100, WindowWidth=10)
    ds.VOILUTSequence = Sequence([item])
    out = unresized(x, ds)
    expected = np.rint(lut[x] / 1000 * 255).astype(np.uint8)
    assert np.abs(out.image.astype(int) - expected).max() <= 1
    assert "voi:lut[0]" in out.steps


def test_modality_rescale_then_window_in_output_units():
    x = ramp(hi=2047)
    ds = make_dataset(x, bits_stored=11, RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=1024, WindowWidth=2048)
    out = unresized(x, ds)
    hu = x * 2.0 - 1024
    expected = np.rint(np.clip((hu - 1023.5) / 2047 + 0.5, 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(out.image, expected)
    assert "modality:rescale" in out.steps


def test_modality_lut_sequence_applies_before_voi():
    x = ramp()
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.ModalityLUTType = "US"
    item.LUTData = (4095 - np.arange(4096)).astype(np.uint16).tolist()  # a reversing LUT
    ds = make_dataset(x)
    ds.ModalityLUTSequence = Sequence([item])
    out = unresized(x, ds)
    assert "modality:lut" in out.steps
    assert out.image[0, 0] > 250 and out.image[-1, -1] < 5  # reversed by the LUT, then percentile-normalised


def test_monochrome1_inverted_once_and_presentation_shape_conflicts_recorded():
    x = ramp()
    mono2 = unresized(x, make_dataset(x, WindowCenter=2048, WindowWidth=4096))
    mono1 = unresized(x, make_dataset(x, photometric="MONOCHROME1", WindowCenter=2048, WindowWidth=4096))
    assert np.array_equal(mono1.image.astype(int), 255 - mono2.image.astype(int))
    assert "invert:MONOCHROME1" in mono1.steps and "polarity_conflict" not in mono1.steps
    # MONOCHROME1 + INVERSE is the standard pairing: still one inversion.
    both = unresized(x, make_dataset(x, photometric="MONOCHROME1", WindowCenter=2048, WindowWidth=4096,
                                     PresentationLUTShape="INVERSE"))
    assert np.array_equal(both.image, mono1.image) and "polarity_conflict" not in both.steps
    # MONOCHROME2 + INVERSE disagrees: trust the photometric interpretation, record the conflict.
    odd = unresized(x, make_dataset(x, WindowCenter=2048, WindowWidth=4096, PresentationLUTShape="INVERSE"))
    assert np.array_equal(odd.image, mono2.image) and "polarity_conflict" in odd.steps


def test_flattening_window_is_retried_without_voi():
    # Measured trap: data in the top half of a 16-bit range, header window entirely below it.
    x = ramp(lo=40000, hi=60000)
    ds = make_dataset(x, bits_stored=16, WindowCenter=1000, WindowWidth=500)
    out = unresized(x, ds)
    assert out.reason == "ok_voi_retry"
    assert "qc:voi_flat:retry_without_voi" in out.steps and "normalize:p0.5-p99.5" in out.steps
    assert out.image.min() == 0 and out.image.max() == 255 and out.image.std() > 50


def test_invalid_window_width_is_dropped_not_fatal():
    x = ramp()
    out = unresized(x, make_dataset(x, WindowCenter=2048, WindowWidth=0))
    assert out.reason == "ok_voi_retry" and any(s.startswith("qc:voi_error:ValueError") for s in out.steps)


def test_degenerate_images_raise():
    with pytest.raises(DegenerateImage):
        render(np.zeros((32, 32), np.uint16), make_dataset(np.zeros((32, 32), np.uint16)), 32)
    two = np.zeros((32, 32), np.uint16)
    two[:16] = 100
    with pytest.raises(DegenerateImage):
        render(two, make_dataset(two), 32)


@pytest.mark.parametrize("bits", [8, 10, 12, 14, 15, 16])
def test_bit_depths_use_their_own_range(bits):
    dtype = np.uint8 if bits == 8 else np.uint16
    x = ramp(hi=2**bits - 1, dtype=dtype)
    ds = make_dataset(x, bits_stored=bits, WindowCenter=2 ** (bits - 1), WindowWidth=2**bits)
    out = unresized(x, ds)
    assert out.image[0, 0] == 0 and out.image[-1, -1] == 255
    assert abs(int(out.image[32, 32]) - 128) <= 2  # middle of the ramp stays mid-grey: the range is 2**bits


def test_signed_data_with_rescale():
    x = ramp(lo=-2048, hi=2047, dtype=np.int16)
    ds = make_dataset(x, signed=True, RescaleSlope=1, RescaleIntercept=0)
    out = unresized(x, ds)
    assert out.image[0, 0] == 0 and out.image[-1, -1] == 255 and np.all(np.diff(out.image.ravel().astype(int)) >= 0)


def test_padding_is_excluded_and_black():
    x = ramp(lo=1000, hi=3000)
    x[:, :8] = 0
    ds = make_dataset(x, PixelPaddingValue=0)
    out = unresized(x, ds)
    assert "padding:black" in out.steps
    assert out.image[:, :8].max() == 0
    body = out.image[:, 8:]
    assert body.min() <= 2 and body.max() >= 253  # percentiles over non-padding pixels only


def test_rows_stay_rows_and_short_side_is_the_resolution():
    x = np.zeros((160, 96), np.uint16)
    x[:80] = 3000
    x[80:] = np.linspace(0, 500, 80 * 96).reshape(80, 96)
    out = render(x, make_dataset(x), 48)
    assert out.image.shape == (80, 48) == target_size(160, 96, 48)
    assert out.image[:35].mean() > 200 and out.image[45:].mean() < 60
    wide = render(x.T.copy(), make_dataset(x.T.copy()), 48)
    assert wide.image.shape == (48, 80)
    assert "resize:lanczos:down" in out.steps


def test_table_path_equals_pydicom_functions_on_the_image():
    from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut

    rng = np.random.default_rng(1)
    x = rng.integers(0, 4096, (50, 70)).astype(np.uint16)
    ds = make_dataset(x, RescaleSlope=1.5, RescaleIntercept=-10, WindowCenter=3000, WindowWidth=5000,
                      photometric="MONOCHROME1")
    out = unresized(x, ds)
    lo, hi = voi_output_range(ds)
    direct = (apply_voi_lut(apply_modality_lut(x, ds), ds, index=0) - lo) / (hi - lo)
    expected = np.rint((1 - np.clip(direct, 0, 1)) * 255).astype(np.uint8)
    assert np.array_equal(out.image, expected)


def test_pixel_hash_depends_on_values_not_headers():
    x = ramp()
    a = unresized(x, make_dataset(x, WindowCenter=100, WindowWidth=50))
    b = unresized(x, make_dataset(x))
    y = x.copy()
    y[0, 0] += 1
    c = unresized(y, make_dataset(y))
    assert a.pixel_hash == b.pixel_hash != c.pixel_hash


SYNTAXES = {
    "1.2.840.10008.1.2": 0, "1.2.840.10008.1.2.1": 0, "1.2.840.10008.1.2.1.99": 0, "1.2.840.10008.1.2.5": 0,
    "1.2.840.10008.1.2.4.80": 0, "1.2.840.10008.1.2.4.90": 0,
    "1.2.840.10008.1.2.4.81": 2,  # near-lossless JPEG-LS: error bounded by NEAR=2
    "1.2.840.10008.1.2.4.91": -1,  # lossy JPEG 2000: checked on the mean error
}


def _decode(path):
    import os

    from radadapt.ingest.dicomio import decode_first_frame, read_dicom

    f = read_dicom(path, os.path.getsize(path))
    return f.dataset, decode_first_frame(f.dataset, f.transfer_syntax)


def test_one_image_in_every_transfer_syntax_shares_one_pixel_check(tmp_path):
    from .factory import chest_phantom, write

    ref_pixels = chest_phantom(seed=11)
    reference = None
    for ts, tolerance in SYNTAXES.items():
        ds = make_dataset(ref_pixels, WindowCenter=2048, WindowWidth=4096)
        kw = {}
        if ts == "1.2.840.10008.1.2.4.81":
            kw = {"jls_error": 2}
        elif ts == "1.2.840.10008.1.2.4.91":
            kw = {"j2k_cr": [5]}
        path = tmp_path / ts
        from pydicom.uid import UID

        if UID(ts).is_compressed and kw:
            ds.compress(ts, **kw)
            ds.save_as(path, enforce_file_format=True)
        else:
            write(ds, path, ts)
        got_ds, stored = _decode(path)
        assert stored.shape == (160, 128)
        error = np.abs(stored.astype(int) - ref_pixels.astype(int))
        assert error.mean() < 40 if tolerance < 0 else error.max() <= tolerance, ts
        out = render(stored, got_ds, 64)
        if reference is None:
            reference = out
        elif tolerance == 0:
            assert np.array_equal(out.image, reference.image) and out.pixel_hash == reference.pixel_hash, ts
        else:
            assert np.abs(out.image.astype(int) - reference.image.astype(int)).mean() < 2, ts
            assert out.pixel_hash != reference.pixel_hash


def test_pydicom_radiograph_in_several_transfer_syntaxes():
    from pydicom.data import get_testdata_file

    paths = {n: get_testdata_file(n) for n in ("RG1_UNCR.dcm", "RG1_J2KR.dcm", "RG1_UNCI.dcm", "RG1_J2KI.dcm")}
    if None in paths.values():
        pytest.skip("pydicom-data is not installed")
    outs = {}
    for name, path in paths.items():
        ds, stored = _decode(path)
        assert stored.shape == (1955, 1841) and ds.PhotometricInterpretation == "MONOCHROME1"
        outs[name] = render(stored, ds, 256)
    # Lossless J2K == uncompressed; the lossy pair is the same pixels stored twice (UNCI = decoded J2KI).
    assert np.array_equal(outs["RG1_UNCR.dcm"].image, outs["RG1_J2KR.dcm"].image)
    assert np.array_equal(outs["RG1_UNCI.dcm"].image, outs["RG1_J2KI.dcm"].image)
    assert np.abs(outs["RG1_UNCR.dcm"].image.astype(int) - outs["RG1_J2KI.dcm"].image.astype(int)).mean() < 2
    img = outs["RG1_UNCR.dcm"].image
    assert img.shape == (272, 256)  # 1955 x 1841 -> short side 256, rows stay rows
    # MONOCHROME1 inverted once: bones bright, lungs dark (the lung fields are darker than the spine column).
    assert img[80:160, 40:90].mean() < img[80:160, 118:138].mean() - 30
    assert outs["RG1_UNCR.dcm"].steps == ["decode:frame0", "modality:none", "voi:window[0]:LINEAR",
                                          "invert:MONOCHROME1", "qc:ok", "normalize:voi_range", "resize:lanczos:down"]
