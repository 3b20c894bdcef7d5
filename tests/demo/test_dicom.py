"""The generated DICOM files: transfer syntaxes, pixel pipelines, polarity, broken files, selection tags."""

from __future__ import annotations

import warnings
from collections import defaultdict

import numpy as np
import pytest

from tests.demo.conftest import read_dicom

EXPECT_DECODABLE = {("ok", "ok"), ("ok", "ok_voi_retry"), ("filtered", "not_chest"), ("filtered", "view")}


def _display(ds, retry: bool = False) -> np.ndarray:
    """The ingest pipeline (research dicom_ingest.md §1): modality LUT, VOI, invert iff MONOCHROME1.

    With ``retry`` a VOI that flattens the image is dropped, as ingest does (``ok_voi_retry``).
    """
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        modality = apply_modality_lut(ds.pixel_array, ds)
        arr = apply_voi_lut(modality, ds)
    if retry and np.ptp(arr) == 0:
        arr = modality.astype(np.float64)
    return arr.max() - arr if ds.PhotometricInterpretation == "MONOCHROME1" else arr


def test_every_transfer_syntax_is_present_and_decodes(demo_out, truth):
    seen = defaultdict(int)
    for r in truth:
        if (r["expected_state"], r["expected_reason"]) in EXPECT_DECODABLE or r["expected_state"] == "duplicate":
            ds = read_dicom(demo_out / "archive" / r["relpath"], bare=r["bare_dataset"])
            arr = ds.pixel_array
            assert arr.shape == (r["rows"], r["columns"]) and r["rows"] != r["columns"], r["relpath"]
            if not r["bare_dataset"]:
                assert ds.file_meta.TransferSyntaxUID == r["transfer_syntax"]
                assert (ds.get("LossyImageCompression") == "01") == r["lossy"]
            seen[r["transfer_syntax_name"]] += 1
    for name in ("explicit", "implicit", "deflated", "rle", "jpegls", "jpegls_near", "j2k", "j2k_lossy", "jpeg8",
                 "bare"):
        assert seen[name] >= 1, name


