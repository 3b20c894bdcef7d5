"""Behaviour of the rules: scoping, aggregation, positions, derived columns, and bounded time on odd input."""

from __future__ import annotations

import time

import pytest


@pytest.mark.parametrize(
    "text, expected",
    [
        # negation and its scope
        ("No pneumothorax, but there is a small left pleural effusion.", {"Pneumothorax": "0", "Pleural Effusion": "1"}),
        ("No effusion, the heart is enlarged.", {"Pleural Effusion": "0", "Cardiomegaly": "1"}),
        ("No focal consolidation, pleural effusion, pneumothorax, or pulmonary edema.",
         {"Consolidation": "0", "Pleural Effusion": "0", "Pneumothorax": "0", "Edema": "0", "No Finding": "1"}),
        ("Pneumothorax: none.", {"Pneumothorax": "0", "No Finding": "1"}),
        # pseudo-triggers are not negations
        ("No significant change in the small left pleural effusion.", {"Pleural Effusion": "1"}),
        ("Pulmonary edema has improved but not resolved.", {"Edema": "1"}),
        # uncertainty, versus and alternatives
        ("Right basilar opacity may represent atelectasis.", {"Lung Opacity": "1", "Atelectasis": "-1"}),
        ("Pneumonia cannot be excluded.", {"Pneumonia": "-1"}),
        ("Atelectasis versus consolidation.", {"Atelectasis": "-1", "Consolidation": "-1"}),
        ("Atelectasis or pneumonia.", {"Atelectasis": "-1", "Pneumonia": "-1"}),
        ("No effusion or pneumothorax.", {"Pleural Effusion": "0", "Pneumothorax": "0", "No Finding": "1"}),
        ("Pneumonia is unlikely.", {"Pneumonia": "0", "No Finding": "1"}),
        # anatomy + predicate
        ("The heart is not enlarged.", {"Cardiomegaly": "0", "No Finding": "1"}),
        ("Heart size at the upper limits of normal.", {"Cardiomegaly": "-1"}),
        ("The costophrenic angles are sharp.", {"Pleural Effusion": "0", "No Finding": "1"}),
        ("Large hiatal hernia posterior to the heart.", {"Hernia": "1"}),
        ("Acute fractures of the left posterior 5th and 6th ribs.", {"Fracture": "1", "Rib Fracture": "1"}),
        # false triggers
        ("History of tuberculosis. Endplate sclerosis. The report was faxed. Septal lines.", {"Edema": "1"}),
        ("EKG leads overlie the chest. No pleural line to suggest pneumothorax.",
         {"Pneumothorax": "0", "No Finding": "1"}),
    ],
)
def test_findings(label, text, expected):
    assert label(text) == expected


def test_parents_and_no_finding(label):
    assert label("8 mm nodule in the right upper lobe.") == {"Nodule": "1", "Lung Lesion": "1"}
    assert label("No rib fracture.") == {"Rib Fracture": "0", "Fracture": "0", "No Finding": "1"}
    # An abnormality without a column cancels No Finding; a device alone does not.
    assert label("Mild scoliosis.") == {}
    assert label("ETT in place.") == {"No Finding": "1", "Support Devices": "1", "endotracheal tube": "present"}


def test_aggregation_positive_beats_uncertain_beats_negative(label):
    assert label("Possible effusion. Small left effusion. No right effusion.")["Pleural Effusion"] == "1"
    assert label("Possible effusion. No right effusion.")["Pleural Effusion"] == "-1"


