"""Selection: SOP class, modality, pixel form, body part and view by tags, and the image check."""

from __future__ import annotations

import os

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from radadapt.config import IngestSection
from radadapt.ingest.pixels import render
from radadapt.ingest.select import chest_decision, chest_tags, lung_fields, select_header, view_of

from .factory import DX, DX_PROC, SC, SR, chest_phantom, limb_phantom, make_dataset, pelvis_phantom

CFG = IngestSection()


def sel(**kw):
    pixels = kw.pop("pixels", chest_phantom())
    return select_header(make_dataset(pixels, **kw), kw.pop("cfg", CFG) if "cfg" in kw else CFG)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, (None, "")),
        ({"sop_class": DX, "modality": "DX"}, (None, "")),
        ({"sop_class": SR, "modality": "SR", "pixels": None}, ("filtered", "sop_class")),
        ({"sop_class": SC, "modality": "OT"}, ("filtered", "secondary_capture")),
        ({"ImageType": ["DERIVED", "SECONDARY"]}, ("filtered", "secondary_capture")),
        ({"sop_class": "1.2.840.10008.5.1.4.1.1.2", "modality": "CT"}, ("filtered", "modality")),
        ({"sop_class": DX_PROC, "modality": "DX"}, ("filtered", "for_processing")),
        ({"sop_class": DX, "modality": "DX", "PresentationIntentType": "FOR PROCESSING"}, ("filtered", "for_processing")),
        ({"pixels": None}, ("filtered", "no_pixel_data")),
        ({"SamplesPerPixel": 3}, ("filtered", "color")),
        ({"photometric": "PALETTE COLOR"}, ("filtered", "color")),
        ({"NumberOfFrames": 4}, ("filtered", "multi_frame")),
        ({"BurnedInAnnotation": "YES"}, ("quarantined", "burned_in_annotation")),
        ({"body_part": "KNEE"}, ("filtered", "not_chest")),
        ({"view": "LL"}, ("filtered", "view")),
        ({"view": "RLO"}, ("filtered", "view")),
    ],
)
def test_header_reasons(kwargs, expected):
    s = sel(**kwargs)
    assert (s.state, s.reason) == expected


def test_missing_required_tag_is_quarantined():
    ds = make_dataset(chest_phantom())
    del ds.BitsStored
    assert (select_header(ds, CFG).state, select_header(ds, CFG).reason) == ("quarantined", "missing_tags")


def test_config_switches():
    lateral_ok = IngestSection(views=["PA", "AP", "LATERAL", "unknown"])
    assert select_header(make_dataset(chest_phantom(), view="LATERAL"), lateral_ok).state is None
    assert select_header(make_dataset(chest_phantom(), sop_class=DX_PROC, modality="DX"),
                         IngestSection(keep_for_processing=True)).state is None
    # image_only ignores a body part that says otherwise
    assert select_header(make_dataset(chest_phantom(), body_part="KNEE"), IngestSection(chest_rule="image_only")).state is None


@pytest.mark.parametrize(
    "tags, expected",
    [
        ({"BodyPartExamined": "CHEST"}, ("+", "body_part")),
        ({"BodyPartExamined": "CHEST", "StudyDescription": "XR CHEST 1V"}, ("+", "body_part+description")),
        ({"BodyPartExamined": "THORAX"}, ("+", "body_part")),
        ({"SeriesDescription": "Chest x-ray, portable"}, ("+", "description")),
        ({"BodyPartExamined": "T_SPINE"}, ("-", "body_part")),
        ({"StudyDescription": "XR CHEST 2 VIEWS"}, ("+", "description")),
        ({"ProtocolName": "Knee AP"}, ("-", "description")),
        ({"BodyPartExamined": "CHEST", "StudyDescription": "LEFT WRIST"}, ("?", "conflict")),
        ({"StudyDescription": "CHEST AND ABDOMEN"}, ("?", "conflict")),
        ({}, ("?", "none")),
    ],
)
def test_chest_tags(tags, expected):
    ds = Dataset()
    for k, v in tags.items():
        setattr(ds, k, v)
    assert chest_tags(ds) == expected


def test_view_sources_in_order():
    ds = Dataset()
    assert view_of(ds) == "unknown"
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "R-10206", "SRT", "antero-posterior"
    ds.ViewCodeSequence = Sequence([item])
    assert view_of(ds) == "AP"
    ds.ViewPosition = "PA"
    assert view_of(ds) == "PA"  # View Position first
    other = Dataset()
    other.SeriesDescription = "CHEST LAT"
    assert view_of(other) == "LATERAL"
    both = Dataset()
    both.ProtocolName = "CHEST PA + LAT"  # ambiguous: describes two images
    assert view_of(both) == "unknown"


def _rendered(pixels):
    return render(pixels, make_dataset(pixels), 256).image


def test_lung_fields_on_phantoms():
    assert lung_fields(_rendered(chest_phantom(320, 256)))[0]
    assert lung_fields(_rendered(chest_phantom(256, 320, seed=3)))[0]
    assert not lung_fields(_rendered(limb_phantom(320, 200)))[0]
    assert not lung_fields(_rendered(pelvis_phantom(256, 320)))[0]
    assert not lung_fields(255 - _rendered(chest_phantom(320, 256)))[0]  # wrong polarity fails
    assert not lung_fields(np.full((256, 256), 128, np.uint8))[0]


def _pydicom_image(name):
    from pydicom.data import get_testdata_file

    from radadapt.ingest.dicomio import decode_first_frame, read_dicom

    path = get_testdata_file(name)
    if path is None:
        pytest.skip("pydicom-data is not installed")
    f = read_dicom(path, os.path.getsize(path))
    return f.dataset, render(decode_first_frame(f.dataset, f.transfer_syntax), f.dataset, 256)


def test_lung_fields_on_pydicom_sample_radiographs():
    _ds, chest = _pydicom_image("RG1_UNCR.dcm")  # CR chest PA, MONOCHROME1
    _ds, tibia = _pydicom_image("RG3_UNCR.dcm")  # CR distal tibia AP, MONOCHROME1, collimated
    assert lung_fields(chest.image) == (True, "lungs")
    assert lung_fields(tibia.image)[0] is False


def test_chest_rules_combine_tags_and_image():
    chest, limb = _rendered(chest_phantom(320, 256)), _rendered(limb_phantom(320, 200))
    s_pos = select_header(make_dataset(chest_phantom()), CFG)
    s_unknown = select_header(make_dataset(chest_phantom(), body_part=None), CFG)
    s_strong = select_header(make_dataset(chest_phantom(), StudyDescription="XR CHEST PA"), CFG)
    assert chest_decision(s_pos, chest, "tags_and_image") == (True, "tags:+body_part;image:+lungs")
    assert chest_decision(s_pos, limb, "tags_and_image")[0] is False  # one tag alone is not trusted
    # Body part and description agreeing decide without the image check (abnormal chests can hide a lung).
    assert chest_decision(s_strong, limb, "tags_and_image") == (True, "tags:+body_part+description;image:skipped")
    assert chest_decision(s_strong, limb, "image_only")[0] is False
    assert chest_decision(s_unknown, chest, "tags_and_image")[0] is True
    assert chest_decision(s_unknown, chest, "tags_only")[0] is False
    assert chest_decision(s_pos, limb, "tags_only")[0] is True
    assert chest_decision(s_unknown, limb, "image_only")[0] is False
    assert chest_decision(s_unknown, limb, "any") == (True, "any")