def test_broken_files_do_not_decode(demo_out, truth):
    import pydicom
    from pydicom.errors import InvalidDicomError

    by_reason = defaultdict(list)
    for r in truth:
        by_reason[r["expected_reason"]].append(demo_out / "archive" / r["relpath"])
    for path in by_reason["decode_error"] + by_reason["no_decoder"] + by_reason["missing_tags"]:
        ds = read_dicom(path)
        assert "PixelData" in ds
        with pytest.raises(Exception):
            ds.pixel_array
    for path in by_reason["truncated"] + by_reason["unreadable_header"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            if len(ds):  # truncated inside native pixel data: the header reads, the pixels are short
                with pytest.raises(Exception):
                    ds.pixel_array
    for path in by_reason["unreadable_header"]:  # unlike truncation, not even the header survives
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert len(pydicom.dcmread(path, stop_before_pixels=True)) == 0
    for path in by_reason["not_dicom"] + by_reason["empty_file"]:
        with pytest.raises(InvalidDicomError):
            pydicom.dcmread(path)
    assert by_reason["empty_file"] and all(p.stat().st_size == 0 for p in by_reason["empty_file"])


def test_objects_that_are_not_chest_radiographs(demo_out, truth):
    mess = {r["mess"]: read_dicom(demo_out / "archive" / r["relpath"]) for r in truth
            if r["mess"] in ("ct", "mr", "secondary_capture", "color", "for_processing", "structured_report",
                             "presentation_state", "no_pixel_data", "multi_frame", "burned_in", "dicomdir")}
    assert mess["ct"].Modality == "CT" and mess["ct"].BodyPartExamined == "CHEST"  # a chest, but not a radiograph
    assert mess["mr"].Modality == "MR"
    assert mess["secondary_capture"].SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert mess["secondary_capture"].pixel_array.shape[-1] == 3
    assert mess["color"].SamplesPerPixel == 3 and mess["color"].Modality in ("CR", "DX")
    assert mess["for_processing"].PresentationIntentType == "FOR PROCESSING"
    assert mess["structured_report"].Modality == "SR" and "PixelData" not in mess["structured_report"]
    assert mess["presentation_state"].Modality == "PR"
    assert "PixelData" not in mess["no_pixel_data"] and mess["no_pixel_data"].Rows > 0
    assert mess["multi_frame"].pixel_array.shape[0] == 3
    assert mess["burned_in"].BurnedInAnnotation == "YES"
    assert mess["dicomdir"].file_meta.MediaStorageSOPClassUID == "1.2.840.10008.1.3.10"


def test_monochrome1_stores_inverted_values(demo_out, truth, cohort):
    """Stored values of MONOCHROME1 images anti-correlate with the rendered phantom; MONOCHROME2 ones correlate."""
    from radadapt.demo.instance import build_instance

    by_sop = {im.sop_uid: im for im in cohort.images}
    checked = defaultdict(int)
    for r in truth:
        if r["kind"] != "radiograph" or r["pixel"].get("pixel_case") not in (
                "mono1", "mono1_rle", "mono1_pls_inverse", "mono2_pls_inverse", "standard", "jpeg8"):
            continue
        if checked[r["photometric"]] >= 4:
            continue
        ds = read_dicom(demo_out / "archive" / r["relpath"], bare=r["bare_dataset"])
        display = build_instance(by_sop[r["sop_instance_uid"]], cohort.registry).display
        corr = np.corrcoef(ds.pixel_array.astype(np.float64).ravel(), display.ravel())[0, 1]
        if r["photometric"] == "MONOCHROME1":
            assert corr < -0.9, r["relpath"]
        else:
            assert corr > 0.9, r["relpath"]
        checked[r["photometric"]] += 1
    assert checked["MONOCHROME1"] >= 3 and checked["MONOCHROME2"] >= 3
    cases = {r["pixel"]["pixel_case"]: read_dicom(demo_out / "archive" / r["relpath"]) for r in truth
             if r["kind"] == "radiograph" and r["pixel"].get("pixel_case") in ("mono1", "mono1_pls_inverse",
                                                                               "mono2_pls_inverse")}
    assert "PresentationLUTShape" not in cases["mono1"]
    assert cases["mono1_pls_inverse"].PresentationLUTShape == "INVERSE"
    assert cases["mono2_pls_inverse"].PhotometricInterpretation == "MONOCHROME2"
    assert cases["mono2_pls_inverse"].PresentationLUTShape == "INVERSE"


def test_pixel_pipeline_cases(demo_out, truth):
    rows = {r["pixel"]["pixel_case"]: r for r in truth if r["kind"] == "radiograph" and r["is_chest"]
            and r["view"] != "LATERAL" and not r["bare_dataset"]}
    ds = {case: read_dicom(demo_out / "archive" / r["relpath"]) for case, r in rows.items()}
    # The flattening window: VOI maps every pixel to one value; without VOI the image is there.
    trap = ds["flatten_window"]
    assert np.ptp(_display(trap)) == 0 and np.ptp(trap.pixel_array) > 1000
    assert rows["flatten_window"]["expected_reason"] == "ok_voi_retry"
    for case in ("standard", "rescale", "modality_lut", "voi_lut", "multi_window", "sigmoid", "signed", "padding",
                 "bits10", "bits14", "bits15", "bits16", "mono1", "jpeg8"):
        shown = _display(ds[case])
        assert np.ptp(shown) > 0, case
        h, w = shown.shape  # bones bright: the spine column is brighter than the lung fields beside it
        centre = shown[int(h * .35):int(h * .55), int(w * .47):int(w * .53)].mean()
        lung = shown[int(h * .30):int(h * .50), int(w * .18):int(w * .30)].mean()
        assert centre > lung, case
    assert ds["rescale"].RescaleSlope == 0.5 and ds["rescale"].RescaleIntercept == -1024
    assert "ModalityLUTSequence" in ds["modality_lut"] and "RescaleSlope" not in ds["modality_lut"]
    assert "VOILUTSequence" in ds["voi_lut"] and "WindowCenter" in ds["voi_lut"]
    assert len(ds["multi_window"].WindowCenter) == 3 == len(ds["multi_window"].WindowWidth)
    assert ds["sigmoid"].VOILUTFunction == "SIGMOID"
    assert ds["signed"].PixelRepresentation == 1 and ds["signed"].pixel_array.min() < 0
    for case, bits in (("bits10", 10), ("bits14", 14), ("bits15", 15), ("bits16", 16)):
        assert ds[case].BitsStored == bits and int(ds[case].pixel_array.max()) < 2**bits
    pad = ds["padding"]
    arr = pad.pixel_array
    assert pad.PixelPaddingValue == 0 and (arr[0] == 0).all() and (arr[:, -1] == 0).all() and arr[arr > 0].min() > 0
    assert ds["jpeg8"].BitsStored == 8 and rows["jpeg8"]["pixel"]["scaled_to_8bit"] is True
    assert ds["jpeg8"].file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"


def test_selection_tags_and_expected_views(demo_out, truth):
    rows = defaultdict(list)
    for r in truth:
        if r["kind"] == "radiograph":
            rows[r["chest_case"]].append(r)
    get = lambda case: read_dicom(demo_out / "archive" / rows[case][0]["relpath"])  # noqa: E731
    assert get("thorax").BodyPartExamined == "THORAX"
    assert "BodyPartExamined" not in get("no_tags") and "StudyDescription" not in get("no_tags")
    assert rows["no_tags"][0]["expected_state"] == "ok" and rows["no_tags"][0]["chest_evidence"] == "image"
    assert get("body_part_wrong").BodyPartExamined == "ABDOMEN" and rows["body_part_wrong"][0]["expected_state"] == "ok"
    code_only = get("view_code_only")
    assert "ViewPosition" not in code_only and code_only.ViewCodeSequence[0].CodingSchemeDesignator == "SCT"
    assert rows["view_code_only"][0]["view"] in ("PA", "AP")
    assert rows["view_empty"][0]["view"] == "unknown"
    assert get("lateral_code_only").ViewCodeSequence[0].CodeValue == "R-10236"
    for r in rows["lateral_ll"] + rows["lateral_word"] + rows["lateral_code_only"]:
        assert (r["view"], r["expected_state"], r["expected_reason"]) == ("LATERAL", "filtered", "view")
    fake_chest = get("non_chest_tagged_chest")
    assert fake_chest.BodyPartExamined == "CHEST" and fake_chest.StudyDescription == "XR WRIST 3V"
    for case in ("non_chest", "non_chest_tagged_chest", "non_chest_no_tags"):
        assert all(r["expected_reason"] == "not_chest" and r["is_chest"] is False for r in rows[case])
    assert {r["body_part"] for r in rows["non_chest"]} == {"hand", "knee", "pelvis"}