@pytest.mark.parametrize(
    "text, device, state, position",
    [
        ("ETT tip 1 cm above the carina.", "endotracheal tube", "present", "malpositioned"),
        ("ETT terminates approximately 45 mm above the carina.", "endotracheal tube", "present", "ok"),
        ("Endotracheal tube terminates 9 cm above the carina.", "endotracheal tube", "present", "malpositioned"),
        ("The ETT has been pulled back and now terminates 5 cm above the carina.", "endotracheal tube", "present",
         "ok"),
        ("The ETT should be pulled back 2 cm.", "endotracheal tube", "present", "malpositioned"),
        ("ETT in the right mainstem bronchus.", "endotracheal tube", "present", "malpositioned"),
        ("Nasogastric tube is coiled in the esophagus.", "enteric tube", "present", "malpositioned"),
        ("Dobhoff tube tip in the duodenum.", "enteric tube", "present", "ok"),
        ("NG tube tip is off the inferior edge of the film.", "enteric tube", "present", "unknown"),
        ("Right PICC tip in the right internal jugular vein.", "PICC", "present", "malpositioned"),
        ("Swan-Ganz catheter tip in the right main pulmonary artery.", "pulmonary artery catheter", "present", "ok"),
        ("The ETT is in unchanged position.", "endotracheal tube", "present", "unknown"),
        ("The ETT is not in satisfactory position.", "endotracheal tube", "present", "malpositioned"),
        ("Interval removal of the endotracheal tube.", "endotracheal tube", "removed", ""),
        ("The patient has been extubated.", "endotracheal tube", "removed", ""),
        ("NG tube removed.", "enteric tube", "removed", ""),
        ("Previously seen enteric tube is no longer present.", "enteric tube", "removed", ""),
        ("No endotracheal tube is seen.", "endotracheal tube", "absent", ""),
        ("Possible retained pacing wire.", "cardiac device", "uncertain", ""),
        ("Right chest tube removed; left chest tube remains in place.", "chest tube", "present", ""),
        ("ETT on the prior study. The patient is now extubated.", "endotracheal tube", "removed", ""),
        ("Feeding tube in the right lower lobe bronchus, should be removed.", "enteric tube", "present",
         "malpositioned"),
    ],
)
def test_devices(label, text, device, state, position):
    got = label(text)
    assert got.get(device, "") == state
    assert got.get(f"{device} position", "") == position


def test_positions_split_between_devices_and_carry_to_the_next_sentence(label):
    got = label("ETT 4 cm above the carina, NG tube tip in the distal esophagus.")
    assert got["endotracheal tube position"] == "ok" and got["enteric tube position"] == "malpositioned"
    got = label("ET and NG tubes in appropriate position.")
    assert got["endotracheal tube position"] == got["enteric tube position"] == "ok"
    got = label("Endotracheal tube present. Its tip is 1 cm above the carina.")
    assert got["endotracheal tube position"] == "malpositioned"
    # Without an anaphoric word the next sentence does not speak of the device.
    assert "endotracheal tube position" not in label("Endotracheal tube present. Satisfactory inspiration.")


def test_group_negation_signs_and_device_descriptions(label):
    got = label("No lines or tubes.")
    for device in ("endotracheal tube", "enteric tube", "central venous catheter", "PICC", "port", "chest tube"):
        assert got[device] == "absent"
    assert "cardiac device" not in got and got["Support Devices"] == "0"
    # A device's own mention beats the group's negation.
    got = label("No lines or tubes. Left chest wall port.")
    assert got["port"] == "present" and got["chest tube"] == "absent"
    assert label("Support devices: none.")["cardiac device"] == "absent"
    # A sign yields to the named finding in its sentence; alone it counts.
    assert label("Blunting of the left costophrenic angle may represent a small effusion.")["Pleural Effusion"] == "-1"
    assert label("Blunting of the left costophrenic angle.")["Pleural Effusion"] == "1"
    # A description of a device is not a finding.
    got = label("A linear density over the right hemithorax may represent a chest tube.")
    assert got == {"No Finding": "1", "Support Devices": "-1", "chest tube": "uncertain"}
    assert label("Linear opacity at the left base, likely atelectasis.")["Lung Opacity"] == "1"


def test_support_devices_derivation(label):
    assert label("ETT removed.")["Support Devices"] == "0"
    assert label("Possible ETT.")["Support Devices"] == "-1"
    assert label("No lines or tubes.")["Support Devices"] == "0"
    assert "Support Devices" not in label("Lungs clear.")


def test_sections_keep_indication_out(label):
    text = "INDICATION: Pneumonia? Evaluate ETT.\nFINDINGS: Lungs are clear. No effusion.\nIMPRESSION: Normal."
    assert label(text) == {"Pleural Effusion": "0", "No Finding": "1"}


def test_empty_and_whitespace_reports_are_all_blank(labeler):
    for text in ("", "   \n\t ", None, "INDICATION: cough"):
        result = labeler.label(text)
        assert result.values == [""] * len(labeler.columns)
        assert result.section_path == "empty"


def test_one_megabyte_report_is_bounded(labeler):
    """A pathological 1 MB 'report' (no full stops) is labelled on its first max_chars characters, in bounded time
    (long runs of words are cut into pieces, so the cost stays linear)."""
    big = ("no effusion and the heart is enlarged with possible pneumonia " * 20000)[:1_000_000]
    t0 = time.perf_counter()
    result = labeler.label(big)
    elapsed = time.perf_counter() - t0
    assert result.truncated and result.section_path == "whole_text"
    got = dict(zip(labeler.columns, result.values))
    assert (got["Cardiomegaly"], got["Pleural Effusion"], got["Pneumonia"]) == ("1", "0", "-1")
    assert elapsed < 20  # sanity bound only; the speed is measured in benchmarks/bench_labels.py
